"""The applications the portal holds for the municipality, as the API lists and serves them.

Everything is indexed once at start-up, sorted by (arrival time, 受付番号). "Now" comes from the
clock: an application whose 到達日時 is later than now has not arrived yet and is invisible —
absent from lists and 404 when asked for — so a client polling the simulator sees the generated
stream appear over time.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from portal_sim.api.clock import Clock
from portal_sim.api.cursor import decode_cursor, encode_cursor
from portal_sim.api.errors import ConfigurationError, InvalidCursor, InvalidReceiptNumber, NotFound
from portal_sim.datadir import RECEIPT_NUMBER_RE

__all__ = ["ApplicationRecordLike", "Catalogue", "Page", "check_receipt_number"]


T = TypeVar("T")


def check_receipt_number(value: str) -> str:
    """``value`` if it is a plain 受付番号 (YYYYMMDD-NNNNNNNNNN): digits and one hyphen, so nothing that
    passes can name a parent directory, a separator or a hidden file. Otherwise a 400 for the client."""
    if not RECEIPT_NUMBER_RE.fullmatch(value):
        raise InvalidReceiptNumber("受付番号 must look like YYYYMMDD-NNNNNNNNNN")
    return value


class ApplicationRecordLike(Protocol):
    """What the API needs of one application of the data directory (``portal_sim.datadir``)."""

    @property
    def receipt_number(self) -> str: ...
    @property
    def arrived_at(self) -> datetime: ...
    @property
    def procedure_id(self) -> str: ...
    @property
    def procedure_name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def first_receipt_number(self) -> str | None: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; ``next_cursor`` is where to continue now or at the next poll."""

    items: list[T]
    next_cursor: str | None
    has_more: bool


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class Catalogue:
    """Sorted, clock-aware view of the applications; package bytes are read on demand."""

    CURSOR_KIND = "applications"

    def __init__(
        self, records: Iterable[ApplicationRecordLike], *, read_package: Callable[[str], bytes], clock: Clock,
    ) -> None:
        ordered = sorted(records, key=lambda r: (_utc(r.arrived_at), r.receipt_number))
        self._records = ordered
        self._keys = [(_utc(r.arrived_at), r.receipt_number) for r in ordered]
        self._arrivals = [k[0] for k in self._keys]
        self._by_number = {r.receipt_number: r for r in ordered}
        if len(self._by_number) != len(ordered):
            raise ConfigurationError("the data directory lists a 受付番号 twice")
        self._read_package = read_package
        self._clock = clock

    def __len__(self) -> int:
        return len(self._records)

    def _visible_end(self) -> int:
        return bisect.bisect_right(self._arrivals, _utc(self._clock.now()))

    def page(self, *, since: datetime | None, cursor: str | None, limit: int) -> Page[ApplicationRecordLike]:
        """Applications that have arrived by now, from ``since`` (inclusive) and after ``cursor``."""
        start = 0
        if since is not None:
            start = bisect.bisect_left(self._arrivals, _utc(since))
        if cursor is not None:
            start = max(start, bisect.bisect_right(self._keys, self._position(cursor)))
        end = self._visible_end()
        items = self._records[start:min(end, start + limit)] if start < end else []
        if items:
            last = items[-1]
            next_cursor: str | None = encode_cursor(
                self.CURSOR_KIND, [_utc(last.arrived_at).isoformat(), last.receipt_number])
        else:
            next_cursor = cursor
        return Page(items=list(items), next_cursor=next_cursor, has_more=start + len(items) < end)

    def _position(self, cursor: str) -> tuple[datetime, str]:
        position = decode_cursor(self.CURSOR_KIND, cursor)
        try:
            when_text, number = position
            when = datetime.fromisoformat(when_text)
        except (TypeError, ValueError) as exc:
            raise InvalidCursor("cursor is not one this server issued") from exc
        if when.tzinfo is None or not isinstance(number, str):
            raise InvalidCursor("cursor is not one this server issued")
        return _utc(when), number

    def get(self, receipt_number: str) -> ApplicationRecordLike:
        """The application, if it exists and has arrived by now; otherwise :class:`NotFound`."""
        record = self._by_number.get(check_receipt_number(receipt_number))
        if record is None or _utc(record.arrived_at) > _utc(self._clock.now()):
            raise NotFound("no application with this 受付番号")
        return record

    def package(self, receipt_number: str) -> bytes:
        """The package bytes of an arrived application."""
        record = self.get(receipt_number)
        return self._read_package(record.receipt_number)
