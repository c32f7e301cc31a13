"""番号紐付情報 as resident-register systems export it: a small declarative layout per source.

Registers rarely write the simulator's UTF-8 CSV: they export CP932 (Shift_JIS with Microsoft's
extensions) or UTF-8 with or without a BOM, as CSV or as fixed-width records, with their own date
forms (``20261125``, ``2026/11/25``, the era-digit form ``5081125`` = 令和8年11月25日) and their own
codes for 区分. A layout file (UTF-8 JSON, one per source) says how to read one export::

    {"name": "住記システムA（固定長）", "encoding": "cp932", "format": "fixed", "header_lines": 1,
     "record_bytes": 62,
     "columns": {"serial": {"start": 1, "length": 16}, "atena": {"start": 17, "length": 10},
                 "valid_from": {"start": 27, "length": 8}, "valid_to": {"start": 35, "length": 8},
                 "category": {"start": 43, "length": 1}, "created_at": {"start": 44, "length": 14}},
     "date_format": "%Y%m%d", "open_end": "99999999", "datetime_format": "%Y%m%d%H%M%S",
     "timezone": "+09:00", "categories": {"0": "全件", "1": "追加", "2": "変更", "3": "削除"}}

* ``encoding``: ``cp932``, ``utf-8`` (a BOM is refused, as in the native format) or ``utf-8-sig``
  (a BOM is allowed);
* ``format``: ``csv`` (RFC 4180; a column by ``index`` from 0 or by ``header`` name) or ``fixed``
  (``start`` from 1 and ``length``, in bytes of the encoded record — as register exports count —,
  every record ``record_bytes`` long, blanks trimmed);
* columns: ``serial``, ``atena``, ``valid_from``, ``valid_to``, ``category``, ``created_at``
  (required), ``revoked_at`` (optional); ``created_at`` may instead be one ``created_at_value`` for
  the whole file;
* ``date_format``: a ``strptime`` pattern or ``era7`` (era digit 1 明治 … 5 令和, then YYMMDD of the
  era year); ``open_end``: the value that means "no end" (becomes 9999-12-31);
  ``datetime_format`` + ``timezone``: the export moment and 失効日時 (an ISO form with offset when
  no pattern is given);
* ``categories``: the source's codes → 全件 / 追加 / 変更 / 削除;
* ``header_lines`` / ``trailer_lines``: lines to skip at the start / end.

Every record becomes the native row and is checked by the same rules as the native format
(:mod:`intake.linkage.csvformat`), so a broken record is reported by **its line number in the
source file**, the column and a fixed reason — never a value — and the file is all or nothing.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from intake.linkage.csvformat import COLUMNS, ParsedFile, RowFields, finish, row_of
from intake.linkage.errors import LineProblem, LinkageFileRejected
from intake.wareki import GREGORIAN_FROM
from signature.identity import ERAS

__all__ = ["Column", "Layout", "LayoutError", "load_layout", "parse_with_layout"]

_FIELDS = ("serial", "atena", "valid_from", "valid_to", "revoked_at", "category", "created_at")
_NAME = dict(zip(_FIELDS, COLUMNS, strict=True))  # the native column name each field is reported as
_ERA_FIRST = {e.code: (e.first or GREGORIAN_FROM) for e in ERAS}


_Category = Literal["全件", "追加", "変更", "削除"]


def _native_categories() -> dict[str, _Category]:
    return {"全件": "全件", "追加": "追加", "変更": "変更", "削除": "削除"}


class LayoutError(ValueError):
    """A layout file that cannot be used; the message names the file's field."""


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int | None = Field(default=None, ge=0, le=200)
    header: str | None = Field(default=None, min_length=1, max_length=64)
    start: int | None = Field(default=None, ge=1, le=10_000)
    length: int | None = Field(default=None, ge=1, le=1_000)


class Layout(BaseModel):
    """One source's export, declaratively (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    encoding: Literal["cp932", "utf-8", "utf-8-sig"]
    format: Literal["csv", "fixed"]
    header_lines: int = Field(default=0, ge=0, le=20)
    trailer_lines: int = Field(default=0, ge=0, le=20)
    record_bytes: int | None = Field(default=None, ge=1, le=10_000)
    columns: dict[Literal["serial", "atena", "valid_from", "valid_to", "revoked_at", "category", "created_at"],
                  Column]
    created_at_value: str | None = None
    date_format: str = "%Y-%m-%d"
    open_end: str | None = None
    datetime_format: str | None = None
    timezone: str = Field(default="+09:00", pattern=r"^[+-]\d{2}:\d{2}$")
    categories: dict[str, _Category] = Field(default_factory=_native_categories)

    @model_validator(mode="after")
    def _complete(self) -> Layout:
        needed = {"serial", "atena", "valid_from", "valid_to", "category"}
        if self.created_at_value is None:
            needed.add("created_at")
        missing = sorted(needed - set(self.columns))
        if missing:
            raise ValueError(f"columns: missing {missing}")
        for name, col in self.columns.items():
            if self.format == "fixed" and (col.start is None or col.length is None):
                raise ValueError(f"columns.{name}: a fixed-width column needs start and length")
            if self.format == "csv" and (col.index is None) == (col.header is None):
                raise ValueError(f"columns.{name}: a CSV column needs index or header (one of them)")
        if self.format == "fixed" and self.record_bytes is None:
            raise ValueError("record_bytes is required for a fixed-width layout")
        return self


def load_layout(path: Path) -> Layout:
    """Read and check a layout file; :class:`LayoutError` names the field of the first problem."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Layout.model_validate(raw)
    except OSError as exc:
        raise LayoutError(f"cannot read the layout file ({type(exc).__name__})") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        if isinstance(exc, ValidationError):
            where = ", ".join(sorted({".".join(str(p) for p in e["loc"]) or e["msg"] for e in exc.errors()}))
            raise LayoutError(f"the layout does not fit: {where}") from None
        raise LayoutError("the layout is not UTF-8 JSON") from exc


def parse_with_layout(data: bytes, layout: Layout, *, mode: Literal["auto", "full", "delta"] = "auto") -> ParsedFile:
    """The export ``data`` read with ``layout`` and checked as the native format is; all or nothing
    (:class:`LinkageFileRejected` with every problem, by source line number)."""
    problems: list[LineProblem] = []
    records = _records(data, layout, problems)
    rows = []
    created: list[tuple[int, datetime]] = []
    for line, values in records:
        fields = _convert(line, values, layout, problems)
        if fields is None:
            continue
        row = row_of(line, fields, problems, created)
        if row is not None:
            rows.append(row)
    return finish(rows, created, problems, mode)


def _lines(data: bytes, layout: Layout, problems: list[LineProblem]) -> list[tuple[int, bytes]]:
    if data.startswith(b"\xef\xbb\xbf"):
        if layout.encoding == "utf-8-sig":
            data = data[3:]
        else:
            raise LinkageFileRejected((LineProblem(1, None, "starts with a byte-order mark (the layout has none)"),))
    raw = data.split(b"\n")
    if raw and raw[-1] in (b"", b"\x1a"):  # a final line end (and a DOS end-of-file mark) end no record
        raw = raw[:-1]
    numbered = [(i + 1, r.removesuffix(b"\r")) for i, r in enumerate(raw)]
    body = numbered[layout.header_lines:len(numbered) - layout.trailer_lines if layout.trailer_lines else None]
    if not body and not numbered:
        problems.append(LineProblem(0, None, "the file is empty"))
    return body


def _decode(value: bytes, layout: Layout) -> str | None:
    try:
        return value.decode("cp932" if layout.encoding == "cp932" else "utf-8")
    except UnicodeDecodeError:
        return None


def _records(data: bytes, layout: Layout, problems: list[LineProblem]) -> list[tuple[int, dict[str, str]]]:
    out: list[tuple[int, dict[str, str]]] = []
    if layout.format == "fixed":
        for line, record in _lines(data, layout, problems):
            if len(record) != layout.record_bytes:
                problems.append(LineProblem(line, None, f"expected a record of {layout.record_bytes} bytes"))
                continue
            values: dict[str, str] = {}
            for name, col in layout.columns.items():
                start, length = (col.start or 1) - 1, col.length or 0  # both set: the layout checked it
                text = _decode(record[start:start + length], layout)
                if text is None:
                    problems.append(LineProblem(line, _NAME[name], f"not {layout.encoding}"))
                    break
                values[name] = text.strip(" \u3000")
            else:
                out.append((line, values))
        return out
    # CSV: decode the whole text, then read it as CSV with the source's line numbers
    body = data[3:] if layout.encoding == "utf-8-sig" and data.startswith(b"\xef\xbb\xbf") else data
    if data.startswith(b"\xef\xbb\xbf") and layout.encoding != "utf-8-sig":
        raise LinkageFileRejected((LineProblem(1, None, "starts with a byte-order mark (the layout has none)"),))
    try:
        text = body.decode("cp932" if layout.encoding == "cp932" else "utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise LinkageFileRejected((LineProblem(line, None, f"not {layout.encoding}"),)) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] = []
    lines: list[tuple[int, list[str]]] = []
    try:
        for _ in range(layout.header_lines):
            header = next(reader, [])
        line = reader.line_num + 1
        for fields in reader:
            lines.append((line, fields))
            line = reader.line_num + 1
    except csv.Error:
        problems.append(LineProblem(reader.line_num, None,
                                    "not valid CSV (quoting); the rest of the file was not read"))
    if layout.trailer_lines:
        lines = lines[:-layout.trailer_lines]
    index: dict[str, int] = {}
    for name, col in layout.columns.items():
        if col.index is not None:
            index[name] = col.index
        elif col.header in header:
            index[name] = header.index(str(col.header))
        else:
            raise LinkageFileRejected((LineProblem(layout.header_lines, _NAME[name],
                                                   "the header has no column of this name"),))
    for line, fields in lines:
        if not fields:
            problems.append(LineProblem(line, None, "empty line"))
            continue
        if max(index.values()) >= len(fields):
            problems.append(LineProblem(line, None, "too few fields"))
            continue
        out.append((line, {name: fields[i].strip() for name, i in index.items()}))
    return out


def _convert(line: int, values: dict[str, str], layout: Layout, problems: list[LineProblem]) -> RowFields | None:
    """The native row's seven fields from a source record; ``None`` (and problems) if a value cannot be
    converted."""
    found: list[LineProblem] = []
    out: dict[str, str] = {}
    for name in ("valid_from", "valid_to"):
        day = _day(values.get(name, ""), layout)
        if day is None:
            found.append(LineProblem(line, _NAME[name], f"not a date ({layout.date_format})"))
        else:
            out[name] = day.isoformat()
    for name in ("revoked_at", "created_at"):
        raw = layout.created_at_value if name == "created_at" and layout.created_at_value else values.get(name, "")
        if name == "revoked_at" and not raw:
            out[name] = ""
            continue
        moment = _moment(raw, layout)
        if moment is None:
            found.append(LineProblem(line, _NAME[name], "not a date-time of the layout's form"))
        else:
            out[name] = moment.isoformat()
    code = values.get("category", "")
    if code not in layout.categories:
        found.append(LineProblem(line, _NAME["category"], "not one of the layout's 区分 codes"))
    else:
        out["category"] = layout.categories[code]
    problems.extend(found)
    if found:
        return None
    return (values["serial"], values["atena"], out["valid_from"], out["valid_to"], out["revoked_at"],
            out["category"], out["created_at"])


def _day(value: str, layout: Layout) -> date | None:
    if layout.open_end is not None and value == layout.open_end:
        return date(9999, 12, 31)
    if layout.date_format == "era7":
        if len(value) != 7 or not value.isdigit() or value[0] not in _ERA_FIRST:
            return None
        first = _ERA_FIRST[value[0]]
        try:
            d = date(first.year + int(value[1:3]) - 1, int(value[3:5]), int(value[5:7]))
        except ValueError:
            return None
        era = next(e for e in ERAS if e.code == value[0])
        return d if era.contains(d) and d >= first else None
    try:
        return datetime.strptime(value, layout.date_format).date()  # noqa: DTZ007 - a calendar day, no time
    except ValueError:
        return None


def _moment(value: str, layout: Layout) -> datetime | None:
    try:
        if layout.datetime_format is None:
            moment = datetime.fromisoformat(value)
            return moment if moment.utcoffset() is not None else None
        return datetime.strptime(value + layout.timezone.replace(":", ""),  # noqa: DTZ007 - %z is appended
                                 layout.datetime_format + "%z")
    except ValueError:
        return None
