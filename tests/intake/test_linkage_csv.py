"""The 番号紐付情報 CSV reader: portal_sim's format, every broken line reported, no value in a message."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from intake.jst import JST
from intake.linkage.csvformat import COLUMNS, Category, parse_linkage_file
from intake.linkage.errors import LinkageFileRejected
from intake.linkage.values import arrival_day, normalise_serial
from portal_sim import linkage as sim

HEADER = ",".join(COLUMNS)
CREATED = "2026-11-25T00:00:00+09:00"
GOOD = f"1A2B3C4D5E6F,0000012345,2025-04-01,2030-03-31,,全件,{CREATED}"


def csv_bytes(*lines: str, header: str = HEADER) -> bytes:
    return "".join(f"{line}\r\n" for line in (header, *lines)).encode()


def test_the_columns_are_portal_sims() -> None:
    assert COLUMNS == sim.COLUMNS
    assert {c.value for c in Category} == {c.value for c in sim.Category}


def test_portal_sims_own_csv_reads_back_row_for_row() -> None:
    created = datetime(2026, 11, 25, tzinfo=JST)
    rows = [
        sim.LinkageRow("0ABCDEF012345", "0000000001", date(2025, 1, 1), date(2026, 11, 20),
                       datetime(2026, 11, 20, 9, 30, tzinfo=JST), sim.Category.CHANGED, created),
        sim.LinkageRow("FEDCBA9876543210", "0000000002", date(2026, 11, 20), date(2031, 11, 19), None,
                       sim.Category.ADDED, created),
        sim.LinkageRow("1234", "0000000003", date(2020, 1, 1), date(2025, 12, 31), None, sim.Category.DELETED,
                       created),
    ]
    parsed = parse_linkage_file(sim.to_csv(rows))
    assert parsed.kind == "delta"
    assert parsed.created_at == created
    assert [(r.line, r.category.value, r.serial, r.atena_number, r.valid_from, r.valid_to, r.revoked_at)
            for r in parsed.rows] == [
        (2, "変更", "ABCDEF012345", "0000000001", date(2025, 1, 1), date(2026, 11, 20),
         datetime(2026, 11, 20, 9, 30, tzinfo=JST)),
        (3, "追加", "FEDCBA9876543210", "0000000002", date(2026, 11, 20), date(2031, 11, 19), None),
        (4, "削除", "1234", "0000000003", date(2020, 1, 1), date(2025, 12, 31), None),
    ]


@pytest.mark.parametrize(("data", "kind"), [
    pytest.param(csv_bytes(GOOD), "full", id="全件-rows-are-full"),
    pytest.param(csv_bytes(GOOD.replace("全件", "追加")), "delta", id="追加-rows-are-delta"),
    pytest.param(csv_bytes(), "delta", id="header-only-is-an-empty-delta"),
])
def test_auto_mode_takes_the_kind_from_the_rows(data: bytes, kind: str) -> None:
    assert parse_linkage_file(data).kind == kind


def test_serials_are_normalised_like_the_arrival_record() -> None:
    assert normalise_serial("00ab12") == "AB12"
    assert normalise_serial("000") == "0"
    assert normalise_serial("AB-12") is None
    parsed = parse_linkage_file(csv_bytes(GOOD.replace("1A2B3C4D5E6F", "001a2b3c4d5e6f")))
    assert parsed.rows[0].serial == "1A2B3C4D5E6F"


def test_arrival_day_is_the_jst_calendar_day() -> None:
    assert arrival_day(datetime(2026, 11, 24, 15, 30, tzinfo=JST).astimezone(JST)) == date(2026, 11, 24)
    assert arrival_day(datetime.fromisoformat("2026-11-24T15:30:00+00:00")) == date(2026, 11, 25)


BROKEN = [
    ("serial-not-hex", "1A2B-3C4D,0000012345,2025-04-01,2030-03-31,,全件," + CREATED, COLUMNS[0]),
    ("serial-empty", ",0000012345,2025-04-01,2030-03-31,,全件," + CREATED, COLUMNS[0]),
    ("serial-too-long", "A" * 65 + ",0000012345,2025-04-01,2030-03-31,,全件," + CREATED, COLUMNS[0]),
    ("atena-nine-digits", "1A2B,000012345,2025-04-01,2030-03-31,,全件," + CREATED, COLUMNS[1]),
    ("atena-not-digits", "1A2B,00000123X5,2025-04-01,2030-03-31,,全件," + CREATED, COLUMNS[1]),
    ("atena-fullwidth-digits", "1A2B,０００００１２３４５,2025-04-01,2030-03-31,,全件," + CREATED, COLUMNS[1]),
    ("valid-from-not-a-date", "1A2B,0000012345,2025-13-01,2030-03-31,,全件," + CREATED, COLUMNS[2]),
    ("valid-to-compact-form", "1A2B,0000012345,2025-04-01,20300331,,全件," + CREATED, COLUMNS[3]),
    ("valid-to-before-from", "1A2B,0000012345,2025-04-01,2025-03-31,,全件," + CREATED, COLUMNS[3]),
    ("revoked-not-a-moment", "1A2B,0000012345,2025-04-01,2030-03-31,yesterday,全件," + CREATED, COLUMNS[4]),
    ("revoked-without-offset", "1A2B,0000012345,2025-04-01,2026-11-20,2026-11-20T09:00:00,変更," + CREATED,
     COLUMNS[4]),
    ("valid-to-after-revocation-day",
     "1A2B,0000012345,2025-04-01,2030-03-31,2026-11-20T09:00:00+09:00,全件," + CREATED, COLUMNS[3]),
    ("unknown-category", "1A2B,0000012345,2025-04-01,2030-03-31,,更新," + CREATED, COLUMNS[5]),
    ("created-without-offset", "1A2B,0000012345,2025-04-01,2030-03-31,,全件,2026-11-25T00:00:00", COLUMNS[6]),
    ("created-differs", "1A2B,0000012345,2025-04-01,2030-03-31,,全件,2026-11-26T00:00:00+09:00", COLUMNS[6]),
    ("delta-row-in-full-file", "1A2B,0000012345,2025-04-01,2030-03-31,,追加," + CREATED, COLUMNS[5]),
    ("six-fields", "1A2B,0000012345,2025-04-01,2030-03-31,,全件", None),
    ("eight-fields", "1A2B,0000012345,2025-04-01,2030-03-31,,全件," + CREATED + ",x", None),
    ("empty-line", "", None),
]


@pytest.mark.parametrize(("line", "column"), [pytest.param(line, column, id=name) for name, line, column in BROKEN])
def test_a_broken_line_rejects_the_file_naming_line_and_column(line: str, column: str | None) -> None:
    with pytest.raises(LinkageFileRejected) as info:
        parse_linkage_file(csv_bytes(GOOD, line, GOOD.replace("1A2B3C4D5E6F", "FFFF")))
    assert [(p.line, p.column) for p in info.value.problems] == [(3, column)]
    for value in line.split(","):
        if len(value) >= 4:
            assert value not in str(info.value)
            assert value not in str(info.value.problems[0])


def test_every_broken_line_is_reported_at_once() -> None:
    lines = [GOOD] + [line for _name, line, _column in BROKEN]
    with pytest.raises(LinkageFileRejected) as info:
        parse_linkage_file(csv_bytes(*lines), mode="full")
    assert sorted({p.line for p in info.value.problems}) == list(range(3, 3 + len(BROKEN)))
    assert info.value.code == "LINKAGE_FILE_REJECTED"


@pytest.mark.parametrize(("data", "mode", "line"), [
    pytest.param(b"", "auto", 0, id="empty-file"),
    pytest.param(b"\xef\xbb\xbf" + csv_bytes(GOOD), "auto", 1, id="byte-order-mark"),
    pytest.param(csv_bytes(GOOD, header=HEADER.replace("宛名番号", "宛名番号 ")), "auto", 1, id="header-differs"),
    pytest.param(csv_bytes(GOOD, header=",".join(reversed(COLUMNS))), "auto", 1, id="header-reordered"),
    pytest.param(csv_bytes(GOOD, GOOD).replace("全件".encode(), "全件".encode("cp932"), 1) , "auto", 2,
                 id="not-utf8-on-line-2"),
    pytest.param(csv_bytes(GOOD, '1A2B,"0000012345,2025-04-01'), "auto", 3, id="unterminated-quote"),
    pytest.param(csv_bytes(), "full", 0, id="explicit-full-without-rows"),
    pytest.param(csv_bytes(GOOD), "delta", 2, id="full-file-imported-as-delta"),
])
def test_file_level_problems(data: bytes, mode: str, line: int) -> None:
    with pytest.raises(LinkageFileRejected) as info:
        parse_linkage_file(data, mode=mode)  # type: ignore[arg-type]
    assert [p.line for p in info.value.problems] == [line]


def test_one_serial_with_two_numbers_is_a_notice_not_an_error() -> None:
    parsed = parse_linkage_file(csv_bytes(GOOD, GOOD.replace("0000012345", "0000099999")))
    assert len(parsed.rows) == 2
    assert [(n.line, n.column) for n in parsed.notices] == [(2, "宛名番号"), (3, "宛名番号")]


def test_parsed_file_repr_shows_no_row() -> None:
    parsed = parse_linkage_file(csv_bytes(GOOD))
    assert "0000012345" not in repr(parsed)
    assert "1A2B3C4D5E6F" not in repr(parsed)
