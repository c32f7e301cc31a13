"""番号紐付情報 as registers export it: CP932 fixed-width, UTF-8 CSV with a BOM and named columns,
era-digit dates — read through a declarative layout file, checked by the native rules, refused
lines reported by their line in the source file without values; imported end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.db import make_engine
from intake.linkage.errors import LinkageFileRejected
from intake.linkage.importer import import_linkage
from intake.linkage.layouts import Layout, LayoutError, load_layout, parse_with_layout
from intake.migrate import upgrade
from intake.models import LinkageEntry
from tests.conftest import NOW

FIXED = {
    "name": "住記A 固定長", "encoding": "cp932", "format": "fixed", "header_lines": 1, "trailer_lines": 1,
    "record_bytes": 58,
    "columns": {"serial": {"start": 1, "length": 16}, "atena": {"start": 17, "length": 10},
                "valid_from": {"start": 27, "length": 8}, "valid_to": {"start": 35, "length": 8},
                "category": {"start": 43, "length": 2}, "created_at": {"start": 45, "length": 14}},
    "date_format": "%Y%m%d", "open_end": "99999999", "datetime_format": "%Y%m%d%H%M%S",
    "categories": {"00": "全件", "01": "追加", "02": "変更", "03": "削除"},
}
CREATED = "20261125063000"


def record(serial: str, atena: str, start: str, end: str, code: str = "00", created: str = CREATED) -> bytes:
    return f"{serial:<16}{atena}{start}{end}{code}{created}".encode("cp932")


def fixed_file(*records: bytes) -> bytes:
    header = "番号紐付情報（全件）　港区住民記録システム".encode("cp932")
    trailer = f"件数{len(records):06d}".encode("cp932")
    return b"\r\n".join([header, *records, trailer]) + b"\r\n"


def test_cp932_fixed_width_with_a_header_and_a_trailer() -> None:
    layout = Layout.model_validate(FIXED)
    data = fixed_file(record("1A2B3C4D5E6F", "0000012345", "20260401", "99999999"),
                      record("00ABCDEF", "0000067890", "20250101", "20261231"))
    parsed = parse_with_layout(data, layout, mode="auto")
    assert parsed.kind == "full"
    assert [(r.line, r.serial, r.atena_number, r.valid_from.isoformat(), r.valid_to.isoformat())
            for r in parsed.rows] == [(2, "1A2B3C4D5E6F", "0000012345", "2026-04-01", "9999-12-31"),
                                      (3, "ABCDEF", "0000067890", "2025-01-01", "2026-12-31")]
    assert parsed.created_at is not None
    assert parsed.created_at.isoformat() == "2026-11-25T06:30:00+09:00"


def test_refused_lines_by_their_source_line_without_values() -> None:
    layout = Layout.model_validate(FIXED)
    data = fixed_file(record("1A2B3C4D5E6F", "0000012345", "20260401", "99999999"),
                      record("XYZ-NOT-HEX", "0000067890", "20250101", "20261231"),
                      record("ABC", "12345", "20250101", "20261231"),  # too short a 宛名番号: a short record
                      record("ABC", "0000011111", "20251301", "20261231"),
                      record("ABD", "0000022222", "20250101", "20261231", code="09"))
    with pytest.raises(LinkageFileRejected) as caught:
        parse_with_layout(data, layout, mode="auto")
    problems = [(p.line, p.column, p.reason) for p in caught.value.problems]
    assert problems == [
        (3, "利用者証明用電子証明書シリアル番号", "not a hexadecimal serial number (1–64 hex digits)"),
        (4, None, "expected a record of 58 bytes"),
        (5, "有効開始日", "not a date (%Y%m%d)"),
        (6, "区分", "not one of the layout's 区分 codes"),
    ]
    text = repr(caught.value) + " ".join(f"{p}" for p in caught.value.problems)
    for value in ("XYZ-NOT-HEX", "0000067890", "0000011111", "20251301"):
        assert value not in text


def test_utf8_csv_with_a_bom_named_columns_and_era_dates() -> None:
    layout = Layout.model_validate({
        "name": "住記B CSV", "encoding": "utf-8-sig", "format": "csv", "header_lines": 1,
        "columns": {"serial": {"header": "シリアル"}, "atena": {"header": "宛名番号"},
                    "valid_from": {"header": "開始"}, "valid_to": {"header": "終了"}, "category": {"header": "区分"}},
        "created_at_value": "2026-11-25T06:30:00+09:00", "date_format": "era7",
        "categories": {"1": "追加", "2": "変更", "3": "削除"},
    })
    data = ("\ufeff宛名番号,シリアル,区分,開始,終了\r\n"
            "0000012345,1a2b3c,1,5080401,5081231\r\n"  # 令和8年4月1日 … 令和8年12月31日
            "0000067890,ff01,3,4310430,5010501\r\n").encode()  # 平成31年4月30日 … 令和元年5月1日
    parsed = parse_with_layout(data, layout, mode="auto")
    assert parsed.kind == "delta"
    assert [(r.line, r.serial, str(r.category), r.valid_from.isoformat(), r.valid_to.isoformat())
            for r in parsed.rows] == [(2, "1A2B3C", "追加", "2026-04-01", "2026-12-31"),
                                      (3, "FF01", "削除", "2019-04-30", "2019-05-01")]
    bad = data.replace(b"4310430", b"4310501")  # 平成31年5月1日 does not exist
    with pytest.raises(LinkageFileRejected) as caught:
        parse_with_layout(bad, layout, mode="auto")
    assert [(p.line, p.column) for p in caught.value.problems] == [(3, "有効開始日")]
    with pytest.raises(LinkageFileRejected):  # a BOM where the layout says plain UTF-8
        parse_with_layout(data, layout.model_copy(update={"encoding": "utf-8"}), mode="auto")


def test_cp932_that_is_not_cp932_is_refused_by_line() -> None:
    layout = Layout.model_validate({**FIXED, "format": "csv", "record_bytes": None, "header_lines": 0,
                                    "trailer_lines": 0, "columns": {k: {"index": i} for i, k in enumerate(
                                        ("serial", "atena", "valid_from", "valid_to", "category", "created_at"))}})
    good = "1A2B,0000012345,20260401,99999999,00,20261125063000\r\n".encode("cp932")
    assert len(parse_with_layout(good, layout).rows) == 1
    with pytest.raises(LinkageFileRejected) as caught:
        parse_with_layout(good + b"\x82\xa0\x85\x40,broken\r\n", layout)
    assert [(p.line, p.reason) for p in caught.value.problems] == [(2, "not cp932")]


def test_layout_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(FIXED, ensure_ascii=False), encoding="utf-8")
    assert load_layout(path).name == "住記A 固定長"
    for broken in ({**FIXED, "columns": {"serial": {"start": 1, "length": 16}}},
                   {**FIXED, "record_bytes": None}, {**FIXED, "encoding": "euc-jp"}, {**FIXED, "extra": 1}):
        path.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
        with pytest.raises(LayoutError):
            load_layout(path)


def test_import_through_a_layout(session: Session) -> None:
    layout = Layout.model_validate(FIXED)
    data = fixed_file(record("1A2B3C4D5E6F", "0000012345", "20260401", "99999999"))
    result = import_linkage(session, data, file_name="juki.dat", at=NOW, layout=layout)
    session.commit()
    assert (result.ok, result.rows, result.added) == (True, 1, 1)
    entry = session.scalar(select(LinkageEntry))
    assert entry is not None
    assert (entry.cert_serial, entry.atena_number) == ("1A2B3C4D5E6F", "0000012345")


def test_the_command_line_takes_a_layout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    upgrade(url)
    make_engine(url).dispose()
    layout = tmp_path / "juki.json"
    layout.write_text(json.dumps(FIXED, ensure_ascii=False), encoding="utf-8")
    export = tmp_path / "juki.dat"
    export.write_bytes(fixed_file(record("1A2B3C4D5E6F", "0000012345", "20260401", "99999999")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({"SHINSEI_INTAKE_ENVIRONMENT": "development", "SHINSEI_INTAKE_DATABASE_URL": url,
                "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var")})
    done = subprocess.run([sys.executable, "-m", "intake", "linkage", "import", str(export), "--layout", str(layout)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "0000012345" not in done.stdout + done.stderr
    layout.write_text("{", encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "intake", "linkage", "import", str(export), "--layout", str(layout)],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2
    assert "LINKAGE_LAYOUT" in bad.stderr
