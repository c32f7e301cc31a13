"""The 番号紐付情報 export: 利用者証明用電子証明書シリアル番号 → 宛名番号, full or as a delta.

In a real ward the resident-register side (住民記録システム with the J-LIS card data) produces this
file and the intake imports it; the simulator only stands in for that producer, from its own
synthetic truth (``residents.jsonl``). The format is documented in ``docs/portal-sim.md``
("Linkage export"); in short: UTF-8 CSV (no BOM, CRLF line ends, RFC 4180 quoting), one header
row, columns :data:`COLUMNS`.

A *link* is one user-authentication certificate of one resident. It is valid from the day the
certificate was issued (有効開始日) to its last day (有効終了日): the certificate's expiry, or the
day it was revoked (失効日時 gives the moment). Its life produces these events:

* 追加 — the link starts (00:00 JST of 有効開始日);
* 変更 — the certificate is revoked: 有効終了日 becomes the revocation day, 失効日時 is set;
* 削除 — the link ends (00:00 JST of the day after 有効終了日): it can no longer be valid for any
  new arrival.

A **full** export as of T lists (区分 ``全件``) every link that has started before T and not been
deleted before T, in its state at T. A **delta** from D to T lists every event at D ≤ time < T, in
time order, each row showing the link's state right after the event. So, by construction,
full(D) + delta(D, T) = full(T), which is how an importer may rely on them.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from portal_sim.datadir import JST, ResidentRecord, UserCert
from portal_sim.errors import PortalSimError

__all__ = [
    "COLUMNS",
    "Category",
    "LinkageFormatError",
    "LinkageRow",
    "apply_delta",
    "delta_export",
    "full_export",
    "parse_csv",
    "to_csv",
]

COLUMNS = (
    "利用者証明用電子証明書シリアル番号",
    "宛名番号",
    "有効開始日",
    "有効終了日",
    "失効日時",
    "区分",
    "作成日時",
)


class Category(enum.StrEnum):
    """区分."""

    FULL = "全件"
    ADDED = "追加"
    CHANGED = "変更"
    DELETED = "削除"


class LinkageFormatError(PortalSimError):
    """A linkage CSV that does not follow the documented format (line numbers only, no values)."""


@dataclass(frozen=True, slots=True)
class LinkageRow:
    serial: str
    atena_number: str
    valid_from: date
    valid_to: date
    revoked_at: datetime | None
    category: Category
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Link:
    serial: str
    atena_number: str
    cert: UserCert

    def start(self) -> datetime:
        return _midnight(self.cert.valid_from)

    def last_day(self) -> date:
        if self.cert.revoked_at is not None:
            return min(self.cert.valid_to, self.cert.revoked_at.astimezone(JST).date())
        return self.cert.valid_to

    def end(self) -> datetime:
        """When the 削除 event happens: the first moment the link is no longer valid for any day."""
        return _midnight(self.last_day() + timedelta(days=1))

    def row(self, at: datetime, category: Category, created_at: datetime) -> LinkageRow:
        """The link's state just after every event up to and including ``at``."""
        revoked = self.cert.revoked_at if self.cert.revoked_at is not None and self.cert.revoked_at <= at else None
        valid_to = self.last_day() if revoked is not None else self.cert.valid_to
        return LinkageRow(self.serial, self.atena_number, self.cert.valid_from, valid_to, revoked, category,
                          created_at)


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0, 0), JST)


def _links(residents: Iterable[ResidentRecord]) -> list[_Link]:
    return [_Link(c.serial, r.atena_number, c) for r in residents for c in r.user_certs]


def _aware(moment: datetime, what: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return moment.astimezone(JST)


def full_export(residents: Iterable[ResidentRecord], *, as_of: datetime) -> list[LinkageRow]:
    """Every link that started before ``as_of`` and was not deleted before it (区分 全件), in its
    state at ``as_of``."""
    as_of = _aware(as_of, "as_of")
    rows = [
        link.row(as_of - timedelta(microseconds=1), Category.FULL, as_of)
        for link in _links(residents)
        # Events before as_of are applied, events at as_of are not (they open the next delta).
        if link.start() < as_of <= link.end()
    ]
    return sorted(rows, key=lambda r: (r.atena_number, r.valid_from, r.serial))


def delta_export(residents: Iterable[ResidentRecord], *, since: datetime, as_of: datetime) -> list[LinkageRow]:
    """Every 追加 / 変更 / 削除 event at ``since`` ≤ time < ``as_of``, in time order."""
    since, as_of = _aware(since, "since"), _aware(as_of, "as_of")
    if since > as_of:
        raise ValueError("since is after as_of")
    events: list[tuple[datetime, int, str, LinkageRow]] = []
    order = {Category.ADDED: 0, Category.CHANGED: 1, Category.DELETED: 2}
    for link in _links(residents):
        happenings = [(link.start(), Category.ADDED), (link.end(), Category.DELETED)]
        if link.cert.revoked_at is not None:
            happenings.append((link.cert.revoked_at.astimezone(JST), Category.CHANGED))
        for when, category in happenings:
            if since <= when < as_of:
                events.append((when, order[category], link.serial, link.row(when, category, as_of)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [e[3] for e in events]


def apply_delta(base: Sequence[LinkageRow], delta: Sequence[LinkageRow]) -> list[LinkageRow]:
    """What an importer holds after applying ``delta`` to ``base`` (rows keyed by serial); the
    result is in full-export form (区分 全件), sorted like :func:`full_export`."""
    state = {r.serial: r for r in base}
    created = delta[-1].created_at if delta else (base[0].created_at if base else None)
    for row in delta:
        if row.category is Category.DELETED:
            state.pop(row.serial, None)
        elif row.category in (Category.ADDED, Category.CHANGED):
            state[row.serial] = row
        else:
            raise LinkageFormatError("a delta cannot contain 全件 rows")
    rows = [replace(r, category=Category.FULL, created_at=created or r.created_at) for r in state.values()]
    return sorted(rows, key=lambda r: (r.atena_number, r.valid_from, r.serial))


def to_csv(rows: Iterable[LinkageRow]) -> bytes:
    """The CSV bytes: UTF-8 without BOM, CRLF, a header row, minimal quoting."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow((
            r.serial,
            r.atena_number,
            r.valid_from.isoformat(),
            r.valid_to.isoformat(),
            "" if r.revoked_at is None else r.revoked_at.astimezone(JST).isoformat(),
            r.category.value,
            r.created_at.astimezone(JST).isoformat(),
        ))
    return buffer.getvalue().encode("utf-8")


def parse_csv(data: bytes) -> list[LinkageRow]:
    """Read a file written by :func:`to_csv` (strictly: header, column count, values)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LinkageFormatError("not UTF-8") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise LinkageFormatError("the header row is not the documented one")
    rows = []
    for line, fields in enumerate(reader, start=2):
        if len(fields) != len(COLUMNS):
            raise LinkageFormatError(f"line {line}: expected {len(COLUMNS)} fields")
        serial, atena, valid_from, valid_to, revoked, category, created = fields
        try:
            rows.append(LinkageRow(
                serial=serial,
                atena_number=atena,
                valid_from=date.fromisoformat(valid_from),
                valid_to=date.fromisoformat(valid_to),
                revoked_at=_parse_moment(revoked) if revoked else None,
                category=Category(category),
                created_at=_parse_moment(created),
            ))
        except ValueError as exc:
            raise LinkageFormatError(f"line {line}: a value is not in the documented form") from exc
    return rows


def _parse_moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise ValueError("no UTC offset")
    return moment
