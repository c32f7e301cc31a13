"""Issue 17 §1 — the container deployment, built and run for real (``make deploy-check``).

One module-scoped run: a private dockerd (tests/support/dockerd.py: TEST-NET addresses only, its
data-root as the image cache), the images built FROM the Debian-made base, docker/compose.yaml
brought up with production settings — portal simulator behind TLS, relay (clamd, mutual TLS both
ways), migrations as a one-shot service, intake API, intake staff UI behind the TLS front proxy,
outbox worker, PostgreSQL, a STARTTLS mail sink. The tests then check the chain end to end, restart
a container mid-run, look for personal data on the relay's volume, take screenshots of the staff UI
through the proxy, and tear everything down, leaving no container, network, volume, daemon, rule or
bridge behind.
"""

from __future__ import annotations

import io
import json
import os
import re
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.deploy.stack import PROJECT, ROOT, Config, Stack, build_images, check_addresses, ours, write_config
from tests.support.chain import JST, PortalData, generate_portal_data
from tests.support.dockerd import AddressClash, DockerEngine, DockerUnavailable
from tests.support.servers import free_port

CACHE = ROOT / ".deploy-cache"
# `make deploy-check` keeps them in docs/screenshots/; a plain `make test` leaves the tree unchanged.
SCREENSHOTS = Path(os.environ.get("SHINSEI_SCREENSHOT_DIR", str(CACHE / "screenshots")))
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APPLICATIONS, RESIDENTS, SEED = 24, 10, 17
HEALTHY = ("portal", "relay", "clamd", "postgres", "intake-api", "intake-ui")


@dataclass
class Run:
    engine: DockerEngine
    stack: Stack
    config: Config
    portal: PortalData
    push_port: int
    ui_port: int
    timings: dict[str, float] = field(default_factory=dict)

    def readable(self) -> set[str]:
        return {a["sha256"] for a in self.portal.applications() if a["defect"] != "malformed_zip"}

    def stored(self) -> int:
        return int(self.stack.sql("SELECT count(*) FROM deliveries"))


def _wait(predicate: object, *, timeout: float, what: str, stack: Stack, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s\n{stack.logs()}")
        time.sleep(interval)  # polling the real containers' state, with a deadline


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    timings: dict[str, float] = {}
    mark = time.monotonic()
    try:
        engine = DockerEngine.start()
    except AddressClash as exc:
        pytest.fail(str(exc))  # a configuration to fix, not a machine that cannot run it
    except DockerUnavailable as exc:
        pytest.skip(str(exc))
    timings["engine start"] = time.monotonic() - mark
    stack: Stack | None = None
    try:
        images = build_images(engine, timings)
        mark = time.monotonic()
        work = tmp_path_factory.mktemp("deploy")
        from portal_sim.cli import default_key_cache

        portal = generate_portal_data(work / "portal", today=datetime.now(JST).date(), applications=APPLICATIONS,
                                      residents=RESIDENTS, seed=SEED, defect_rate=0.05, key_cache=default_key_cache())
        config = write_config(work / "config", portal)
        timings["portal data + configuration"] = time.monotonic() - mark
        push_port, ui_port = free_port(), free_port()
        stack = Stack(engine, images, config, {
            "SHINSEI_CONFIG_DIR": str(config.root), "SHINSEI_PUSH_PORT": str(push_port),
            "SHINSEI_UI_PORT": str(ui_port), "SHINSEI_MUNICIPALITY_CODE": portal.municipality_code,
            "SHINSEI_RELAY_POLL_INTERVAL": "2", "SHINSEI_PORTAL_CLOCK": f"fixed:{portal.period_end.isoformat()}",
            # About one package a second: the run lasts long enough to restart a container in its middle.
            "SHINSEI_PORTAL_RATE": "1"})
        stack.compose("down", "-v", "--remove-orphans", check=False)  # an earlier, killed run
        check_addresses()  # raises AddressClash: fails the module before any bridge is made
        mark = time.monotonic()
        stack.compose("up", "-d", "--no-build", timeout=900)
        _wait(lambda: all(stack.health(s).split()[1:2] == ["healthy"] for s in HEALTHY)  # type: ignore[union-attr]
              and stack.health("migrate").startswith("exited") and stack.health("proxy").startswith("running"),  # type: ignore[union-attr]
              timeout=240, what="every health check", stack=stack)
        assert stack.health("migrate").split()[-1] == "0", stack.logs(["migrate"])
        timings["stack up, every health check green"] = time.monotonic() - mark
        yield Run(engine, stack, config, config.portal, push_port, ui_port, timings)
    finally:
        mark = time.monotonic()
        if stack is not None:
            stack.compose("down", "-v", "--remove-orphans", "-t", "20", check=False, timeout=300)
            left = ours(engine)
        engine.stop()
        timings["teardown"] = time.monotonic() - mark
        CACHE.mkdir(exist_ok=True)
        (CACHE / "timings.json").write_text(json.dumps(timings, indent=2), encoding="utf-8")
        print("deploy-check timings (s):", json.dumps({k: round(v, 1) for k, v in timings.items()}))
        if stack is not None:
            assert not any(left.values()), f"left behind: {left}"
        assert not engine.left_behind, f"iptables rules or links left behind: {engine.left_behind}"


def _push_client(run: Run) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(run.config.host_tls / "push-ca.pem"))
    ctx.load_cert_chain(str(run.config.host_tls / "terminal.pem"), str(run.config.host_tls / "terminal.key"))
    return httpx.Client(base_url=f"https://127.0.0.1:{run.push_port}", verify=ctx, timeout=120, trust_env=False)


@dataclass(frozen=True)
class Flow:
    """What the chain did: stored count when the intake-api was restarted, and the timings."""

    readable: frozenset[str]
    stored_at_restart: int


@pytest.fixture(scope="module")
def flow(run: Run) -> Flow:
    """Let the relay pull every package (the portal rate-limits it to about one a second, so the
    run takes a while), restart the intake-api container after the first delivery, and wait until
    every readable package is stored."""
    stack = run.stack
    mark = time.monotonic()
    _wait(lambda: run.stored() >= 1, timeout=180, what="the first delivery", stack=stack, interval=0.2)
    at_restart = run.stored()
    stack.engine.docker("restart", "-t", "10", stack.container("intake-api"), timeout=120)
    _wait(lambda: stack.health("intake-api").split()[1:2] == ["healthy"], timeout=120,
          what="intake-api healthy again", stack=stack)
    readable = frozenset(run.readable())
    _wait(lambda: run.stored() >= len(readable), timeout=300, what=f"{len(readable)} deliveries", stack=stack)
    run.timings["chain: all packages stored (restart included)"] = time.monotonic() - mark
    return Flow(readable, at_restart)


def _ready(stack: Stack, service: str, port: int) -> bool:
    return stack.exec(service, "python", "-c", PROBE, f"http://127.0.0.1:{port}/readyz").stdout.startswith("200")


PROBE = ("import sys, urllib.request, urllib.error\n"
         "req = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]} "
         "if len(sys.argv) > 2 else {})\n"
         "try:\n    r = urllib.request.urlopen(req, timeout=5); print(r.status); print(r.read().decode())\n"
         "except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n")


def test_applications_go_through_the_containers_once_with_a_restart(run: Run, flow: Flow) -> None:
    """The relay pulls from the portal (over TLS), verifies, scans with clamd and forwards over
    mutual TLS; the intake-api container was restarted while packages were flowing; afterwards every
    readable package is stored exactly once, every offered 受付番号 is settled at the relay, and a
    push through the published push API gets the stored receipt back."""
    stack = run.stack
    assert 1 <= flow.stored_at_restart < len(flow.readable), "the restart was not in the middle of the run"
    rows = stack.sql("SELECT sha256 FROM deliveries").split()
    assert sorted(rows) == sorted(flow.readable)  # nothing lost, nothing twice
    status = json.loads(stack.exec("relay", "python", "-m", "dmz_relay", "status").stdout)
    offered = len(run.portal.applications())
    assert sum(status["items"].values()) == offered, status
    assert status["items"].get("pending", 0) == 0, status  # every 受付番号 settled (stored or refused)
    assert status["items"].get("set_aside", 0) == 0, status
    sample = next(a for a in run.portal.applications() if a["defect"] != "malformed_zip")
    body = (run.portal.path / "packages" / f"{sample['receipt_number']}.zip").read_bytes()
    with _push_client(run) as client:
        answer = client.post("/api/v1/packages", content=body, headers={"Content-Type": "application/zip"})
    assert answer.status_code == 200, answer.text  # the intake had it: the same receipt, no second copy
    assert answer.json()["sha256"] == sample["sha256"]
    assert int(stack.sql("SELECT count(*) FROM deliveries")) == len(flow.readable)
    # The push API wants an LGWAN terminal's certificate: without one the handshake fails.
    with pytest.raises(httpx.HTTPError), httpx.Client(
            verify=ssl.create_default_context(cafile=str(run.config.host_tls / "push-ca.pem")),
            trust_env=False, timeout=10) as bare:
        bare.post(f"https://127.0.0.1:{run.push_port}/api/v1/packages", content=body,
                  headers={"Content-Type": "application/zip"})


def test_relay_volume_holds_no_personal_data(run: Run, flow: Flow) -> None:
    """After the chain, the relay's state volume (tombstones, cursor) holds none of the residents'
    names, kana, addresses or My Numbers (and it does hold the tombstones: a positive control)."""
    archive = subprocess.run(["/usr/bin/docker", "cp", f"{run.stack.container('relay')}:/var/lib/shinsei", "-"],
                             capture_output=True, timeout=120, check=True, env=run.engine.env).stdout
    blobs = b""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                blobs += extracted.read() if extracted else b""
    assert b"tombstones" in blobs
    assert blobs.count(b"stored") >= 1
    needles = set()
    for resident in run.portal.residents():
        for key in ("name", "name_kana", "address", "my_number"):
            value = str(resident[key])
            needles |= {value.encode("utf-8"), value.encode("utf-16-le"), value.encode("cp932", errors="ignore")}
    found = [n.decode("utf-8", errors="replace") for n in needles if len(n) >= 4 and n in blobs]
    assert not found, f"personal data on the relay's volume: {found[:3]}"


def test_operations_endpoints_in_the_containers(run: Run, flow: Flow) -> None:
    """Readiness turns green on both sides after the run (it is a scheduled check: the restart made
    the relay's channel stop for a moment); metrics need the token (401 without it)."""
    stack = run.stack
    _wait(lambda: _ready(stack, "relay", 9500), timeout=120, what="relay ready", stack=stack)
    _wait(lambda: _ready(stack, "intake-api", 9443), timeout=120, what="intake-api ready", stack=stack)
    probe = PROBE
    for service, port, token in (("relay", 9500, run.config.relay_metrics_token),
                                 ("intake-api", 9443, run.config.intake_metrics_token)):
        assert stack.exec(service, "python", "-c", probe, f"http://127.0.0.1:{port}/metrics").stdout.startswith("401")
        assert stack.exec(service, "python", "-c", probe, f"http://127.0.0.1:{port}/metrics",
                          token).stdout.startswith("200")
    relay = stack.exec("relay", "python", "-c", probe, "http://127.0.0.1:9500/metrics",
                       run.config.relay_metrics_token).stdout
    assert re.search(r"^relay_intake_channel_ok 1", relay, re.M), relay[:2000]
    metrics = stack.exec("intake-api", "python", "-c", probe, "http://127.0.0.1:9443/metrics",
                         run.config.intake_metrics_token).stdout
    assert metrics.startswith("200")
    assert "intake_deliveries_total" in metrics
    assert re.search(r'^intake_deliveries_total\{outcome="stored"\} [1-9]', metrics, re.M), metrics[:2000]
    # The services' own code is imported from bytecode compiled in the image, not compiled at each start.
    cached = stack.exec("relay", "python", "-c", "import importlib.util as u, os, sys; "
                        "print(all(os.path.exists(u.find_spec(m).cached) for m in sys.argv[1:]))",
                        "dmz_relay.pipeline", "signature.verify", "intake.deliveries.service").stdout
    assert cached.strip() == "True", cached


def test_staff_ui_through_the_front_proxy(run: Run, flow: Flow) -> None:
    """A reviewer logs in through the TLS front proxy (password + TOTP) and sees the applications;
    screenshots in docs/screenshots/."""
    from playwright.sync_api import sync_playwright

    stack = run.stack
    manifest = json.loads((run.portal.path / "manifest.json").read_text("utf-8"))
    departments = sorted({p["department_code"] for p in manifest["procedures"]})
    password = "deploy-check-" + "x7Qp2"
    args = [a for d in departments for a in ("--department", d)]
    added = stack.exec("intake-ui", "python", "-m", "intake", "staff", "add", "shokuin", "--name", "審査 花子",
                       "--role", "reviewer", *args, "--password-stdin", stdin=password + "\n")
    assert added.returncode == 0, added.stderr
    secret = next(line.split(": ", 1)[1] for line in added.stdout.splitlines() if line.startswith("TOTP secret"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = f"https://127.0.0.1:{run.ui_port}"
    ui_ca = ssl.create_default_context(cafile=str(run.config.host_tls / "ui-ca.pem"))

    def login_page() -> bool:
        try:
            with httpx.Client(verify=ui_ca, trust_env=False, timeout=5) as probe:
                return probe.get(f"{base}/staff/login").status_code == 200
        except httpx.HTTPError:
            return False

    _wait(login_page, timeout=60, what="the login page through the proxy", stack=stack)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True, locale="ja-JP",
                                          viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/")  # the proxy sends / to /staff/
            page.goto(f"{base}/staff/login")
            page.screenshot(path=str(SCREENSHOTS / "deploy-login.png"))
            page.get_by_label("ログインID").fill("shokuin")
            page.get_by_label("パスワード").fill(password)
            page.get_by_label("確認コード").fill(pyotp.TOTP(secret).now())
            page.get_by_role("button", name="ログイン", exact=True).click()
            page.wait_for_load_state()
            page.screenshot(path=str(SCREENSHOTS / "deploy-dashboard.png"), full_page=True)
            page.get_by_role("link", name="申請一覧").click()
            page.wait_for_load_state()
            page.screenshot(path=str(SCREENSHOTS / "deploy-list.png"), full_page=True)
            assert page.locator("table tbody tr").count() >= 1
            cookies = context.cookies()
            assert cookies
            assert all(c["secure"] for c in cookies)
        finally:
            browser.close()
    # The staff UI answers only its front proxy: the host sits on the bridge and reaches the UI
    # container's address directly, and gets 403 (not on the terminal allowlist, not the trusted proxy).
    template = "{{(index .NetworkSettings.Networks \"" + PROJECT + "_staff-ui\").IPAddress}}"
    address = stack.engine.docker("inspect", "--format", template, stack.container("intake-ui"),
                                  timeout=30).stdout.strip()
    with httpx.Client(trust_env=False, timeout=10) as direct:
        assert direct.get(f"http://{address}:8080/staff/login").status_code == 403
