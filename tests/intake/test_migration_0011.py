"""0011 widens ``attachments.name`` to TEXT: existing rows kept as they were, a longer name then fits
(on PostgreSQL a ``VARCHAR(255)`` refused it: ``StringDataRightTruncation``)."""

from __future__ import annotations

from sqlalchemy import text

from intake.db import make_engine
from intake.migrate import upgrade

LONG = "令和八年度児童手当認定請求書添付資料" * 16 + ".pdf"


def test_0011_keeps_the_attachments_and_takes_a_long_name(empty_database: str) -> None:
    upgrade(empty_database, "0010")
    engine = make_engine(empty_database)
    at = "2026-11-25 03:00:00"
    try:
        with engine.begin() as c:
            c.execute(text(
                "INSERT INTO deliveries (id, idempotency_key, sha256, size, receipt_number, package, received_at,"
                " client_id, malware_flagged, awaiting_revocation) VALUES (1, 'k', :h, 1, 'r1', :b, :at, 'relay',"
                " false, false)"), {"h": "0" * 64, "b": b"x", "at": at})
            c.execute(text(
                "INSERT INTO applications (id, first_receipt_number, procedure_id, procedure_name, state, status,"
                " created_at, updated_at, linkage_state, needs_review)"
                " VALUES (1, 'r1', 'P', '手続', 'open', '到達', :at, :at, 'unresolved', true)"), {"at": at})
            c.execute(text(
                "INSERT INTO application_versions (id, application_id, delivery_id, receipt_number, kind,"
                " arrived_at, stored_at, state, indication, form_xml, form_file, applicant)"
                " VALUES (1, 1, 1, 'r1', '新規申請', :at, :at, 'current', 'PASSED', '<a/>', 'f.xml', '[]')"),
                {"at": at})
            c.execute(text(
                "INSERT INTO attachments (id, version_id, name, role, size, sha256, media_type, data, malware_flagged)"
                " VALUES (1, 1, '保険証.pdf', 'attachment', 1, :h, 'application/pdf', :b, true)"),
                {"h": "1" * 64, "b": b"sealed"})
        upgrade(empty_database)
        with engine.begin() as c:
            c.execute(text(
                "INSERT INTO attachments (id, version_id, name, role, size, sha256, media_type, data, malware_flagged)"
                " VALUES (2, 1, :n, 'attachment', 1, :h, 'application/pdf', :b, false)"),
                {"n": LONG, "h": "2" * 64, "b": b"sealed"})
            rows = c.execute(text("SELECT id, version_id, name, data, malware_flagged FROM attachments ORDER BY id"))
            assert [tuple(r) for r in rows] == [(1, 1, "保険証.pdf", b"sealed", True), (2, 1, LONG, b"sealed", False)]
    finally:
        engine.dispose()
