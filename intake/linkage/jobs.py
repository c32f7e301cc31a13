"""The linkage import page's service: the inbox folder, the dry run, and the import as a background job.

Why: 番号紐付情報 files are dropped by the 住基 side into a folder (``ui.linkage_inbox``); nothing is
uploaded through a browser. A system administrator picks a file, sees what importing it *would* do,
confirms, and watches the import run (docs: "Linkage import page").

* **Inbox** (:func:`inbox_files`): regular files directly in the folder — no folders, no symlinks,
  no hidden files, no names with control characters. A name from a form is used only when it is
  exactly one of those (:func:`read_inbox_file`): ``../x``, ``/etc/passwd``, a name with a slash or
  a NUL is refused before the disk is touched, and the file is opened relative to the folder with
  ``O_NOFOLLOW``. Files are read with a cap, :data:`MAX_FILE_BYTES`.
* **Dry run** (:func:`preview`): the real :func:`import_linkage` in a session of its own that is
  always rolled back, so nothing of it persists; the result holds counts and line problems (line,
  column, fixed reason — never a value). One access-log row (``linkage.preview``) goes into the
  caller's session, which commits it.
* **Run** (:func:`start_import`): the form carries the file name and the SHA-256 shown in the
  preview; bytes that hash differently now are refused (:class:`FileChangedSincePreview`). A job
  row (``running``) and the access-log row (``linkage.import``, with the 処理事由) are committed,
  then a background thread imports the bytes that were checked, in one transaction of its own
  session (all or nothing, as :func:`import_linkage`), and records the outcome in the job row in
  that same transaction (``done`` / ``duplicate`` / ``rejected``), or ``failed`` afterwards.
* **Progress**: SQLite has a single writer, so progress cannot be committed while the import's
  transaction is open. It lives in memory, in a :class:`JobRegistry` (one per database in this
  process, :func:`registry_for`); the durable outcome is the job row. A row still ``running``
  without a live registry entry belongs to an import that died with its process (restart, crash):
  it is shown as ``interrupted`` — nothing was applied, since its transaction never committed — and
  stored so when the next import starts. This assumes **one process serves the staff UI**; with
  several, one process would call another's running import interrupted, and each would allow one
  import (the database still serialises imports: PostgreSQL advisory lock, SQLite's one writer).
  Only one import runs at a time (:class:`ImportAlreadyRunning`); no dry run while it runs.

Only :data:`~intake.authz.LINKAGE_IMPORT_ROLES` (system_admin) may use any of it; the
check is here, not in the routes. Services never commit — except here, where a job must own its
transactions: :func:`preview`'s dry-run session (rolled back, never committed), :func:`start_import`
(commits the job row before its thread starts) and the thread itself. Time is an input (``at``,
``clock``).

Exceptions: :mod:`intake.linkage.errors` (the inbox's, FileChangedSincePreview, ImportAlreadyRunning),
:class:`intake.errors.ReasonRequired` and :class:`intake.errors.AccessDenied`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.accesslog.service import append_access
from intake.authz import Principal
from intake.errors import InvalidRequest, NotFound, ReasonRequired
from intake.linkage.errors import FileChangedSincePreview, ImportAlreadyRunning, LineProblem
from intake.linkage.importer import ImportResult, Mode, import_linkage
from intake.linkage.inbox import read_inbox_file, require_importer
from intake.models import LinkageImport, LinkageImportJob
from intake.settings import StaffUISettings

__all__ = [
    "ImportRow",
    "JobRegistry",
    "JobView",
    "Preview",
    "Progress",
    "ReportFn",
    "job",
    "preview",
    "recent_imports",
    "recent_jobs",
    "registry_for",
    "start_import",
]

_log = logging.getLogger(__name__)

#: Line problems and notices kept in a job's result (the counts are always complete).
MAX_LINES_KEPT = 200
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MODES: tuple[Mode, ...] = ("auto", "full", "delta")

Clock = Callable[[], datetime]
ReportFn = Callable[[str, int, int], None]


def _mode(value: str) -> Mode:
    for mode in _MODES:
        if value == mode:
            return mode
    raise InvalidRequest("mode must be auto, full or delta", code="INVALID_MODE")


# -- progress ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """Where a running import is: ``queued`` (thread starting), then the importer's phases
    ``parse`` / ``apply`` / ``resolve`` with ``done`` of ``total``."""

    phase: str
    done: int
    total: int


class JobRegistry:
    """The imports running in this process: live progress by job id (thread-safe), and the rule
    that only one runs at a time. In memory only — see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Progress] = {}
        self._threads: dict[int, threading.Thread] = {}

    def progress(self, job_id: int) -> Progress | None:
        """The live progress, or ``None`` if the job does not run in this process (any more)."""
        with self._lock:
            return self._live.get(job_id)

    def snapshot(self) -> dict[int, Progress]:
        with self._lock:
            return dict(self._live)

    def running(self) -> int | None:
        """The id of the import running now, if any."""
        with self._lock:
            return next(iter(self._live), None)

    def wait(self, job_id: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the job's thread; true once it no longer runs."""
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.progress(job_id) is None

    def launch(self, create: Callable[[], int], work: Callable[[int, ReportFn], None]) -> int:
        """Run ``create()`` (it commits the job row and returns its id), then ``work(job_id, report)``
        in a new thread; :class:`ImportAlreadyRunning` if a job runs. Holding the lock while
        creating makes check-and-start atomic, and a reader never sees the committed row without
        its live entry."""
        with self._lock:
            if self._live:
                raise ImportAlreadyRunning(next(iter(self._live)))
            job_id = create()
            self._live[job_id] = Progress("queued", 0, 0)
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
            # A daemon: stopping the server abandons the import's transaction (nothing is applied;
            # the job shows as interrupted) rather than waiting for it.
            thread = threading.Thread(target=self._run, args=(job_id, work), name=f"linkage-import-{job_id}",
                                      daemon=True)
            self._threads[job_id] = thread
            thread.start()
        return job_id

    def _report(self, job_id: int, phase: str, done: int, total: int) -> None:
        with self._lock:
            if job_id in self._live:
                self._live[job_id] = Progress(phase, done, total)

    def _run(self, job_id: int, work: Callable[[int, ReportFn], None]) -> None:
        try:
            work(job_id, lambda phase, done, total: self._report(job_id, phase, done, total))
        finally:
            # After the outcome was committed: whoever finds no live entry finds the final row.
            with self._lock:
                self._live.pop(job_id, None)


_registries: weakref.WeakKeyDictionary[sessionmaker[Session], JobRegistry] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def registry_for(sessions: sessionmaker[Session]) -> JobRegistry:
    """The registry of the database behind ``sessions`` (the staff UI's one session factory)."""
    with _registries_lock:
        registry = _registries.get(sessions)
        if registry is None:
            registry = _registries[sessions] = JobRegistry()
        return registry


# -- dry run -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preview:
    """What importing ``name`` would do now; ``result.file_sha256`` is the hash to confirm with."""

    name: str
    size: int
    mode: Mode
    result: ImportResult

    @property
    def sha256(self) -> str:
        return self.result.file_sha256


def preview(
    session: Session, sessions: sessionmaker[Session], principal: Principal, settings: StaffUISettings,
    registry: JobRegistry, *, name: str, mode: str, at: datetime,
) -> Preview:
    """The dry run: :func:`import_linkage` on the file's bytes in a session of its own, always
    rolled back. Adds the ``linkage.preview`` access-log row to ``session`` (the caller commits)."""
    require_importer(principal)
    checked = _mode(mode)
    running = registry.running()
    if running is not None:
        raise ImportAlreadyRunning(running)
    data = read_inbox_file(settings, name)
    with sessions() as dry:
        try:
            result = import_linkage(dry, data, file_name=name, at=at, mode=checked)
        finally:
            dry.rollback()
    append_access(session, actor=principal.access_actor(), at=at, action="linkage.preview",
                  subject=f"linkage_file:{result.file_sha256[:16]}")
    return Preview(name, len(data), checked, result)


# -- the job -------------------------------------------------------------------------------------

def start_import(
    sessions: sessionmaker[Session], principal: Principal, settings: StaffUISettings, registry: JobRegistry, *,
    name: str, sha256: str, mode: str, reason: str, clock: Clock,
) -> int:
    """Start importing ``name`` in the background, if its bytes still hash to ``sha256`` (the
    preview's); the job id. Commits the job row and its access-log row (``reason``: the 処理事由)."""
    require_importer(principal)
    checked = _mode(mode)
    reason = reason.strip()
    if not reason:
        raise ReasonRequired("a reason (処理事由) is required")
    expected = sha256.strip().lower()
    if not _SHA256.fullmatch(expected):
        raise InvalidRequest("not a SHA-256", code="INVALID_SHA256")
    running = registry.running()
    if running is not None:  # before reading the file; launch() checks again, atomically
        raise ImportAlreadyRunning(running)
    data = read_inbox_file(settings, name)
    if hashlib.sha256(data).hexdigest() != expected:
        raise FileChangedSincePreview("the file changed after the preview")

    def create() -> int:
        with sessions() as s:
            at = clock()
            # No import runs in this process (the registry's lock is held): any row still
            # "running" died with an earlier process.
            s.execute(update(LinkageImportJob).where(LinkageImportJob.state == "running")
                      .values(state="interrupted"))
            row = LinkageImportJob(file_name=name[-255:], file_sha256=expected, mode=checked,
                                   requested_by=principal.login, terminal=principal.terminal, requested_at=at,
                                   state="running")
            s.add(row)
            s.flush()
            append_access(s, actor=principal.access_actor(), at=at, action="linkage.import",
                          subject=f"linkage_job:{row.id}", reason=reason)
            s.commit()
            return row.id

    def work(job_id: int, report: ReportFn) -> None:
        _run_job(sessions, job_id, report, data=data, file_name=name, mode=checked, clock=clock)

    return registry.launch(create, work)


def _run_job(
    sessions: sessionmaker[Session], job_id: int, report: ReportFn, *, data: bytes, file_name: str, mode: Mode,
    clock: Clock,
) -> None:
    """The thread: the import and its job row's outcome in one transaction; ``failed`` otherwise."""
    try:
        with sessions() as s:
            result = import_linkage(s, data, file_name=file_name, at=clock(), mode=mode, progress=report)
            row = s.get(LinkageImportJob, job_id)
            if row is None:
                raise NotFound("the job row is gone")
            row.state = "rejected" if not result.ok else "duplicate" if result.duplicate else "done"
            row.finished_at = clock()
            row.import_id = result.import_id
            row.result = _result_json(result)
            s.commit()
    except Exception as exc:  # noqa: BLE001 - recorded in the job row; the text may quote data, so only the type
        _log.error("linkage import job %d failed: %s", job_id, type(exc).__name__)
        try:
            with sessions() as s:
                s.execute(update(LinkageImportJob).where(LinkageImportJob.id == job_id)
                          .values(state="failed", finished_at=clock(), result={"error": type(exc).__name__}))
                s.commit()
        except Exception as again:  # noqa: BLE001 - the row stays "running" and shows as interrupted
            _log.error("could not record the failure of linkage import job %d: %s", job_id, type(again).__name__)


def _lines(problems: tuple[LineProblem, ...]) -> list[list[Any]]:
    return [[p.line, p.column, p.reason] for p in problems[:MAX_LINES_KEPT]]


def _result_json(result: ImportResult) -> dict[str, Any]:
    """Counts, line numbers, columns and fixed reasons: nothing from the file's rows."""
    return {"mode": result.mode, "rows": result.rows, "added": result.added, "deactivated": result.deactivated,
            "resolved": result.resolved, "conflicts": result.conflicts, "waiting": result.waiting,
            "notice_count": len(result.notices), "notices": _lines(result.notices),
            "problem_count": len(result.problems), "problems": _lines(result.problems)}


@dataclass(frozen=True)
class JobView:
    """A job as the page shows it: ``state`` is ``interrupted`` for a ``running`` row without a live
    import in this process; ``progress`` only while it runs."""

    id: int
    file_name: str
    file_sha256: str
    mode: str
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    import_id: int | None
    state: str
    result: dict[str, Any] | None
    progress: Progress | None

    @property
    def running(self) -> bool:
        return self.state == "running"

    def lines(self, key: str) -> list[LineProblem]:
        """``notices`` or ``problems`` of the result, as :class:`LineProblem`."""
        kept = (self.result or {}).get(key, [])
        return [LineProblem(int(line), column, str(reason)) for line, column, reason in kept]


def _view(row: LinkageImportJob, live: Progress | None) -> JobView:
    state = "interrupted" if row.state == "running" and live is None else row.state
    return JobView(row.id, row.file_name, row.file_sha256, row.mode, row.requested_by, row.requested_at,
                   row.finished_at, row.import_id, state, row.result, live if state == "running" else None)


def job(session: Session, principal: Principal, registry: JobRegistry, job_id: int) -> JobView:
    """One job. The registry is read before the row: an import that ended in between has already
    committed its outcome, so it never shows as interrupted by mistake."""
    require_importer(principal)
    live = registry.progress(job_id)
    row = session.scalar(select(LinkageImportJob).where(LinkageImportJob.id == job_id)
                         .execution_options(populate_existing=True))
    if row is None:
        raise NotFound("no such linkage import job")
    return _view(row, live)


def recent_jobs(session: Session, principal: Principal, registry: JobRegistry, *, limit: int = 20) -> list[JobView]:
    """The newest jobs first."""
    require_importer(principal)
    live = registry.snapshot()
    rows = session.scalars(select(LinkageImportJob).order_by(LinkageImportJob.id.desc()).limit(limit)
                           .execution_options(populate_existing=True))
    return [_view(row, live.get(row.id)) for row in rows]


@dataclass(frozen=True)
class ImportRow:
    id: int
    file_name: str
    mode: str
    imported_at: datetime
    rows: int
    resolved: int


def recent_imports(session: Session, principal: Principal, *, limit: int = 20) -> list[ImportRow]:
    """The newest imports first (from the page or ``python -m intake linkage import``)."""
    require_importer(principal)
    return [ImportRow(i.id, i.file_name, i.mode, i.imported_at, i.rows, i.resolved)
            for i in session.scalars(select(LinkageImport).order_by(LinkageImport.id.desc()).limit(limit))]
