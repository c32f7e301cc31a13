"""Request and response bodies of the portal API (they are also its OpenAPI schema).

Field names are English snake_case; values keep the portal's Japanese vocabulary (申請種別, 処理状況).
List items carry no personal data: receipt numbers, procedures, times, digests and sizes only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portal_sim.api.statuses import Status

__all__ = [
    "ApplicationDetail",
    "ApplicationPage",
    "ApplicationSummary",
    "ErrorBody",
    "ErrorDetail",
    "LoginRequest",
    "StatusChangeOut",
    "StatusEntryOut",
    "StatusHistory",
    "StatusPage",
    "StatusUpdate",
    "TokenResponse",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    municipality_code: str = Field(pattern=r"^[0-9]{6}$", description="全国地方公共団体コード (6 digits)")
    api_key: SecretStr = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the RFC 6750 token type, not a secret
    expires_in: int = Field(description="seconds until the token expires")


class ApplicationSummary(BaseModel):
    receipt_number: str = Field(description="受付番号")
    arrived_at: datetime = Field(description="到達日時")
    procedure_id: str = Field(description="手続ID")
    procedure_name: str = Field(description="手続名称")
    kind: str = Field(description="申請種別: 新規申請 / 再申請 / 補正 / 取下げ")
    first_receipt_number: str | None = Field(description="初回受付番号 (null for 新規申請)")
    sha256: str = Field(description="hex SHA-256 of the package bytes")
    size: int = Field(description="package size in bytes")


class ApplicationPage(BaseModel):
    items: list[ApplicationSummary]
    next_cursor: str | None = Field(
        description="position after the last item; pass it as `cursor` to continue now or at the next poll")
    has_more: bool = Field(description="more items are available right now")


class ApplicationDetail(ApplicationSummary):
    status: Status = Field(description="current 処理状況")
    status_at: datetime


class StatusUpdate(_Strict):
    status: Status
    comment: str | None = Field(default=None, max_length=1000,
                                description="message shown to the applicant with this status")


class StatusEntryOut(BaseModel):
    seq: int | None = Field(description="global update number; null for the portal's 到達 line")
    status: Status
    at: datetime
    comment: str | None


class StatusHistory(BaseModel):
    receipt_number: str
    current: Status
    history: list[StatusEntryOut]


class StatusChangeOut(BaseModel):
    seq: int
    receipt_number: str
    status: Status
    at: datetime


class StatusPage(BaseModel):
    items: list[StatusChangeOut]
    next_cursor: str | None
    has_more: bool


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. TOKEN_EXPIRED, RATE_LIMITED")
    message: str = Field(description="English explanation; never contains personal data")
    details: dict[str, object] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
