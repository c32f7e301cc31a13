"""Import a 番号紐付情報 file (full or delta), all or nothing, then resolve the chains it affects.

``python -m intake linkage import FILE [--mode auto|full|delta]`` calls :func:`import_linkage_file`;
the caller commits. Behaviour (docs/intake.md, "宛名番号 linkage"):

* **Idempotent.** The file's SHA-256 is the key: a file already imported is not applied again and
  the result says ``duplicate`` (with the earlier import's id).
* **All or nothing.** The whole file is parsed and checked before anything is written; one broken
  line rejects the file and the result lists every broken line (line number, column, reason —
  never a value). A rejection writes only an event (``linkage.import_rejected``).
* **Full** replaces the active set: entries not in the file become inactive (kept for history),
  entries already active are left as they are, new ones are added.
* **Delta** applies 追加 / 変更 / 削除 in file order (csvformat.py says what each means).
* Entries are never edited: a changed entry is the old one made inactive plus a new one.
* Then every chain that may now read differently is re-evaluated (service.py's rule): all chains
  waiting (``UNRESOLVED``) or in ``CONFLICT``, and ``AUTO`` chains whose serials this import touched.
  Each change is a decision carrying this import's id.

Imports are serialised (a PostgreSQL advisory lock; SQLite has a single writer).

``progress`` (optional) is called as ``progress(phase, done, total)`` with ``done <= total``, the
phases in this order: ``parse`` (bytes of the file), ``apply`` (entries written or made inactive)
and ``resolve`` (chains re-evaluated, per batch). A file already imported reports nothing; a
rejected one stops in or after ``parse``. It runs inside the import's transaction: it must be
quick and must not touch the session (intake/linkage/jobs.py keeps it in memory for the staff
UI's progress page). Nothing else about the import depends on it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from intake.errors import InvalidRequest
from intake.events import record_event
from intake.jst import require_aware
from intake.linkage.csvformat import Category, LinkageRow, ParsedFile, parse_linkage_file
from intake.linkage.errors import LineProblem, LinkageFileRejected, by_line
from intake.linkage.layouts import Layout, parse_with_layout
from intake.linkage.service import apply_outcome, chunks, evaluate_chains
from intake.models import Application, ApplicationVersion, Event, LinkageEntry, LinkageImport, LinkageState

__all__ = ["ImportResult", "Mode", "Progress", "import_linkage", "import_linkage_file"]

Mode = Literal["auto", "full", "delta"]
#: ``progress(phase, done, total)``: see the module docstring.
Progress = Callable[[str, int, int], None]
_LOCK_ID = 0x4C4E4B47  # "LNKG"

_Key = tuple[str, date | None, date | None]  # (宛名番号, valid_from, valid_to) of one serial


@dataclass(frozen=True)
class ImportResult:
    """What one import did. Counts only; no serial or 宛名番号 appears here."""

    ok: bool
    file_sha256: str
    duplicate: bool = False
    import_id: int | None = None
    mode: Literal["full", "delta"] | None = None
    rows: int = 0
    added: int = 0
    deactivated: int = 0
    #: lines worth a look that did not stop the import: a serial given two 宛名番号 in the file,
    #: delta rows that found no link to change or delete (a missed delta?)
    notices: tuple[LineProblem, ...] = ()
    resolved: int = 0  # chains that became AUTO
    conflicts: int = 0  # chains that became CONFLICT
    waiting: int = 0  # chains still UNRESOLVED or CONFLICT after the import
    problems: tuple[LineProblem, ...] = field(default=())

    def summary(self) -> str:
        """A report for the operator (no personal data)."""
        if not self.ok:
            lines = [f"REJECTED: nothing imported (sha256 {self.file_sha256})",
                     *(f"  {p}" for p in self.problems)]
            return "\n".join(lines)
        if self.duplicate:
            return (f"already imported as import {self.import_id} (sha256 {self.file_sha256}): "
                    "nothing done")
        text_ = (f"import {self.import_id} ({self.mode}): {self.rows} row(s), {self.added} entr(y/ies) added, "
                 f"{self.deactivated} made inactive; {self.resolved} chain(s) resolved, "
                 f"{self.conflicts} new conflict(s), {self.waiting} waiting for staff")
        shown = [f"  notice: {n}" for n in self.notices[:50]]
        if len(self.notices) > 50:
            shown.append(f"  … {len(self.notices) - 50} more notice(s)")
        return "\n".join([text_, *shown])


def import_linkage_file(
    session: Session, path: Path, *, at: datetime, mode: Mode = "auto", progress: Progress | None = None,
    layout: Layout | None = None,
) -> ImportResult:
    """Import the file at ``path`` (see the module docstring); the caller commits.

    A file that cannot be read is a rejection like a broken one (``ok`` false, nothing written).
    """
    try:
        data = path.read_bytes()
    except OSError:
        return _rejected(session, "", (LineProblem(0, None, "the file cannot be read"),), at=at)
    return import_linkage(session, data, file_name=path.name, at=at, mode=mode, progress=progress, layout=layout)


def import_linkage(
    session: Session, data: bytes, *, file_name: str, at: datetime, mode: Mode = "auto",
    progress: Progress | None = None, layout: Layout | None = None,
) -> ImportResult:
    """Import one file's bytes; ``file_name`` is only recorded. ``layout``: how the source wrote it
    (:mod:`intake.linkage.layouts`; None: the native format). The caller commits."""
    report = progress or _no_progress
    require_aware(at)
    if mode not in ("auto", "full", "delta"):
        raise InvalidRequest("mode must be auto, full or delta", code="INVALID_MODE")
    sha = hashlib.sha256(data).hexdigest()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    earlier = session.scalar(select(LinkageImport).where(LinkageImport.file_sha256 == sha))
    if earlier is not None:
        return ImportResult(ok=True, file_sha256=sha, duplicate=True, import_id=earlier.id,
                            mode="full" if earlier.mode == "full" else "delta", rows=earlier.rows)
    report("parse", 0, len(data))
    try:
        parsed = parse_linkage_file(data, mode=mode) if layout is None else parse_with_layout(data, layout, mode=mode)
    except LinkageFileRejected as exc:
        return _rejected(session, sha, exc.problems, at=at)
    report("parse", len(data), len(data))
    last = _last_created_at(session)
    if parsed.created_at is not None and last is not None and parsed.created_at < last[1]:
        return _rejected(session, sha, (LineProblem(0, "作成日時", f"older than the file of import {last[0]}"),),
                         at=at)
    imp = LinkageImport(file_sha256=sha, file_name=file_name[-255:], mode=parsed.kind, imported_at=at,
                        rows=len(parsed.rows), resolved=0)
    session.add(imp)
    session.flush()
    if parsed.kind == "full":
        added, deactivated, touched, notices = _apply_full(session, parsed, imp.id, report)
    else:
        added, deactivated, touched, notices = _apply_delta(session, parsed, imp.id, report)
    notices = list(by_line([*parsed.notices, *notices]))
    resolved, conflicts = _resolve_after_import(session, touched, imp.id, at=at, report=report)
    imp.resolved = resolved
    waiting = session.scalar(
        select(func.count()).select_from(Application)
        .where(Application.linkage_state.in_([LinkageState.UNRESOLVED, LinkageState.CONFLICT]))
    ) or 0
    record_event(session, "linkage.imported", at=at, import_id=imp.id, mode=parsed.kind, rows=len(parsed.rows),
                 added=added, deactivated=deactivated, resolved=resolved, conflicts=conflicts,
                 notices=len(notices), file_sha256=sha,
                 created_at=parsed.created_at.isoformat() if parsed.created_at else None)
    return ImportResult(ok=True, file_sha256=sha, import_id=imp.id, mode=parsed.kind, rows=len(parsed.rows),
                        added=added, deactivated=deactivated, notices=tuple(notices),
                        resolved=resolved, conflicts=conflicts, waiting=int(waiting))


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


def _rejected(session: Session, sha: str, problems: tuple[LineProblem, ...], *, at: datetime) -> ImportResult:
    problems = by_line(problems)
    record_event(session, "linkage.import_rejected", at=at, file_sha256=sha, problems=len(problems),
                 lines=sorted({p.line for p in problems})[:100])
    return ImportResult(ok=False, file_sha256=sha, problems=problems)


def _last_created_at(session: Session) -> tuple[int, datetime] | None:
    """(import id, 作成日時) of the newest import that had one, from its event."""
    for detail in session.scalars(select(Event.detail).where(Event.kind == "linkage.imported")
                                  .order_by(Event.id.desc())):
        created = detail.get("created_at")
        if created:
            return int(detail["import_id"]), datetime.fromisoformat(created)
    return None


# -- applying ------------------------------------------------------------------------------------

def _active(session: Session, serials: set[str] | None) -> dict[str, dict[_Key, int]]:
    """Active entries by serial → {key: entry id}; all of them when ``serials`` is None."""
    out: dict[str, dict[_Key, int]] = defaultdict(dict)
    cols = (LinkageEntry.id, LinkageEntry.cert_serial, LinkageEntry.atena_number, LinkageEntry.valid_from,
            LinkageEntry.valid_to)
    if serials is None:
        queries = [select(*cols).where(LinkageEntry.active.is_(True))]
    else:
        queries = [select(*cols).where(LinkageEntry.active.is_(True), LinkageEntry.cert_serial.in_(batch))
                   for batch in chunks(sorted(serials))]
    for q in queries:
        for entry_id, serial, number, valid_from, valid_to in session.execute(q):
            out[serial][(number, valid_from, valid_to)] = entry_id
    return out


def _write(
    session: Session, before: dict[str, dict[_Key, int]], after: dict[str, set[_Key]], import_id: int,
    report: Progress,
) -> tuple[int, int, set[str]]:
    """Make the active set go from ``before`` to ``after`` (serials absent from ``after`` keep theirs)."""
    stale: list[int] = []
    new: list[dict[str, object]] = []
    touched: set[str] = set()
    for serial, keys in after.items():
        old = before.get(serial, {})
        gone = [entry_id for key, entry_id in old.items() if key not in keys]
        fresh = [key for key in keys if key not in old]
        if gone or fresh:
            touched.add(serial)
        stale.extend(gone)
        new.extend({"cert_serial": serial, "atena_number": n, "valid_from": f, "valid_to": t,
                    "import_id": import_id, "active": True} for n, f, t in sorted(fresh, key=_sort_key))
    total, done = len(stale) + len(new), 0
    report("apply", done, total)
    for batch in chunks(stale):
        session.execute(update(LinkageEntry).where(LinkageEntry.id.in_(batch)).values(active=False),
                        execution_options={"synchronize_session": False})
        done += len(batch)
        report("apply", done, total)
    for rows in chunks(new, 1000):
        session.execute(insert(LinkageEntry), rows)
        done += len(rows)
        report("apply", done, total)
    return len(new), len(stale), touched


def _sort_key(key: _Key) -> tuple[str, date, date]:
    return key[0], key[1] or date.min, key[2] or date.max


def _apply_full(
    session: Session, parsed: ParsedFile, import_id: int, report: Progress,
) -> tuple[int, int, set[str], list[LineProblem]]:
    before = _active(session, None)
    after: dict[str, set[_Key]] = {serial: set() for serial in before}
    for row in parsed.rows:
        after.setdefault(row.serial, set()).add(_key(row))
    added, deactivated, touched = _write(session, before, after, import_id, report)
    return added, deactivated, touched, []


def _apply_delta(
    session: Session, parsed: ParsedFile, import_id: int, report: Progress,
) -> tuple[int, int, set[str], list[LineProblem]]:
    """Rows in file order, keyed by serial like portal_sim's ``apply_delta``: 追加 / 変更 set the
    serial's link to the row's state, 削除 removes it. Two rows of one file that give a serial
    different 宛名番号 both stay (a CONFLICT to record, never a choice)."""
    before = _active(session, {row.serial for row in parsed.rows})
    after: dict[str, set[_Key]] = {}
    restarted: set[str] = set()  # serials whose pre-file state a row of this file has replaced
    notices: list[LineProblem] = []
    for row in parsed.rows:
        keys = after.setdefault(row.serial, set(before.get(row.serial, {})))
        held = {k[0] for k in keys}
        if row.category is Category.DELETED:
            if row.atena_number not in held:
                notices.append(LineProblem(row.line, None, "削除 of a link that is not held"))
            keys.clear()
            restarted.add(row.serial)
            continue
        if row.serial in restarted:
            keys.difference_update({k for k in keys if k[0] == row.atena_number})
        else:
            if row.category is Category.CHANGED and row.atena_number not in held:
                notices.append(LineProblem(row.line, None, "変更 of a link that is not held"))
            elif row.category is Category.ADDED and held - {row.atena_number}:
                notices.append(LineProblem(row.line, None, "追加 replaces a link to another 宛名番号"))
            keys.clear()
            restarted.add(row.serial)
        keys.add(_key(row))
    added, deactivated, touched = _write(session, before, after, import_id, report)
    return added, deactivated, touched, notices


def _key(row: LinkageRow) -> _Key:
    return row.atena_number, row.valid_from, row.valid_to


# -- resolving -----------------------------------------------------------------------------------

def _resolve_after_import(
    session: Session, touched: set[str], import_id: int, *, at: datetime, report: Progress,
) -> tuple[int, int]:
    ids: set[int] = set(session.scalars(select(Application.id).where(
        Application.linkage_state.in_([LinkageState.UNRESOLVED, LinkageState.CONFLICT]))))
    for batch in chunks(sorted(touched)):
        ids.update(session.scalars(
            select(ApplicationVersion.application_id).join(Application)
            .where(ApplicationVersion.user_cert_serial.in_(batch), Application.linkage_state == LinkageState.AUTO)
        ))
    resolved = conflicts = done = 0
    report("resolve", done, len(ids))
    for id_batch in chunks(sorted(ids)):
        # Row locks (PostgreSQL): a concurrent manual setting either commits first (and is seen
        # here as MANUAL) or waits for this import.
        apps = session.scalars(select(Application).where(Application.id.in_(id_batch))
                               .order_by(Application.id).with_for_update()
                               .execution_options(populate_existing=True)).all()
        outcomes = evaluate_chains(session, [a.id for a in apps])
        for app in apps:
            before = app.linkage_state
            decision = apply_outcome(session, app, outcomes[app.id], at=at, trigger=f"import {import_id}",
                                     import_id=import_id)
            if decision is None or decision.state is before:
                continue
            if decision.state is LinkageState.AUTO:
                resolved += 1
            elif decision.state is LinkageState.CONFLICT:
                conflicts += 1
        done += len(id_batch)
        report("resolve", done, len(ids))
    return resolved, conflicts
