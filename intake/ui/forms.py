"""Forms and query strings of the staff UI, and the one shape of a handler that acts on a form.

A form is small, url-encoded and read in memory (:func:`read_form`); query parameters are parsed
leniently (a malformed value is no filter). :func:`submit` is how every POST handler acts: CSRF,
call the service, and either answer the refusals its table lists with a page (after rolling the
attempted change back) or let anything else propagate to the app's error pages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from intake.settings import StaffUISettings
from intake.ui.attempts import record_refusal
from intake.ui.errors import FormTooLarge
from intake.ui.security import check_csrf

__all__ = ["Refusals", "handle", "parse_date", "parse_enum", "parse_int", "read_form", "read_form_pairs", "submit"]

T = TypeVar("T")


async def read_form(request: Request, settings: StaffUISettings) -> dict[str, str]:
    """A small ``application/x-www-form-urlencoded`` body, read in memory up to ``max_form_bytes``.
    Multipart is refused: staff forms upload nothing, and nothing is spooled to disk. The first
    value of a repeated field wins (a repeated field cannot override it)."""
    form: dict[str, str] = {}
    for key, value in await read_form_pairs(request, settings):
        form.setdefault(key, value)
    return form


async def read_form_pairs(request: Request, settings: StaffUISettings, *, max_fields: int = 50
                          ) -> list[tuple[str, str]]:
    """:func:`read_form`'s body as every (name, value) pair in order, for a form with a repeated field
    (the ticked cases of a bulk change); at most ``max_fields`` pairs."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormTooLarge("only url-encoded forms are accepted", code="FORM_TYPE")
    limit = settings.max_form_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise FormTooLarge("form too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormTooLarge("form too large")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                         max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormTooLarge("malformed form", code="FORM_MALFORMED") from exc


#: The days a filter can mean: from the first day of 明治 to far beyond any record. A date outside
#: (``0001-01-01``, ``9999-12-31`` in a hand-edited URL) is taken as its end of the range: the same
#: rows, and no arithmetic past the ends of the calendar (it gave a 500).
FILTER_DAYS = (date(1868, 1, 25), date(2200, 12, 31))


def parse_date(value: str | None) -> date | None:
    """A filter's ``YYYY-MM-DD`` (a date input's value), kept within :data:`FILTER_DAYS`; ``None`` for
    none or anything else."""
    try:
        day = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    return None if day is None else min(max(day, FILTER_DAYS[0]), FILTER_DAYS[1])


def parse_enum(cls: Any, value: str | None) -> Any:
    try:
        return cls(value) if value else None
    except ValueError:
        return None


def parse_int(value: str | None, default: int = 1) -> int:
    return int(value) if value and value.isdigit() and len(value) < 9 else default


@dataclass(frozen=True)
class Refusals:
    """The refusals a page answers itself: exception type → (HTTP status, Japanese message, or a
    function of the exception giving it), first match wins. Everything else propagates (the app's
    error pages: 403, 404, 500)."""

    table: Sequence[tuple[type[Exception], int, str | Callable[[Any], str]]]

    def explain(self, exc: Exception) -> tuple[int, str] | None:
        for kind, status, message in self.table:
            if isinstance(exc, kind):
                return status, message if isinstance(message, str) else message(exc)
        return None


def handle(session: Session, action: Callable[[], T], *, refusals: Refusals,
           refused: Callable[[int, str], Response], done: Callable[[T], Response]) -> Response:
    """Do ``action``; a listed refusal rolls back what it attempted and answers ``refused(status,
    message)`` — rendered in the same unit of work, so the page it shows is logged like any view."""
    try:
        result = action()
    except Exception as exc:
        explained = refusals.explain(exc)
        if explained is None:
            raise
        session.rollback()
        record_refusal(session, exc)  # a forbidden action answered by the page is still an attempt
        return refused(*explained)
    return done(result)


def submit(session: Session, csrf: str, form: dict[str, str], action: Callable[[], T], *, refusals: Refusals,
           refused: Callable[[int, str], Response], done: Callable[[T], Response]) -> Response:
    """:func:`handle` for a POSTed form: its CSRF token (the session's ``csrf``) is checked first."""
    check_csrf(csrf, form)
    return handle(session, action, refusals=refusals, refused=refused, done=done)
