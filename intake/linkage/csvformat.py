"""Read a 番号紐付情報 CSV as ``portal_sim`` exports it (portal_sim/linkage.py, docs/portal-sim.md).

The format: UTF-8 without BOM, CRLF line ends, RFC 4180 quoting, one header row with exactly these
columns, in this order::

    利用者証明用電子証明書シリアル番号,宛名番号,有効開始日,有効終了日,失効日時,区分,作成日時

* シリアル番号: hex digits (normalised to uppercase without leading zeros, as ``signature`` reports
  the arrival record's serial);
* 宛名番号: 10 digits;
* 有効開始日 / 有効終了日: ISO dates (JST calendar), both inclusive, start ≤ end;
* 失効日時: empty, or an ISO date-time with UTC offset (the revocation moment); when set, 有効終了日
  is not after its JST day;
* 区分: ``全件`` in a full file; ``追加`` / ``変更`` / ``削除`` in a delta (rows in event order, each
  showing the link's state right after the event);
* 作成日時: the export's moment, ISO date-time with offset, the same on every row.

Parsing is all or nothing: every broken line is collected (:class:`LineProblem`: line number,
column name, fixed reason — never a value) and the file is rejected with all of them. Two rows
that give one serial different 宛名番号 are **not** broken: the register said so, and the import
records both (the chains using that serial become CONFLICT); they are listed in ``notices``.
"""

from __future__ import annotations

import csv
import enum
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from intake.jst import JST
from intake.linkage.errors import LineProblem, LinkageFileRejected
from intake.linkage.values import ATENA_NUMBER_RE, normalise_serial

__all__ = ["COLUMNS", "Category", "LinkageRow", "ParsedFile", "RowFields", "finish", "parse_linkage_file", "row_of"]

#: The seven fields of one row, in :data:`COLUMNS` order, as text (other layouts convert to this,
#: :mod:`intake.linkage.layouts`).
RowFields = tuple[str, str, str, str, str, str, str]

COLUMNS = (
    "利用者証明用電子証明書シリアル番号",
    "宛名番号",
    "有効開始日",
    "有効終了日",
    "失効日時",
    "区分",
    "作成日時",
)
_SERIAL, _ATENA, _FROM, _TO, _REVOKED, _CATEGORY, _CREATED = COLUMNS


class Category(enum.StrEnum):
    """区分."""

    FULL = "全件"
    ADDED = "追加"
    CHANGED = "変更"
    DELETED = "削除"


@dataclass(frozen=True)
class LinkageRow:
    line: int
    category: Category
    serial: str  # normalised
    atena_number: str
    valid_from: date
    valid_to: date
    revoked_at: datetime | None


@dataclass(frozen=True)
class ParsedFile:
    kind: Literal["full", "delta"]
    rows: tuple[LinkageRow, ...]
    #: the export's moment (``None`` only for a file without rows)
    created_at: datetime | None
    #: not errors: lines whose serial another line links to a different 宛名番号
    notices: tuple[LineProblem, ...]

    def __repr__(self) -> str:  # rows hold personal data: never print them
        return f"ParsedFile(kind={self.kind!r}, rows={len(self.rows)}, created_at={self.created_at!r})"


def parse_linkage_file(data: bytes, *, mode: Literal["auto", "full", "delta"] = "auto") -> ParsedFile:
    """Parse and check the whole file; :class:`LinkageFileRejected` with every problem if any.

    ``mode="auto"`` takes the kind from the first data row's 区分 (a file with no rows is an empty
    delta); ``"full"`` / ``"delta"`` insist, and rows of the other kind are broken lines. An explicit
    full file without rows is refused: it would make every entry inactive.
    """
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[LineProblem] = []
    try:
        header = next(reader, None)
    except csv.Error:
        raise LinkageFileRejected((LineProblem(1, None, "the header row is not valid CSV"),)) from None
    if header is None:
        raise LinkageFileRejected((LineProblem(0, None, "the file is empty (no header row)"),))
    if tuple(header) != COLUMNS:
        raise LinkageFileRejected((LineProblem(1, None, "the header row is not the documented one"),))
    rows: list[LinkageRow] = []
    created: list[tuple[int, datetime]] = []
    line = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error:
            problems.append(LineProblem(line, None, "not valid CSV (quoting); the rest of the file was not read"))
            break
        row = row_of(line, fields, problems, created)
        if row is not None:
            rows.append(row)
        line = reader.line_num + 1
    return finish(rows, created, problems, mode)


def finish(rows: list[LinkageRow], created: list[tuple[int, datetime]], problems: list[LineProblem],
           mode: Literal["auto", "full", "delta"]) -> ParsedFile:
    """The file-wide checks after every row was read (kind, one 作成日時, a full file with rows); all or
    nothing: :class:`LinkageFileRejected` with every problem."""
    kind = _kind(mode, rows, problems)
    if created:
        first = created[0][1]
        problems.extend(LineProblem(n, _CREATED, "differs from the first row's 作成日時")
                        for n, c in created if c != first)
    if kind == "full" and mode == "full" and not rows and not problems:
        problems.append(LineProblem(0, None, "a full file without rows would make every entry inactive"))
    if problems:
        raise LinkageFileRejected(tuple(problems))
    return ParsedFile(kind, tuple(rows), created[0][1] if created else None, _conflict_notices(rows))


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        raise LinkageFileRejected((LineProblem(1, None, "starts with a byte-order mark (the format has none)"),))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LinkageFileRejected((LineProblem(line, None, "not UTF-8"),)) from None


def row_of(
    line: int, fields: list[str] | RowFields, problems: list[LineProblem], created: list[tuple[int, datetime]],
) -> LinkageRow | None:
    """One row's seven fields checked (problems appended, by ``line``), or None if broken."""
    if not fields:
        problems.append(LineProblem(line, None, "empty line"))
        return None
    if len(fields) != len(COLUMNS):
        problems.append(LineProblem(line, None, f"expected {len(COLUMNS)} fields"))
        return None
    raw_serial, atena, raw_from, raw_to, raw_revoked, raw_category, raw_created = fields
    found: list[LineProblem] = []
    serial = normalise_serial(raw_serial)
    if serial is None:
        found.append(LineProblem(line, _SERIAL, "not a hexadecimal serial number (1–64 hex digits)"))
    if not ATENA_NUMBER_RE.fullmatch(atena):
        found.append(LineProblem(line, _ATENA, "not a 宛名番号 (10 digits)"))
    valid_from = _date(raw_from, line, _FROM, found)
    valid_to = _date(raw_to, line, _TO, found)
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        found.append(LineProblem(line, _TO, "before 有効開始日"))
    revoked_at = _moment(raw_revoked, line, _REVOKED, found) if raw_revoked else None
    if revoked_at is not None and valid_to is not None and valid_to > revoked_at.astimezone(JST).date():
        found.append(LineProblem(line, _TO, "after the day of 失効日時"))
    try:
        category: Category | None = Category(raw_category)
    except ValueError:
        category = None
        found.append(LineProblem(line, _CATEGORY, "unknown 区分 (全件, 追加, 変更 or 削除)"))
    moment = _moment(raw_created, line, _CREATED, found)
    if moment is not None:
        created.append((line, moment))
    problems.extend(found)
    if found or serial is None or valid_from is None or valid_to is None or category is None:
        return None
    return LinkageRow(line, category, serial, atena, valid_from, valid_to, revoked_at)


def _date(value: str, line: int, column: str, found: list[LineProblem]) -> date | None:
    if len(value) != 10:  # date.fromisoformat also takes 20261125 and 2026-W48-3
        found.append(LineProblem(line, column, "not a date (YYYY-MM-DD)"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        found.append(LineProblem(line, column, "not a date (YYYY-MM-DD)"))
        return None


def _moment(value: str, line: int, column: str, found: list[LineProblem]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        found.append(LineProblem(line, column, "not an ISO 8601 date-time"))
        return None
    if moment.utcoffset() is None:
        found.append(LineProblem(line, column, "date-time without a UTC offset"))
        return None
    return moment


def _kind(mode: str, rows: list[LinkageRow], problems: list[LineProblem]) -> Literal["full", "delta"]:
    kind: Literal["full", "delta"]
    if mode == "full":
        kind = "full"
    elif mode == "delta":
        kind = "delta"
    else:
        kind = "full" if rows and rows[0].category is Category.FULL else "delta"
    for row in rows:
        if (row.category is Category.FULL) != (kind == "full"):
            reason = "a delta row (追加, 変更, 削除) in a full file" if kind == "full" else "a 全件 row in a delta file"
            problems.append(LineProblem(row.line, _CATEGORY, reason))
    return kind


def _conflict_notices(rows: list[LinkageRow]) -> tuple[LineProblem, ...]:
    numbers: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        numbers[row.serial].add(row.atena_number)
    return tuple(LineProblem(row.line, _ATENA, "another line gives this serial a different 宛名番号")
                 for row in rows if len(numbers[row.serial]) > 1)
