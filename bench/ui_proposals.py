"""What would make the staff UI pages fast at a million applications, tried on the benchmark's own
database (``bench_ui.py --proposals``); nothing here changes intake/.

* :data:`INDEXES`: schema-only changes (a migration could add them). The pages are measured again over
  HTTP with them in place.
* :func:`rewrites`: query changes that need code in intake/applications/listing.py. Each is timed
  against the statement the app really sent (captured with its parameters), by ``EXPLAIN ANALYZE``
  execution time (median of several runs), and its plan is kept.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

__all__ = ["INDEXES", "Rewrite", "apply_indexes", "rewrites", "time_rewrites"]

_FINAL = "('完了', '却下', '取下げ')"

#: (name, DDL, what it is for)
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("ux_application_versions_current",
     "CREATE UNIQUE INDEX ux_application_versions_current ON application_versions (application_id)"
     " WHERE state = 'current'",
     "one current version per chain (an invariant the code keeps, now enforced); lets PostgreSQL drop the"
     " LEFT JOIN from the list's count(*) and join the current version by a unique key"),
    ("ix_application_versions_arrived_at",
     "CREATE INDEX ix_application_versions_arrived_at ON application_versions (arrived_at)",
     "dashboard: today's arrivals and the 14-day chart read two weeks, not every version"),
    ("ix_applications_open",
     "CREATE INDEX ix_applications_open ON applications (procedure_id)"
     f" INCLUDE (needs_review, linkage_state, assigned_to) WHERE status NOT IN {_FINAL}",
     "dashboard counts of open work (要確認, 未設定, 担当) and the queue filter: open chains are a few %"),
    ("ix_application_versions_current_not_passed",
     "CREATE INDEX ix_application_versions_current_not_passed ON application_versions (application_id)"
     " WHERE state = 'current' AND indication <> 'PASSED'",
     "dashboard 署名エラー and the sigerr filter"),
    ("ix_application_versions_superseded",
     "CREATE INDEX ix_application_versions_superseded ON application_versions (application_id)"
     " WHERE state = 'superseded'",
     "the 版 filter (version=resubmitted / single): chains that have a superseded version"),
)


def apply_indexes(engine: Engine) -> dict[str, float | None]:
    """Create those of :data:`INDEXES` the schema lacks (by name) and ANALYZE; seconds per index,
    ``None`` for one the migrations already made."""
    took: dict[str, float | None] = {}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name, ddl, _why in INDEXES:
            if conn.exec_driver_sql("SELECT to_regclass(%(n)s)", {"n": name}).scalar() is not None:
                took[name] = None
                continue
            t = time.perf_counter()
            conn.exec_driver_sql(ddl)
            took[name] = round(time.perf_counter() - t, 1)
        conn.exec_driver_sql("ANALYZE applications, application_versions")
    return took


@dataclass(frozen=True)
class Rewrite:
    name: str
    page: str
    what: str
    original: Callable[[str], bool]  # picks the captured statement of ``page``
    sql: str
    params: dict[str, Any]


def _starts(prefix: str) -> Callable[[str], bool]:
    return lambda stmt: " ".join(stmt.split()).startswith(prefix)


def rewrites(scope_ids: list[str], *, receipt: str, page_key: tuple[Any, int], detail_version: int,
             page_size: int = 50) -> list[Rewrite]:
    """The query changes, with the parameters the benchmark used (``page_key``: created_at and id of
    the last row before page 200, for keyset paging)."""
    scope = "a.procedure_id IN (" + ", ".join(f"'{p}'" for p in scope_ids) + ")"
    cols = ("a.id, a.first_receipt_number, a.procedure_name, a.status, a.created_at, a.linkage_state,"
            " a.needs_review, a.assigned_to, v.receipt_number, v.indication")
    join = "applications a LEFT JOIN application_versions v ON v.application_id = a.id AND v.state = 'current'"
    count = _starts("SELECT count(*)")
    rows = _starts("SELECT applications.id")
    chain = ("a.id IN (SELECT id FROM applications WHERE first_receipt_number = %(q)s"
             " UNION SELECT application_id FROM application_versions WHERE receipt_number = %(q)s"
             " UNION SELECT id FROM applications WHERE atena_number = %(q)s)")
    return [
        Rewrite("count_without_join", "list_default", "count(*) over applications only (the LEFT JOIN to the current"
                " version cannot change the count)", count, f"SELECT count(*) FROM applications a WHERE {scope}", {}),  # noqa: S608
        Rewrite("count_capped", "list_default", "count at most 10 001 rows and show 「10 000 件以上」",
                count, f"SELECT count(*) FROM (SELECT 1 FROM applications a WHERE {scope} LIMIT 10001) s", {}),  # noqa: S608
        Rewrite("rows_narrow", "list_default", "page 1 with only the columns the list shows (no form_xml /"
                " applicant JSON of the current version)", rows,
                f"SELECT {cols} FROM {join} WHERE {scope} ORDER BY a.created_at DESC, a.id DESC LIMIT {page_size}",  # noqa: S608
                {}),
        Rewrite("keyset_page_200", "list_page_200", "page 200 by keyset ((created_at, id) < last row seen) instead"
                " of OFFSET 9 950", rows,
                f"SELECT {cols} FROM {join} WHERE {scope} AND (a.created_at, a.id) < (%(c)s, %(i)s)"  # noqa: S608
                f" ORDER BY a.created_at DESC, a.id DESC LIMIT {page_size}",
                {"c": page_key[0], "i": page_key[1]}),
        Rewrite("search_union_count", "list_search_receipt", "受付番号 / 宛名番号 search as a UNION of three index"
                " lookups instead of OR (… OR id IN (subquery) OR …)", count,
                f"SELECT count(*) FROM {join} WHERE {scope} AND {chain}", {"q": receipt}),  # noqa: S608
        Rewrite("search_union_rows", "list_search_receipt", "the same for the page's rows", rows,
                f"SELECT {cols} FROM {join} WHERE {scope} AND {chain}"  # noqa: S608
                f" ORDER BY a.created_at DESC, a.id DESC LIMIT {page_size}", {"q": receipt}),
        Rewrite("detail_attachments_no_data", "detail", "the detail page's attachment list without the sealed"
                " bytes (defer Attachment.data: the page shows name, type and size only)",
                _starts("SELECT attachments.id"),
                "SELECT id, version_id, name, role, size, sha256, media_type, malware_flagged FROM attachments"
                " WHERE version_id = %(v)s", {"v": detail_version}),
    ]


_EXEC = re.compile(r"Execution Time: ([\d.]+) ms")


def _timed(conn: Connection, sql: str, params: Any, runs: int) -> dict[str, Any]:
    """Median EXPLAIN ANALYZE execution time (server side, no detoasting of the output), median
    client time to run the statement and fetch every row (what the app waits for), the last plan."""
    executed, fetched, plan = [], [], []
    for _ in range(runs):
        plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)]
        conn.rollback()
        found = next((m for m in map(_EXEC.search, reversed(plan)) if m), None)
        executed.append(float(found.group(1)) if found else float("nan"))
        t = time.perf_counter()
        conn.exec_driver_sql(sql, params).fetchall()
        fetched.append((time.perf_counter() - t) * 1000)
        conn.rollback()
    return {"exec_ms": round(statistics.median(executed), 2), "fetch_ms": round(statistics.median(fetched), 2),
            "plan": plan}


def time_rewrites(engine: Engine, items: list[Rewrite], captured: Callable[[str, Callable[[str], bool]],
                  tuple[str, Any] | None], *, runs: int = 5) -> list[dict[str, Any]]:
    """Original (as captured from the app, same parameters) against rewritten."""
    out = []
    with engine.connect() as conn:
        for r in items:
            original = captured(r.page, r.original)
            entry: dict[str, Any] = {"name": r.name, "page": r.page, "what": r.what, "sql": r.sql}
            if original is not None:
                entry["original_sql"] = " ".join(original[0].split())
                entry["original"] = _timed(conn, original[0], original[1], runs)
            # our SQL has no literal "%": placeholders only
            entry["rewritten"] = _timed(conn, r.sql, r.params, runs)
            out.append(entry)
    return out
