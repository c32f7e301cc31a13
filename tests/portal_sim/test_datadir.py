"""The data directory contract: records round-trip, lookups refuse anything but a receipt number,
a directory is complete or absent."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from portal_sim.datadir import (
    JST,
    ApplicationKind,
    ApplicationRecord,
    Counts,
    DataDir,
    DataDirWriter,
    Defect,
    HouseholdMember,
    Manifest,
    ResidentRecord,
    UserCert,
)
from portal_sim.errors import DataDirError, InvalidReceiptNumber, UnknownReceiptNumber

RECEIPT = "20261125-0000000001"
ARRIVED = datetime(2026, 11, 25, 10, 11, 12, tzinfo=JST)

RECORD = ApplicationRecord(
    receipt_number=RECEIPT, arrived_at=ARRIVED, procedure_id="JUMIN-TENSHUTSU", procedure_name="転出届",
    department="芝地区総合支所 区民課", kind=ApplicationKind.CORRECTION, first_receipt_number="20261124-0000000009",
    defect=Defect.EICAR_ATTACHMENT, package=f"packages/{RECEIPT}.zip", sha256="0" * 64, size=3, resident_id="R000001",
)
RESIDENT = ResidentRecord(
    resident_id="R000001", atena_number="0123456789", my_number="123456789018", name="髙橋　花子",
    name_kana="タカハシ　ハナコ", sex="2", birth_date=date(1990, 1, 23), address="東京都港区芝公園一丁目5番25号",
    name_alt="高橋　花子", address_alt=None,
    user_certs=(UserCert("7A", date(2022, 1, 1), date(2027, 1, 23), ARRIVED), UserCert("7B", date(2026, 11, 25),
                                                                                      date(2031, 1, 23))),
    signing_cert_serials=("1A", "1B"),
    household=(HouseholdMember("子", "髙橋　蓮", "タカハシ　レン", "1", date(2021, 4, 1), "000000000019"),),
)
MANIFEST = Manifest(format=1, seed=3, municipality_code="131032", api_key="ab" * 16,
                    generated_for=datetime(2026, 11, 1, tzinfo=JST), counts=Counts(1, 1, 1, 2, 1, {"補正": 1},
                                                                                  {"eicar_attachment": 1}),
                    days=30, defect_rate=0.5)


@pytest.mark.parametrize("record", [RECORD, RESIDENT, MANIFEST], ids=["application", "resident", "manifest"])
def test_records_round_trip_through_json(record: ApplicationRecord | ResidentRecord | Manifest) -> None:
    text = json.dumps(record.to_json(), ensure_ascii=False)
    assert type(record).from_json(json.loads(text)) == record


def write_dir(tmp_path: Path, data: bytes = b"zip") -> DataDir:
    with DataDirWriter(tmp_path / "d") as writer:
        writer.write_package(RECEIPT, data)
        writer.write_applications([RECORD])
        writer.write_residents([RESIDENT])
        return writer.commit(MANIFEST)


def test_a_committed_directory_reads_back(tmp_path: Path) -> None:
    d = write_dir(tmp_path)
    assert d.manifest == MANIFEST
    assert d.applications() == [RECORD]
    assert d.residents() == [RESIDENT]
    assert d.application(RECEIPT) == RECORD
    assert d.package_bytes(RECEIPT) == b"zip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary leftovers
    assert (d.path / "residents.jsonl").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "name",
    ["../manifest", f"{RECEIPT}/../../x", f"../{RECEIPT}", "", "20261125-000000000１", f"{RECEIPT}.zip",
     f"{RECEIPT}\n", "/etc/passwd", "20261125_0000000001"],
    ids=["dotdot", "nested-dotdot", "prefix-dotdot", "empty", "fullwidth-digit", "with-suffix", "newline",
         "absolute", "underscore"],
)
def test_package_lookup_refuses_anything_but_a_receipt_number(tmp_path: Path, name: str) -> None:
    d = write_dir(tmp_path)
    with pytest.raises(InvalidReceiptNumber):
        d.package_bytes(name)
    with pytest.raises(InvalidReceiptNumber):
        d.application(name)


def test_unknown_receipt_numbers_are_reported_as_such(tmp_path: Path) -> None:
    d = write_dir(tmp_path)
    with pytest.raises(UnknownReceiptNumber) as info:
        d.package_bytes("20261125-0000000002")
    assert info.value.receipt_number == "20261125-0000000002"
    with pytest.raises(UnknownReceiptNumber):
        d.application("20261125-0000000002")


def test_the_minimal_manifest_of_the_contract_is_read(tmp_path: Path) -> None:
    """Only format, seed, municipality_code, api_key, generated_for and counts.applications are
    required; a plain date in generated_for means 00:00 JST."""
    (tmp_path / "manifest.json").write_text(json.dumps({
        "format": 1, "seed": 1, "municipality_code": "131032", "api_key": "0" * 32,
        "generated_for": "2026-11-25", "counts": {"applications": 0}}), "utf-8")
    m = DataDir(tmp_path).manifest
    assert m.generated_for == datetime(2026, 11, 25, tzinfo=JST)
    assert m.period_end is None
    assert m.counts.residents == 0


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        pytest.param(None, "missing", id="no-manifest"),
        pytest.param("{", "not JSON", id="not-json"),
        pytest.param(json.dumps({"format": 2}), "format", id="other-format"),
        pytest.param(json.dumps({**MANIFEST.to_json(), "generated_for": "2026-11-01T00:00:00"}), "offset",
                     id="naive-start"),
        pytest.param(json.dumps({**MANIFEST.to_json(), "seed": "3"}), "seed", id="seed-not-int"),
    ],
)
def test_an_incomplete_or_foreign_directory_is_refused(tmp_path: Path, manifest: str | None, fragment: str) -> None:
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(manifest, "utf-8")
    with pytest.raises(DataDirError, match=fragment):
        DataDir(tmp_path)


def test_a_malformed_jsonl_line_is_refused(tmp_path: Path) -> None:
    d = write_dir(tmp_path)
    (d.path / "applications.jsonl").write_text('{"receipt_number": 1}\n', "utf-8")
    with pytest.raises(DataDirError):
        DataDir(d.path).applications()


def test_the_writer_refuses_a_non_empty_target(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    with pytest.raises(DataDirError):
        DataDirWriter(tmp_path / "d")
    assert (tmp_path / "d" / "keep").read_text() == "x"


def test_a_failed_generation_leaves_nothing_behind(tmp_path: Path) -> None:
    def fail_half_way() -> None:
        with DataDirWriter(tmp_path / "d") as writer:
            writer.write_package(RECEIPT, b"zip")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert list(tmp_path.iterdir()) == []


def test_an_empty_target_directory_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    assert write_dir(tmp_path).package_bytes(RECEIPT) == b"zip"
