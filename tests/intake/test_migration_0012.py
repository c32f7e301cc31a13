"""0012 widens ``application_versions.admitted_by`` to 80 (``staff:`` and a 64-character login).

On SQLite a changed column means copying the table that versions' attachments and My Numbers
refer to: the migration runs with foreign keys off and checks every reference after it
(intake/migrations/env.py), so the rows stay, and a reference left pointing nowhere fails the
upgrade loudly (SQLite's DDL is not transactional here: the operator restores the backup)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from intake.db import make_engine
from intake.migrate import current, upgrade

AT = "2026-11-25 03:00:00"
LONG_BY = "staff:" + "k" * 64


def _chain(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(text(
                "INSERT INTO deliveries (id, idempotency_key, sha256, size, receipt_number, package, received_at,"
                " client_id, malware_flagged, awaiting_revocation) VALUES (1, 'k', :h, 1, 'r1', :b, :at, 'relay',"
                " false, false)"), {"h": "0" * 64, "b": b"x", "at": AT})
            c.execute(text(
                "INSERT INTO applications (id, first_receipt_number, procedure_id, procedure_name, state, status,"
                " created_at, updated_at, linkage_state, needs_review)"
                " VALUES (1, 'r1', 'P', '手続', 'open', '到達', :at, :at, 'unresolved', true)"), {"at": AT})
            c.execute(text(
                "INSERT INTO application_versions (id, application_id, delivery_id, receipt_number, kind,"
                " arrived_at, stored_at, state, indication, form_xml, form_file, applicant, admitted_by)"
                " VALUES (1, 1, 1, 'r1', '新規申請', :at, :at, 'current', 'PASSED', '<a/>', 'f.xml', '[]',"
                " 'first-application')"), {"at": AT})
            c.execute(text(
                "INSERT INTO attachments (id, version_id, name, role, size, sha256, media_type, data, malware_flagged)"
                " VALUES (1, 1, '保険証.pdf', 'attachment', 1, :h, 'application/pdf', :b, false)"),
                {"h": "1" * 64, "b": b"sealed"})
            c.execute(text(
                "INSERT INTO my_numbers (id, version_id, position, path, source, valid_check_digit, ciphertext,"
                " key_id) VALUES (1, 1, 0, '/DataRoot/個人番号', 'form', true, :b, 'k1')"), {"b": b"sealed"})
    finally:
        engine.dispose()


def test_0012_keeps_every_row_and_its_references_and_takes_a_long_login(empty_database: str) -> None:
    upgrade(empty_database, "0011")
    _chain(empty_database)
    upgrade(empty_database)
    assert current(empty_database) == "0012"
    engine = make_engine(empty_database)
    try:
        with engine.begin() as c:
            c.execute(text("UPDATE application_versions SET admitted_by = :by WHERE id = 1"), {"by": LONG_BY})
            assert c.scalar(text("SELECT admitted_by FROM application_versions")) == LONG_BY
            assert c.scalar(text("SELECT count(*) FROM attachments WHERE version_id = 1")) == 1
            assert c.scalar(text("SELECT count(*) FROM my_numbers WHERE version_id = 1")) == 1
            if engine.dialect.name == "sqlite":  # references enforced again in a new connection
                assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert c.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    finally:
        engine.dispose()


def test_a_sqlite_migration_stops_on_a_reference_that_points_nowhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    upgrade(url, "0011")
    _chain(url)
    with sqlite3.connect(tmp_path / "intake.db") as raw:  # a row whose version is gone, as a broken copy leaves
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute("UPDATE attachments SET version_id = 99")
    with pytest.raises(RuntimeError, match="1 row"):
        upgrade(url)
