"""The status outbox: status notices the relay carries from the intake to the portal, and its answer.

``GET /api/v1/status-outbox`` answers a :class:`StatusOutboxPage`; ``POST /api/v1/status-outbox/ack``
takes a :class:`StatusAck`. A notice carries the comment staff wrote *to the resident*
(申請者へのコメント): it may name the resident, so the relay holds it in memory only, between the
intake's answer and the portal's — never in its tombstones, its logs or an exception text
(``repr`` leaves it out). :data:`COMMENT_MAX_CHARS` is the portal's own limit; the intake's form
refuses a longer comment before anything is stored, and this type refuses it again on both sides.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

__all__ = [
    "COMMENT_MAX_CHARS",
    "NoticeRefused",
    "OutboxRefused",
    "StatusAck",
    "StatusNoticeItem",
    "StatusOutboxPage",
]

#: The portal's limit for the comment shown to the applicant (characters).
COMMENT_MAX_CHARS = 1000

_Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_]{1,48}$")]


class OutboxRefused(ValueError):
    """An answer or request that is not of this contract. Its message names fields, never values."""

    code = "BAD_OUTBOX"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusNoticeItem(_Model):
    """One notice: the chain's current 受付番号, the status the portal should show, when, and the
    comment for the resident (``None``: none)."""

    id: int = Field(ge=1)
    receipt_number: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    status: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    at: AwareDatetime
    comment: Annotated[str, StringConstraints(max_length=COMMENT_MAX_CHARS)] | None = Field(default=None, repr=False)


class StatusOutboxPage(_Model):
    """Version 1 of the outbox answer (a page without ``version`` is version 1)."""

    version: Literal[1] = 1
    items: tuple[StatusNoticeItem, ...] = ()

    @classmethod
    def decode(cls, data: object) -> StatusOutboxPage:
        """Parse the intake's JSON answer; :class:`OutboxRefused` naming the fields that failed."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise OutboxRefused(_fields(exc)) from None


class NoticeRefused(_Model):
    """A notice the portal refused for good, with its code (``ILLEGAL_TRANSITION``, ``HTTP_404``)."""

    id: int = Field(ge=1)
    code: _Code


class StatusAck(_Model):
    """Notices done with: ``ids`` the portal took (a new entry or an identical repeat), ``refused``
    those it will never take. Both leave the outbox; the intake shows staff which was which."""

    ids: tuple[int, ...] = Field(default=(), max_length=1000)
    refused: tuple[NoticeRefused, ...] = Field(default=(), max_length=1000)


def _fields(exc: ValidationError) -> str:
    places = sorted({".".join(str(p) for p in error["loc"]) or "(root)" for error in exc.errors()})
    return "the status outbox answer does not fit the contract: " + ", ".join(places)
