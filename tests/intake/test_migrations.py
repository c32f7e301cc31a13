"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

from sqlalchemy import inspect, text

from intake.db import Base, make_engine
from intake.migrate import pending_differences, upgrade


def test_upgrade_matches_the_models(empty_database: str) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        assert pending_differences(engine) == []
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(empty_database: str) -> None:
    upgrade(empty_database)
    upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        assert pending_differences(engine) == []
    finally:
        engine.dispose()


def test_the_open_chain_index_names_exactly_the_final_statuses() -> None:
    from intake.models import _OPEN_SQL
    from status import FINAL_STATUSES

    assert set(re.findall(r"'([^']+)'", _OPEN_SQL)) == {s.value for s in FINAL_STATUSES}


def test_0004_fills_the_kana_search_key_of_existing_chains(empty_database: str) -> None:
    upgrade(empty_database, "0003")
    engine = make_engine(empty_database)
    at = "2026-11-25 03:00:00"
    try:
        with engine.begin() as c:
            c.execute(text(
                "INSERT INTO deliveries (id, idempotency_key, sha256, size, receipt_number, package, received_at,"
                " client_id, malware_flagged) VALUES (1, 'k', :h, 1, 'r1', :b, :at, 'relay', false),"
                " (2, 'k2', :h, 1, 'r2', :b, :at, 'relay', false)"), {"h": "0" * 64, "b": b"x", "at": at})
            c.execute(text(
                "INSERT INTO applications (id, first_receipt_number, procedure_id, procedure_name, state, status,"
                " created_at, updated_at, linkage_state, needs_review)"
                " VALUES (1, 'r1', 'P', '手続', 'open', '到達', :at, :at, 'unresolved', true)"), {"at": at})
            versions = ((1, "r1", "superseded", "ﾜﾀﾅﾍﾞ ｹｲｺ"), (2, "r2", "current", "ささき　けいこ"))
            for vid, receipt, state, kana in versions:
                c.execute(text(
                    "INSERT INTO application_versions (id, application_id, delivery_id, receipt_number, kind,"
                    " arrived_at, stored_at, state, indication, form_xml, form_file, applicant)"
                    " VALUES (:id, 1, :id, :r, '新規申請', :at, :at, :s, 'PASSED', '<a/>', 'f.xml', :ap)"),
                    {"id": vid, "r": receipt, "at": at, "s": state,
                     "ap": json.dumps([["氏名", "佐々木　恵子"], ["氏名フリガナ", kana]], ensure_ascii=False)})
        upgrade(empty_database)
        with engine.connect() as c:
            assert c.execute(text("SELECT applicant_kana FROM applications")).scalar_one() == "ササキケイコ"
    finally:
        engine.dispose()
