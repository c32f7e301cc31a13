"""0007 fills the person search keys of chains stored before it (from the current version and its signer)."""

from __future__ import annotations

import json

from sqlalchemy import text

from intake.db import make_engine
from intake.migrate import upgrade


def test_0007_fills_the_search_keys_of_existing_chains(empty_database: str) -> None:
    upgrade(empty_database, "0005")
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
            for vid, receipt, state, name, phone in ((1, "r1", "superseded", "旧姓 花子", "03-0000-0000"),
                                                     (2, "r2", "current", "髙橋　花子", "090-1234-5678")):
                c.execute(text(
                    "INSERT INTO application_versions (id, application_id, delivery_id, receipt_number, kind,"
                    " arrived_at, stored_at, state, indication, form_xml, form_file, applicant)"
                    " VALUES (:id, 1, :id, :r, '新規申請', :at, :at, :s, 'PASSED', '<a/>', 'f.xml', :ap)"),
                    {"id": vid, "r": receipt, "at": at, "s": state,
                     "ap": json.dumps([["氏名", name], ["電話番号", phone]], ensure_ascii=False)})
            c.execute(text(
                "INSERT INTO signer_identities (id, version_id, name, sex, birth_date, address, cert_serial,"
                " issuer, not_before, not_after)"
                " VALUES (1, 2, '髙橋 花子', '2', '2003-08-02', '東京都', 'AB', 'CN=x', :at, :at)"),
                {"at": at})
        upgrade(empty_database)
        with engine.connect() as c:
            keys = set(c.execute(text("SELECT kind, key FROM applicant_keys WHERE application_id = 1")).all())
        assert keys == {("name", "高橋花子"), ("phone", "09012345678"), ("birth", "2003-08-02")}
    finally:
        engine.dispose()
