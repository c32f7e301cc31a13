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
from tests.intake.migrationrows import insert_chain

LONG_BY = "staff:" + "k" * 64


def test_0012_keeps_every_row_and_its_references_and_takes_a_long_login(empty_database: str) -> None:
    upgrade(empty_database, "0011")
    insert_chain(empty_database)
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
    insert_chain(url)
    with sqlite3.connect(tmp_path / "intake.db") as raw:  # a row whose version is gone, as a broken copy leaves
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute("UPDATE attachments SET version_id = 99")
    with pytest.raises(RuntimeError, match="1 row"):
        upgrade(url)
