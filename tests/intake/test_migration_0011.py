"""0011 widens ``attachments.name`` to TEXT: existing rows kept as they were, a longer name then fits
(on PostgreSQL a ``VARCHAR(255)`` refused it: ``StringDataRightTruncation``)."""

from __future__ import annotations

from sqlalchemy import text

from intake.db import make_engine
from intake.migrate import upgrade
from tests.intake.migrationrows import insert_chain

LONG = "令和八年度児童手当認定請求書添付資料" * 16 + ".pdf"


def test_0011_keeps_the_attachments_and_takes_a_long_name(empty_database: str) -> None:
    upgrade(empty_database, "0010")
    insert_chain(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.begin() as c:  # a flag the table copy (SQLite) must keep
            c.execute(text("UPDATE attachments SET malware_flagged = true"))
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
