"""``POST /api/v1/relay/set-aside``: the relay tells the intake which 受付番号 it set aside.

An item that kept failing (its attempts or its age over the relay's budget) is set aside so that the
ones behind it go on; staff must be able to see it from the My Number zone, since only the intake has
a staff UI. The notice holds no personal data: the portal's 受付番号, the package's SHA-256, a reason
code, counts and times.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["SetAsideBatch", "SetAsideNotice"]

_Receipt = Annotated[str, StringConstraints(pattern=r"^[0-9]{8}-[0-9]{10}$")]
_Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_]{1,64}$")]


class SetAsideNotice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_number: _Receipt
    sha256: _Sha256 | None = None
    #: set_aside: the relay gave up on it; retried: an operator asked for another attempt
    state: Literal["set_aside", "retried"]
    reason_code: _Code
    attempts: int = Field(ge=0, le=1_000_000)
    first_seen_at: AwareDatetime
    at: AwareDatetime


class SetAsideBatch(BaseModel):
    """Version 1 of the request body."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    items: tuple[SetAsideNotice, ...] = Field(max_length=500)
