"""The linkage import page over real HTTP: who may use it, preview → confirm → job page until done,
the self-refreshing progress page, one import at a time, confirmation by hash, CSRF, file names
from the form, and the access log."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from intake.linkage import jobs
from intake.models import AccessLogRow, Application, LinkageImport, LinkageImportJob, LinkageState
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from portal_sim import linkage as sim
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import Clock
from tests.intake.test_linkage import ATENA, ATENA_2, CREATED, OTHER, SERIAL, link
from tests.intake.test_linkage_jobs import Gate
from tests.intake.ui.conftest import USERS, UIWorld, build_world, csrf_of

FILE = "linkage-20261125.csv"
REFRESH = '<meta http-equiv="refresh" content="2">'
_SHA = re.compile(r'name="sha256" value="([0-9a-f]{64})"')
_JOB = re.compile(r"^/staff/linkage/jobs/(\d+)$")


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def lw(engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
       inbox: Path) -> Iterator[UIWorld]:
    """The UI world with an inbox folder configured."""
    world, server = build_world(engine, runtime, clock, make_package, spec, ui=StaffUISettings(linkage_inbox=inbox))
    try:
        yield world
    finally:
        registry = jobs.registry_for(world.sessions)
        running = registry.running()
        if running is not None:
            registry.wait(running, 30)
        server.__exit__(None, None, None)


def put(inbox: Path, *rows: sim.LinkageRow, name: str = FILE) -> str:
    data = sim.to_csv(rows)
    (inbox / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def preview(client: httpx.Client, csrf: str, name: str = FILE, mode: str = "auto") -> httpx.Response:
    return client.post("/staff/linkage/preview", data={"csrf": csrf, "name": name, "mode": mode})


def run(client: httpx.Client, csrf: str, sha256: str, name: str = FILE,
        reason: str = "11月分の番号紐付情報の取込") -> httpx.Response:
    return client.post("/staff/linkage/run", data={"csrf": csrf, "name": name, "sha256": sha256, "mode": "auto",
                                                   "reason": reason})


def job_id_of(answer: httpx.Response) -> int:
    assert answer.status_code == 303, answer.text
    found = _JOB.match(answer.headers["location"])
    assert found is not None
    return int(found.group(1))


def until_finished(world: UIWorld, client: httpx.Client, job_id: int) -> httpx.Response:
    """Poll the job page while it refreshes itself, waiting on the import's thread in between
    (it wakes as soon as the thread ends), with a deadline."""
    registry = jobs.registry_for(world.sessions)
    deadline = time.monotonic() + 30
    while True:
        page = client.get(f"/staff/linkage/jobs/{job_id}")
        assert page.status_code == 200
        if REFRESH not in page.text:
            return page
        assert time.monotonic() < deadline, "the import did not finish in time"
        registry.wait(job_id, 0.5)


def log_rows(world: UIWorld, action: str) -> list[AccessLogRow]:
    with world.sessions() as s:
        return list(s.scalars(select(AccessLogRow).where(AccessLogRow.action == action).order_by(AccessLogRow.id)))


def job_count(world: UIWorld) -> int:
    with world.sessions() as s:
        return s.scalar(select(func.count()).select_from(LinkageImportJob)) or 0


def test_every_route_for_every_role(lw: UIWorld, inbox: Path) -> None:
    sha = put(inbox, link())
    with lw.sessions() as s:
        old = LinkageImportJob(file_name="old.csv", file_sha256="b" * 64, mode="full", requested_by="sysadmin",
                               terminal="ip:127.0.0.1", requested_at=NOW, state="done", finished_at=NOW)
        s.add(old)
        s.commit()
        old_id = old.id
    for user in USERS:
        with closing(lw.login(user)) as client:
            csrf = lw.csrf(client)
            got = {
                "index": client.get("/staff/linkage").status_code,
                "job": client.get(f"/staff/linkage/jobs/{old_id}").status_code,
                "preview": preview(client, csrf).status_code,
                "run": run(client, csrf, sha).status_code,
            }
        allowed = user == "sysadmin"
        assert got == ({"index": 200, "job": 200, "preview": 200, "run": 303} if allowed
                       else dict.fromkeys(got, 403)), user
    assert [(r.staff_id, r.subject) for r in log_rows(lw, "linkage.preview")] == [
        ("sysadmin", f"linkage_file:{sha[:16]}")]
    [started] = log_rows(lw, "linkage.import")
    assert started.staff_id == "sysadmin"
    assert job_count(lw) == 2
    with closing(lw.login("sysadmin")) as client:
        assert client.get(f"/staff/linkage/jobs/{old_id + 100}").status_code == 404
        assert client.get("/staff/linkage/jobs/x").status_code == 404


def test_preview_then_confirm_then_the_job_page_until_done(lw: UIWorld, inbox: Path) -> None:
    sha = put(inbox, link(), link(OTHER, ATENA_2))
    with closing(lw.login("sysadmin")) as client:
        index = client.get("/staff/linkage")
        assert index.status_code == 200
        assert FILE in index.text
        assert sha[:16] in index.text
        assert "未取込" in index.text
        page = preview(client, csrf_of(index.text))
        assert page.status_code == 200
        assert "まだ何も取り込まれていません" in page.text
        # Both applications (own and other department) use the serial: both would be resolved.
        for shown in ("<th>データ行数</th><td>2</td>", "<th>追加される紐付</th><td>2</td>",
                      "<th>無効になる紐付</th><td>0</td>", "<th>宛名番号が確定する申請</th><td>2</td>",
                      "<th>新たに競合となる申請</th><td>0</td>",
                      "<th>取込後も未設定・競合のまま残る申請</th><td>0</td>"):
            assert shown in page.text
        for hidden in (SERIAL, OTHER, ATENA, ATENA_2):
            assert hidden not in page.text
        found = _SHA.search(page.text)
        assert found is not None
        assert found.group(1) == sha
        assert 'name="reason"' in page.text
        with lw.sessions() as s:  # the dry run changed nothing
            assert s.scalar(select(func.count()).select_from(LinkageImport)) == 0
            assert {a.linkage_state for a in s.scalars(select(Application))} == {LinkageState.UNRESOLVED}

        job_id = job_id_of(run(client, csrf_of(page.text), sha))
        done = until_finished(lw, client, job_id)
        assert "取込が完了しました" in done.text
        assert "<th>宛名番号が確定した申請</th><td>2</td>" in done.text
        assert "refresh" not in done.headers
        for hidden in (SERIAL, OTHER, ATENA, ATENA_2):
            assert hidden not in done.text
        with lw.sessions() as s:
            import_id = s.scalar(select(LinkageImportJob.import_id).where(LinkageImportJob.id == job_id))
        assert import_id is not None
        assert f"取込番号 {import_id}" in done.text
        index = client.get("/staff/linkage")
        assert f"取込済み（取込番号 {import_id}）" in index.text
        assert f'href="/staff/linkage/jobs/{job_id}"' in index.text
        for text in (index.text, page.text, done.text):
            assert "<script" not in text
            assert "style=" not in text
    with lw.sessions() as s:
        assert {(a.linkage_state, a.atena_number) for a in s.scalars(select(Application))} == {
            (LinkageState.AUTO, ATENA)}
    [logged] = log_rows(lw, "linkage.import")
    assert (logged.staff_id, logged.subject, logged.reason) == (
        "sysadmin", f"linkage_job:{job_id}", "11月分の番号紐付情報の取込")
    assert [r.subject for r in log_rows(lw, "linkage.preview")] == [f"linkage_file:{sha[:16]}"]


def test_running_job_page_refreshes_itself_and_a_second_import_is_refused(
    lw: UIWorld, inbox: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sha = put(inbox, link())
    other = put(inbox, link(OTHER, ATENA_2), name="other.csv")
    gate = Gate(monkeypatch)
    try:
        with closing(lw.login("sysadmin")) as client:
            csrf = lw.csrf(client)
            job_id = job_id_of(run(client, csrf, sha))
            gate.wait_reached()
            page = client.get(f"/staff/linkage/jobs/{job_id}")
            assert page.status_code == 200
            assert REFRESH in page.text
            assert page.headers["refresh"] == "2"
            assert "実行中" in page.text
            assert f"ファイルの検査（0 / {(inbox / FILE).stat().st_size}）" in page.text
            assert "取込処理が実行中です" in client.get("/staff/linkage").text
            second = run(client, csrf, other, name="other.csv")
            assert second.status_code == 409
            assert "別の取込処理が実行中です" in second.text
            assert preview(client, csrf, "other.csv").status_code == 409
            gate.release.set()
            done = until_finished(lw, client, job_id)
            assert "取込が完了しました" in done.text
            assert job_id_of(run(client, csrf, other, name="other.csv")) == job_id + 1  # free again
            until_finished(lw, client, job_id + 1)
    finally:
        gate.release.set()
    assert job_count(lw) == 2
    assert len(log_rows(lw, "linkage.import")) == 2


def test_a_file_changed_after_its_preview_is_refused(lw: UIWorld, inbox: Path) -> None:
    put(inbox, link())
    with closing(lw.login("sysadmin")) as client:
        page = preview(client, lw.csrf(client))
        found = _SHA.search(page.text)
        assert found is not None
        put(inbox, link(atena=ATENA_2))  # the 住基 side replaced the file meanwhile
        answer = run(client, csrf_of(page.text), found.group(1))
        assert answer.status_code == 409
        assert "ファイルの内容が変わっています" in answer.text
        blank = run(client, csrf_of(page.text), found.group(1), reason=" ")
        assert blank.status_code == 400
        assert "処理事由を入力してください" in blank.text
    assert job_count(lw) == 0
    assert log_rows(lw, "linkage.import") == []


def test_csrf_is_required(lw: UIWorld, inbox: Path) -> None:
    sha = put(inbox, link())
    with closing(lw.login("sysadmin")) as client:
        for token in ("", "wrong-token"):
            assert preview(client, token).status_code == 403
            assert run(client, token, sha).status_code == 403
        assert client.post("/staff/linkage/run", data={"name": FILE, "sha256": sha, "reason": "x"}).status_code == 403
    assert log_rows(lw, "linkage.preview") == []
    assert job_count(lw) == 0


@pytest.mark.parametrize(("name", "status", "message"), [
    ("../outside.csv", 400, "ファイル名が正しくありません"),
    ("/etc/passwd", 400, "ファイル名が正しくありません"),
    ("sub/x.csv", 400, "ファイル名が正しくありません"),
    ("a\x00b.csv", 400, "ファイル名が正しくありません"),
    (".hidden.csv", 400, "ファイル名が正しくありません"),
    ("missing.csv", 404, "取込フォルダにありません"),
    ("link.csv", 404, "取込フォルダにありません"),
])
def test_file_names_from_the_form_are_only_inbox_members(
    lw: UIWorld, inbox: Path, tmp_path: Path, name: str, status: int, message: str,
) -> None:
    (tmp_path / "outside.csv").write_bytes(sim.to_csv([link()]))
    (inbox / ".hidden.csv").write_bytes(sim.to_csv([link()]))
    (inbox / "link.csv").symlink_to(tmp_path / "outside.csv")
    with closing(lw.login("sysadmin")) as client:
        csrf = lw.csrf(client)
        answer = preview(client, csrf, name)
        assert answer.status_code == status
        assert message in answer.text
        assert run(client, csrf, "0" * 64, name=name).status_code == status
        index = client.get("/staff/linkage").text
        for unlisted in ("outside.csv", ".hidden.csv", "link.csv"):
            assert f'value="{unlisted}"' not in index
    assert log_rows(lw, "linkage.preview") == []
    assert job_count(lw) == 0


def test_a_broken_file_shows_its_lines_without_values_and_cannot_be_confirmed(lw: UIWorld, inbox: Path) -> None:
    bad = sim.to_csv([link()]).decode() + f"ABCD,12345,2025-04-01,2030-03-31,,全件,{CREATED.isoformat()}\r\n"
    (inbox / FILE).write_bytes(bad.encode())
    with closing(lw.login("sysadmin")) as client:
        page = preview(client, lw.csrf(client))
    assert page.status_code == 200
    assert "取り込めません" in page.text
    assert "<td>3</td>" in page.text
    assert "宛名番号の形式が正しくありません（10桁の数字）" in page.text
    assert 'action="/staff/linkage/run"' not in page.text
    for value in ("ABCD", "12345", SERIAL, ATENA):
        assert value not in page.text


def test_an_interrupted_job_is_shown_as_such(lw: UIWorld) -> None:
    with lw.sessions() as s:  # left "running" by a process that stopped mid-import
        dead = LinkageImportJob(file_name=FILE, file_sha256="c" * 64, mode="auto", requested_by="sysadmin",
                                terminal="ip:127.0.0.1", requested_at=NOW, state="running")
        s.add(dead)
        s.commit()
        dead_id = dead.id
    with closing(lw.login("sysadmin")) as client:
        page = client.get(f"/staff/linkage/jobs/{dead_id}")
        assert page.status_code == 200
        assert "中断" in page.text
        assert "何も変更されていません" in page.text
        assert REFRESH not in page.text
        assert "<td>中断</td>" in client.get("/staff/linkage").text


def test_without_an_inbox_the_page_says_imports_are_not_set_up(ui_world: UIWorld) -> None:
    with closing(ui_world.login("sysadmin")) as client:
        page = client.get("/staff/linkage")
        assert page.status_code == 200
        assert "取込フォルダが設定されていない" in page.text
        answer = preview(client, csrf_of(page.text))
        assert answer.status_code == 404
        assert "取込フォルダが設定されていません" in answer.text
