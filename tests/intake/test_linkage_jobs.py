"""The linkage import page's service on SQLite and PostgreSQL: the inbox and its names, the dry run
that leaves nothing behind, confirmation by hash, the background job, its progress, one import at a
time, and jobs interrupted by a restart."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.authz import Principal
from intake.db import make_session_factory
from intake.errors import NotFound, PermissionDenied, ReasonRequired
from intake.linkage import errors as linkage_errors
from intake.linkage import inbox as linkage_inbox
from intake.linkage import jobs
from intake.linkage.importer import import_linkage
from intake.models import (
    AccessLogRow,
    Application,
    Event,
    LinkageDecision,
    LinkageEntry,
    LinkageImport,
    LinkageImportJob,
    LinkageState,
)
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from portal_sim import linkage as sim
from status import Role
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import Clock
from tests.intake.staffdata import deliver, principal
from tests.intake.test_linkage import ATENA, ATENA_2, CREATED, OTHER, SERIAL, link

ADMIN = principal(Role.SYSTEM_ADMIN, login="sysadmin")
FILE = "linkage-20261125.csv"
WAIT = 30.0  # seconds: a bound on waiting for a background import, never a sleep


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def ui(inbox: Path) -> StaffUISettings:
    return StaffUISettings(linkage_inbox=inbox)


@pytest.fixture
def registry() -> Iterator[jobs.JobRegistry]:
    reg = jobs.JobRegistry()
    yield reg
    running = reg.running()
    if running is not None:  # never leave a thread behind for the next test
        assert reg.wait(running, WAIT)


def put(inbox: Path, *rows: sim.LinkageRow, name: str = FILE) -> bytes:
    data = sim.to_csv(rows)
    (inbox / name).write_bytes(data)
    return data


def count(s: Session, model: type) -> int:
    return s.scalar(select(func.count()).select_from(model)) or 0


def access_rows(sessions: sessionmaker[Session], action: str) -> list[AccessLogRow]:
    with sessions() as s:
        return list(s.scalars(select(AccessLogRow).where(AccessLogRow.action == action).order_by(AccessLogRow.id)))


def start(sessions: sessionmaker[Session], ui: StaffUISettings, registry: jobs.JobRegistry, clock: Clock, *,
          sha256: str, name: str = FILE, reason: str = "月次の番号紐付情報の取込", who: Principal = ADMIN) -> int:
    return jobs.start_import(sessions, who, ui, registry, name=name, sha256=sha256, mode="auto", reason=reason,
                             clock=clock)


def finished(sessions: sessionmaker[Session], registry: jobs.JobRegistry, job_id: int) -> LinkageImportJob:
    assert registry.wait(job_id, WAIT), "the import did not finish in time"
    with sessions() as s:
        row = s.get(LinkageImportJob, job_id)
        assert row is not None
        return row


class Gate:
    """Holds the background import at its first progress report — before it writes anything — until
    released. Replaces ``jobs.import_linkage`` for calls with a progress callback (the job's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        real: Callable[..., Any] = jobs.import_linkage

        def gated(session: Session, data: bytes, **kwargs: Any) -> Any:
            progress = kwargs.pop("progress", None)
            if progress is None:
                return real(session, data, **kwargs)

            def report(phase: str, done: int, total: int) -> None:
                progress(phase, done, total)
                if not self.reached.is_set():
                    self.reached.set()
                    self.release.wait(WAIT)

            return real(session, data, progress=report, **kwargs)

        monkeypatch.setattr(jobs, "import_linkage", gated)

    def wait_reached(self) -> None:
        assert self.reached.wait(WAIT), "the import never reported progress"


# -- the inbox and its names ---------------------------------------------------------------------

def test_inbox_lists_plain_regular_files_with_hash_and_import(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, tmp_path: Path, clock: Clock,
) -> None:
    data = put(inbox, link())
    put(inbox, link(OTHER, ATENA_2), name="linkage-20261126.csv")
    (inbox / ".partial.csv").write_bytes(b"x")
    (inbox / "folder").mkdir()
    (tmp_path / "outside.csv").write_bytes(b"secret")
    (inbox / "link.csv").symlink_to(tmp_path / "outside.csv")
    os.mkfifo(inbox / "pipe")
    (inbox / "bad\nname.csv").write_bytes(b"x")
    os.utime(inbox / FILE, (1_700_000_000, 1_700_000_000))  # older: listed second
    with sessions() as s:
        files = linkage_inbox.inbox_files(s, ADMIN, ui)
    assert [f.name for f in files] == ["linkage-20261126.csv", FILE]
    assert (files[1].size, files[1].import_id, files[1].too_large) == (len(data), None, False)
    assert files[1].sha256 == hashlib.sha256(data).hexdigest()
    with sessions() as s:
        result = import_linkage(s, data, file_name=FILE, at=clock())
        s.commit()
        assert [f.import_id for f in linkage_inbox.inbox_files(s, ADMIN, ui)] == [None, result.import_id]


@pytest.mark.parametrize("name", ["../outside.csv", "/etc/passwd", "sub/x.csv", "a\x00b.csv", "..", ".", "",
                                  ".partial.csv", "x\u202ecsv.exe", "x" * 256, "inbox/../outside.csv"])
def test_unsafe_names_are_refused_before_the_disk_is_read(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, tmp_path: Path, clock: Clock,
    registry: jobs.JobRegistry, name: str,
) -> None:
    put(inbox, link())
    (tmp_path / "outside.csv").write_bytes(sim.to_csv([link()]))
    with pytest.raises(linkage_errors.InboxNameRefused):
        linkage_inbox.read_inbox_file(ui, name)
    with sessions() as s, pytest.raises(linkage_errors.InboxNameRefused):
        jobs.preview(s, sessions, ADMIN, ui, registry, name=name, mode="auto", at=clock())
    with pytest.raises(linkage_errors.InboxNameRefused):
        start(sessions, ui, registry, clock, name=name, sha256="0" * 64)
    assert access_rows(sessions, "linkage.preview") == []


@pytest.mark.parametrize("name", ["missing.csv", "folder", "link.csv", "pipe", "outside.csv"])
def test_plain_names_outside_the_listing_are_missing(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, tmp_path: Path, clock: Clock,
    registry: jobs.JobRegistry, name: str,
) -> None:
    (inbox / "folder").mkdir()
    (tmp_path / "outside.csv").write_bytes(sim.to_csv([link()]))
    (inbox / "link.csv").symlink_to(tmp_path / "outside.csv")
    os.mkfifo(inbox / "pipe")
    with pytest.raises(linkage_errors.InboxFileMissing):
        linkage_inbox.read_inbox_file(ui, name)
    with sessions() as s, pytest.raises(linkage_errors.InboxFileMissing):
        jobs.preview(s, sessions, ADMIN, ui, registry, name=name, mode="auto", at=clock())


def test_a_file_over_the_cap_is_listed_but_never_read(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
) -> None:
    with (inbox / "huge.csv").open("wb") as f:
        f.truncate(linkage_inbox.MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with sessions() as s:
        [huge] = linkage_inbox.inbox_files(s, ADMIN, ui)
        assert (huge.name, huge.too_large, huge.sha256) == ("huge.csv", True, None)
        with pytest.raises(linkage_errors.InboxFileTooLarge) as refused:
            jobs.preview(s, sessions, ADMIN, ui, registry, name="huge.csv", mode="auto", at=clock())
    assert refused.value.size == linkage_inbox.MAX_FILE_BYTES + 1


def test_no_inbox_configured(sessions: sessionmaker[Session], clock: Clock, registry: jobs.JobRegistry) -> None:
    with sessions() as s:
        with pytest.raises(linkage_errors.InboxNotConfigured):
            linkage_inbox.inbox_files(s, ADMIN, StaffUISettings())
        with pytest.raises(linkage_errors.InboxNotConfigured):
            jobs.preview(s, sessions, ADMIN, StaffUISettings(), registry, name=FILE, mode="auto", at=clock())


@pytest.mark.parametrize("role", [r for r in Role if r not in (Role.SYSTEM, Role.SYSTEM_ADMIN)])
def test_only_system_admin_may_use_any_of_it(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
    role: Role,
) -> None:
    data = put(inbox, link())
    who = principal(role)
    with sessions() as s:
        calls: list[Callable[[], object]] = [
            lambda: linkage_inbox.inbox_files(s, who, ui),
            lambda: jobs.preview(s, sessions, who, ui, registry, name=FILE, mode="auto", at=clock()),
            lambda: start(sessions, ui, registry, clock, sha256=hashlib.sha256(data).hexdigest(), who=who),
            lambda: jobs.job(s, who, registry, 1),
            lambda: jobs.recent_jobs(s, who, registry),
            lambda: jobs.recent_imports(s, who),
        ]
        for call in calls:
            with pytest.raises(PermissionDenied):
                call()
    with sessions() as s:
        assert count(s, LinkageImportJob) == 0
        assert count(s, AccessLogRow) == 0


# -- the dry run ---------------------------------------------------------------------------------

def test_dry_run_leaves_nothing_behind_but_its_access_log_row(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
    runtime: Runtime, make_package: PackageFactory,
) -> None:
    with sessions() as s:
        deliver(s, runtime, make_package())
        before = {m: count(s, m) for m in (LinkageImport, LinkageEntry, LinkageDecision, Event)}
        assert before[LinkageImport] == 0
    data = put(inbox, link(), link(OTHER, ATENA_2))
    with sessions() as s:
        found = jobs.preview(s, sessions, ADMIN, ui, registry, name=FILE, mode="auto", at=clock())
        s.commit()
    r = found.result
    assert (r.ok, r.duplicate, r.mode, r.rows, r.added, r.deactivated, r.resolved, r.conflicts, r.waiting) == (
        True, False, "full", 2, 2, 0, 1, 0, 0)
    assert (found.name, found.size, found.mode, found.sha256) == (FILE, len(data), "auto",
                                                                  hashlib.sha256(data).hexdigest())
    with sessions() as s:
        assert {m: count(s, m) for m in before} == before
        app = s.scalars(select(Application)).one()
        assert (app.linkage_state, app.atena_number) == (LinkageState.UNRESOLVED, None)
    [logged] = access_rows(sessions, "linkage.preview")
    assert (logged.staff_id, logged.subject, logged.reason, logged.atena_number) == (
        "sysadmin", f"linkage_file:{found.sha256[:16]}", None, None)
    # The file is not "already imported" after its dry run: the real import takes it.
    with sessions() as s:
        again = import_linkage(s, data, file_name=FILE, at=clock())
        s.commit()
    assert (again.ok, again.duplicate, again.resolved) == (True, False, 1)


def test_rejected_file_lists_lines_and_columns_never_values(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
) -> None:
    good = sim.to_csv([link()]).decode()
    bad = good + f"ABCD,12345,2025-04-01,2030-03-31,,全件,{CREATED.isoformat()}\r\n"  # line 3: 宛名番号
    bad += f"ABCE,{ATENA_2},2025-02-30,2030-03-31,,更新,{CREATED.isoformat()}\r\n"  # line 4: date, 区分
    (inbox / FILE).write_bytes(bad.encode())
    with sessions() as s:
        found = jobs.preview(s, sessions, ADMIN, ui, registry, name=FILE, mode="auto", at=clock())
        s.commit()
    assert not found.result.ok
    assert [(p.line, p.column) for p in found.result.problems] == [(3, "宛名番号"), (4, "有効開始日"), (4, "区分")]
    job_id = start(sessions, ui, registry, clock, sha256=found.sha256)
    row = finished(sessions, registry, job_id)
    assert (row.state, row.import_id) == ("rejected", None)
    assert row.result is not None
    assert (row.result["problem_count"], row.result["problems"]) == (
        3, [[3, "宛名番号", "not a 宛名番号 (10 digits)"], [4, "有効開始日", "not a date (YYYY-MM-DD)"],
            [4, "区分", "unknown 区分 (全件, 追加, 変更 or 削除)"]])
    stored = json.dumps(row.result, ensure_ascii=False)
    for value in ("ABCD", "ABCE", "12345", ATENA, ATENA_2, "2025-02-30", "更新", SERIAL):
        assert value not in stored
        assert all(value not in str(p) for p in found.result.problems)
    with sessions() as s:
        assert count(s, LinkageImport) == 0


# -- progress ------------------------------------------------------------------------------------

def test_progress_reports_parse_apply_resolve_in_order_with_done_at_most_total(
    sessions: sessionmaker[Session], clock: Clock, runtime: Runtime, make_package: PackageFactory,
) -> None:
    with sessions() as s:
        deliver(s, runtime, make_package())
    rows = [link(), *(link(f"{n:X}", ATENA_2) for n in range(0x100, 0x100 + 1200))]
    data = sim.to_csv(rows)
    seen: list[tuple[str, int, int]] = []
    with sessions() as s:
        result = import_linkage(s, data, file_name=FILE, at=clock(),
                                progress=lambda p, d, t: seen.append((p, d, t)))
        s.commit()
    assert (result.ok, result.added, result.resolved) == (True, 1201, 1)
    phases = [p for p, _, _ in seen]
    assert sorted(set(phases), key=phases.index) == ["parse", "apply", "resolve"]
    assert phases == sorted(phases, key=["parse", "apply", "resolve"].index)  # never back to an earlier phase
    assert all(0 <= d <= t for _, d, t in seen)
    for phase, total in (("parse", len(data)), ("apply", 1201), ("resolve", 1)):
        reports = [(d, t) for p, d, t in seen if p == phase]
        assert reports[0] == (0, total)
        assert reports[-1] == (total, total)
        assert [d for d, _ in reports] == sorted(d for d, _ in reports)
    assert len([p for p in phases if p == "apply"]) >= 3  # per batch (inserts of 1000), not once

    rejected: list[tuple[str, int, int]] = []
    with sessions() as s:
        assert not import_linkage(s, b"not,a,linkage,file\r\n", file_name="bad.csv", at=clock(),
                                  progress=lambda p, d, t: rejected.append((p, d, t))).ok
    assert rejected == [("parse", 0, 20)]


# -- the job -------------------------------------------------------------------------------------

def test_run_imports_in_the_background_and_records_the_outcome(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
    runtime: Runtime, make_package: PackageFactory,
) -> None:
    with sessions() as s:
        deliver(s, runtime, make_package())
    put(inbox, link(), link(OTHER, ATENA_2))
    with sessions() as s:
        found = jobs.preview(s, sessions, ADMIN, ui, registry, name=FILE, mode="auto", at=clock())
        s.commit()
    clock.now = NOW + timedelta(minutes=5)
    job_id = start(sessions, ui, registry, clock, sha256=found.sha256.upper())  # as typed: case does not matter
    row = finished(sessions, registry, job_id)
    assert (row.state, row.file_name, row.file_sha256, row.mode, row.requested_by, row.terminal) == (
        "done", FILE, found.sha256, "auto", "sysadmin", "ip:127.0.0.1")
    assert (row.requested_at, row.finished_at) == (clock.now, clock.now)
    assert row.result is not None
    assert {k: row.result[k] for k in ("mode", "rows", "added", "deactivated", "resolved", "conflicts", "waiting")} == {
        "mode": "full", "rows": 2, "added": 2, "deactivated": 0, "resolved": 1, "conflicts": 0, "waiting": 0}
    with sessions() as s:
        imp = s.get(LinkageImport, row.import_id)
        assert imp is not None
        assert (imp.file_sha256, imp.file_name, imp.imported_at) == (found.sha256, FILE, clock.now)
        app = s.scalars(select(Application)).one()
        assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)
        view = jobs.job(s, ADMIN, registry, job_id)
        assert (view.state, view.progress, view.running) == ("done", None, False)
        assert [j.id for j in jobs.recent_jobs(s, ADMIN, registry)] == [job_id]
        assert [i.id for i in jobs.recent_imports(s, ADMIN)] == [row.import_id]
    [logged] = access_rows(sessions, "linkage.import")
    assert (logged.staff_id, logged.subject, logged.reason, logged.at) == (
        "sysadmin", f"linkage_job:{job_id}", "月次の番号紐付情報の取込", clock.now)
    # The same file again: a job that records the earlier import and changes nothing.
    again = finished(sessions, registry, start(sessions, ui, registry, clock, sha256=found.sha256))
    assert (again.state, again.import_id) == ("duplicate", row.import_id)
    with sessions() as s:
        assert count(s, LinkageImport) == 1


def test_file_changed_after_the_preview_is_refused(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
) -> None:
    put(inbox, link())
    with sessions() as s:
        found = jobs.preview(s, sessions, ADMIN, ui, registry, name=FILE, mode="auto", at=clock())
        s.commit()
    put(inbox, link(atena=ATENA_2))  # same name, other bytes
    with pytest.raises(linkage_errors.FileChangedSincePreview):
        start(sessions, ui, registry, clock, sha256=found.sha256)
    with pytest.raises(ReasonRequired):
        start(sessions, ui, registry, clock, sha256=found.sha256, reason="  ")
    with sessions() as s:
        assert (count(s, LinkageImportJob), count(s, LinkageImport)) == (0, 0)
    assert access_rows(sessions, "linkage.import") == []


def test_only_one_import_runs_and_its_progress_is_live(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = put(inbox, link())
    other = put(inbox, link(OTHER, ATENA_2), name="other.csv")
    gate = Gate(monkeypatch)
    job_id = start(sessions, ui, registry, clock, sha256=hashlib.sha256(data).hexdigest())
    try:
        gate.wait_reached()
        assert registry.running() == job_id
        with sessions() as s:
            view = jobs.job(s, ADMIN, registry, job_id)
            assert (view.state, view.running, view.progress) == ("running", True, jobs.Progress("parse", 0, len(data)))
            with pytest.raises(linkage_errors.ImportAlreadyRunning) as refused:
                start(sessions, ui, registry, clock, sha256=hashlib.sha256(other).hexdigest(), name="other.csv")
            assert refused.value.job_id == job_id
            with pytest.raises(linkage_errors.ImportAlreadyRunning):
                jobs.preview(s, sessions, ADMIN, ui, registry, name="other.csv", mode="auto", at=clock())
    finally:
        gate.release.set()
    row = finished(sessions, registry, job_id)
    assert row.state == "done"
    assert registry.running() is None
    with sessions() as s:
        assert count(s, LinkageImportJob) == 1
    assert len(access_rows(sessions, "linkage.import")) == 1
    assert access_rows(sessions, "linkage.preview") == []
    # Free again.
    second = finished(sessions, registry, start(sessions, ui, registry, clock, sha256=hashlib.sha256(other).hexdigest(),
                                                name="other.csv"))
    assert second.state == "done"


def test_a_running_row_without_a_live_import_is_interrupted_and_stored_so_by_the_next_run(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
) -> None:
    with sessions() as s:  # what a process that died mid-import leaves behind
        dead = LinkageImportJob(file_name=FILE, file_sha256="a" * 64, mode="auto", requested_by="sysadmin",
                                terminal="ip:127.0.0.1", requested_at=NOW, state="running")
        s.add(dead)
        s.commit()
        dead_id = dead.id
    with sessions() as s:
        view = jobs.job(s, ADMIN, registry, dead_id)
        assert (view.state, view.running, view.progress) == ("interrupted", False, None)
        assert [j.state for j in jobs.recent_jobs(s, ADMIN, registry)] == ["interrupted"]
        with pytest.raises(NotFound):
            jobs.job(s, ADMIN, registry, dead_id + 1)
    data = put(inbox, link())
    assert finished(sessions, registry, start(sessions, ui, registry, clock,
                                              sha256=hashlib.sha256(data).hexdigest())).state == "done"
    with sessions() as s:
        stored = s.get(LinkageImportJob, dead_id)
        assert stored is not None
        assert (stored.state, stored.finished_at) == ("interrupted", None)


def test_an_import_that_crashes_is_failed_without_its_message(
    sessions: sessionmaker[Session], ui: StaffUISettings, inbox: Path, clock: Clock, registry: jobs.JobRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = put(inbox, link())

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"value {ATENA} in a driver message")

    monkeypatch.setattr(jobs, "import_linkage", crash)
    row = finished(sessions, registry, start(sessions, ui, registry, clock, sha256=hashlib.sha256(data).hexdigest()))
    assert (row.state, row.result, row.finished_at, row.import_id) == ("failed", {"error": "RuntimeError"}, clock.now,
                                                                       None)


def test_the_registry_refuses_a_second_launch_atomically() -> None:
    registry = jobs.JobRegistry()
    release = threading.Event()
    created: list[int] = []

    def create(job_id: int) -> Callable[[], int]:
        def make() -> int:
            created.append(job_id)
            return job_id
        return make

    def work(_job_id: int, report: jobs.ReportFn) -> None:
        report("apply", 1, 2)
        assert release.wait(WAIT)

    assert registry.launch(create(1), work) == 1
    try:
        with pytest.raises(linkage_errors.ImportAlreadyRunning):
            registry.launch(create(2), work)
        assert created == [1]  # the second job row was never created
        assert registry.running() == 1
    finally:
        release.set()
    assert registry.wait(1, WAIT)
    assert (registry.running(), registry.progress(1)) == (None, None)
    assert registry.launch(create(3), lambda _job_id, _report: None) == 3
    assert registry.wait(3, WAIT)


def test_a_symlink_swapped_in_after_the_listing_is_not_followed(
    ui: StaffUISettings, inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(inbox, link())
    listed = linkage_inbox._scan(inbox)  # the listing, taken before the swap
    (tmp_path / "secret.csv").write_bytes(b"not for the inbox")
    (inbox / FILE).unlink()
    (inbox / FILE).symlink_to(tmp_path / "secret.csv")
    monkeypatch.setattr(linkage_inbox, "_scan", lambda _inbox: listed)
    with pytest.raises(linkage_errors.InboxFileMissing):
        linkage_inbox.read_inbox_file(ui, FILE)
