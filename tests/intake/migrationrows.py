"""Rows of one stored chain written with SQL, for the migration tests from revision 0010 on (the
schema of deliveries, applications, versions, attachments and My Numbers those revisions share)."""

from __future__ import annotations

from sqlalchemy import text

from intake.db import make_engine

AT = "2026-11-25 03:00:00"


def insert_chain(url: str) -> None:
    """A delivery, its chain, one version, an attachment (保険証.pdf) and a My Number row, ids 1."""
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
