"""The 番号紐付情報 export: documented CSV, full and delta, consistent with residents.jsonl."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from portal_sim.datadir import JST, DataDir, ResidentRecord
from portal_sim.linkage import (
    COLUMNS,
    Category,
    LinkageFormatError,
    apply_delta,
    delta_export,
    full_export,
    parse_csv,
    to_csv,
)
from tests.portal_sim.generated_support import OPTIONS


def run_linkage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portal_sim", "linkage", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


def last_day(resident_cert_revoked: datetime | None, valid_to: date) -> date:
    return min(valid_to, resident_cert_revoked.astimezone(JST).date()) if resident_cert_revoked else valid_to


def expected_current_links(residents: list[ResidentRecord], as_of: date) -> set[tuple[str, str]]:
    """(serial, 宛名番号) of every user certificate valid on the day before ``as_of`` or later,
    computed from residents.jsonl without the module under test."""
    return {
        (c.serial, r.atena_number)
        for r in residents for c in r.user_certs
        if c.valid_from < as_of and last_day(c.revoked_at, c.valid_to) >= as_of - timedelta(days=1)
    }


def test_full_export_lists_the_current_links_of_the_register(generated: DataDir, tmp_path: Path) -> None:
    out = tmp_path / "linkage.csv"
    result = run_linkage("--data", generated.path, "--out", out)
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith("利用者証明用電子証明書シリアル番号,".encode())  # UTF-8, no BOM
    assert data.split(b"\r\n")[0].decode() == ",".join(COLUMNS)
    rows = parse_csv(data)
    assert {r.category for r in rows} == {Category.FULL}
    assert {r.created_at for r in rows} == {OPTIONS.period_end}
    residents = generated.residents()
    assert {(r.serial, r.atena_number) for r in rows} == expected_current_links(residents, OPTIONS.period_end.date())
    # Replaced cards are gone: the lost card, the expired card and the card superseded in the period.
    assert len(rows) == len(residents)


def test_delta_export_has_the_renewal_of_the_period(generated: DataDir, tmp_path: Path) -> None:
    out = tmp_path / "delta.csv"
    result = run_linkage("--data", generated.path, "--out", out, "--delta-since", OPTIONS.start.isoformat())
    assert result.returncode == 0, result.stderr
    rows = parse_csv(out.read_bytes())
    atena = {c.serial: r.atena_number for r in generated.residents() for c in r.user_certs}
    assert all(atena[r.serial] == r.atena_number for r in rows)
    renewed = [r for r in generated.residents()
               if r.user_certs[0].revoked_at is not None and r.user_certs[0].revoked_at >= OPTIONS.period_start]
    assert renewed
    for resident in renewed:
        old, new = resident.user_certs
        assert old.revoked_at is not None
        mine = [(r.serial, r.category) for r in rows if r.atena_number == resident.atena_number]
        # The new card's link starts at 00:00 of the renewal day, before the old one is revoked.
        assert mine == [(new.serial, Category.ADDED), (old.serial, Category.CHANGED), (old.serial, Category.DELETED)]
        changed = next(r for r in rows if r.serial == old.serial and r.category is Category.CHANGED)
        assert changed.revoked_at == old.revoked_at
        assert changed.valid_to == old.revoked_at.astimezone(JST).date()
    moments = [r.revoked_at or datetime.combine(r.valid_from, datetime.min.time(), JST) for r in rows
               if r.category is not Category.DELETED]
    assert moments == sorted(moments)


@pytest.mark.parametrize(
    "since", [date(2020, 1, 1), date(2026, 6, 1), OPTIONS.start, OPTIONS.start + timedelta(days=12)],
    ids=lambda d: d.isoformat(),
)
def test_full_plus_delta_is_the_later_full_export(generated: DataDir, since: date) -> None:
    residents = generated.residents()
    d = datetime.combine(since, datetime.min.time(), JST)
    t = OPTIONS.period_end
    base, delta = full_export(residents, as_of=d), delta_export(residents, since=d, as_of=t)
    assert delta
    later = full_export(residents, as_of=t)
    assert apply_delta(base, delta) == later
    # And the CSV round trip loses nothing.
    assert parse_csv(to_csv(delta)) == delta


def test_a_delta_since_after_the_export_moment_is_refused(generated: DataDir, tmp_path: Path) -> None:
    result = run_linkage("--data", generated.path, "--out", tmp_path / "x.csv", "--delta-since", "2030-01-01")
    assert result.returncode == 1
    assert "--delta-since" in result.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("シリアル,宛名番号\r\n".encode(), id="wrong-header"),
        pytest.param((",".join(COLUMNS) + "\r\nA,0000000001,2026-01-01\r\n").encode(), id="short-row"),
        pytest.param((",".join(COLUMNS) + "\r\nA,0000000001,2026-13-01,2027-01-01,,追加,2026-12-01T00:00:00+09:00\r\n")
                     .encode(), id="bad-date"),
        pytest.param((",".join(COLUMNS) + "\r\nA,0000000001,2026-01-01,2027-01-01,,移動,2026-12-01T00:00:00+09:00\r\n")
                     .encode(), id="unknown-category"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_parse_refuses_files_off_the_format(data: bytes) -> None:
    with pytest.raises(LinkageFormatError):
        parse_csv(data)
