"""Issue 14, the chain proof of re-verification: CRLs expire mid-run → deliveries go TRY_LATER → a
fresh CRL arrives through the path we designed, no restart → each is re-verified, forwarded and
notified exactly once.

Real processes, as in tests/chain/test_exactly_once.py: ``portal_sim serve`` → ``dmz_relay serve``
→ fault proxy → ``intake serve`` (mutual TLS), plus the intake's forwarding worker (``intake outbox
run``, a file route: the business system's drop folder) and a CRL distribution point
(:mod:`tests.support.crlserver`). Both intake processes run their CRL watcher.

Time: relay and intake verify at the real clock, but they judge the applicant's certificate and its
revocation at the portal-signed 到達日時 (issue 14 §2). So "time moves past the CRLs' nextUpdate"
is what the portal's (pinned, ``fixed:``) clock lets arrive: the generated period's CRLs are issued
again here with ``nextUpdate = CUT``, a moment inside the period. While the portal's clock stands
just before CUT, only applications that arrived while the CRLs were current are offered (PASSED,
admitted, forwarded once). Then the portal's clock moves to the end of the period (the portal
process is started again with the later clock: it is the portal simulator, not the relay or the
intake) and the rest arrives — no CRL of their issuer speaks for their 到達日時: the relay forwards
them with REVOCATION_UNKNOWN, the intake stores them INDETERMINATE / TRY_LATER, held, not forwarded,
no status change. Then the distribution point publishes fresh CRLs (one of them also lists the
signing certificate of one waiting application, revoked before it arrived: the negative case), and
``python -m dmz_relay crl refresh`` — the timer's round — fetches them and PUTs them to the running
intake. The watchers of both intake processes re-verify: each waiting delivery ends with exactly
one settling ``Reverification`` (PASSED; INDETERMINATE / REVOKED_NO_POE for the revoked one) beside
its first result — before it at most a TRY_LATER row per intermediate CRL set, as the relay installs
one CRL per source — and each version is admitted, forwarded (outbox and drop folder) and notified
(intake notice, portal status) exactly once, the revoked one never. A second CRL change then
re-verifies nothing twice. SQLite and PostgreSQL, about 25 s and 35 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import select

from intake.db import make_engine, make_session_factory
from intake.models import (
    ApplicationVersion,
    Delivery,
    Event,
    ForwardItem,
    ForwardState,
    Reverification,
    StatusNotice,
    VerificationRecord,
)
from portal_sim.procedures import PROCEDURES
from signature.policy import VerificationPolicy
from signature.testing.pki import TestPKI
from signature.verify import TrustConfig, verify_package
from tests.chain.conftest import PortalDataFactory
from tests.support.chain import Chain, ChainOptions, PortalData, Service, wait_until
from tests.support.crlserver import CrlServer, crl_server

APPLICATIONS = 24
RESIDENTS = 10
WAIT = 120.0  # every bounded wait; a healthy run needs a few seconds each


# --- the data: where the CRLs end, and who is revoked --------------------------------------------


def _arrived(app: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(app["arrived_at"])


def choose_cut(apps: list[dict[str, Any]]) -> datetime:
    """The CRLs' nextUpdate: just before the first 補正/再申請/取下げ whose chain began earlier and
    that leaves at least 4 applications on either side; else the middle of the stream."""
    ordered = sorted(apps, key=_arrived)
    numbers = {a["receipt_number"] for a in ordered}
    for i, app in enumerate(ordered):
        if (4 <= i <= len(ordered) - 4 and app["kind"] != "新規申請" and app["first_receipt_number"] in numbers
                and _arrived(ordered[i - 1]) < _arrived(app)):
            earlier = {a["receipt_number"] for a in ordered[:i]}
            if app["first_receipt_number"] in earlier:
                return _arrived(app) - timedelta(seconds=1)
    middle = len(ordered) // 2
    return _arrived(ordered[middle]) - timedelta(seconds=1)


def signer_serials(portal: PortalData, apps: list[dict[str, Any]]) -> dict[str, int]:
    """受付番号 → serial of the signing certificate, read from each package by the verifier."""
    trust = TrustConfig.load(jpki_roots=[portal.jpki_roots], portal_roots=[portal.portal_roots],
                             intermediates=[portal.intermediates])
    out = {}
    for app in apps:
        body = (portal.path / "packages" / f"{app['receipt_number']}.zip").read_bytes()
        report = verify_package(body, trust, at=portal.period_end, policy=VerificationPolicy())
        assert report.signer is not None, app["receipt_number"]
        out[app["receipt_number"]] = int(report.signer.cert_serial, 16)
    return out


class Crls:
    """The generated CRLs' entries, issued again with the validity periods this test chooses."""

    def __init__(self, portal: PortalData) -> None:
        self.pki = TestPKI.load(portal.path / "pki")
        self.entries: list[list[tuple[int, datetime]]] = []
        for generation in range(1, len(self.pki.jpki_roots) + 1):
            crl = x509.load_der_x509_crl((portal.crl_dir / f"jpki-root-g{generation}.crl").read_bytes())
            self.entries.append([(r.serial_number, r.revocation_date_utc) for r in crl])

    def names(self) -> list[str]:
        return [f"jpki-root-g{g}" for g in range(1, len(self.pki.jpki_roots) + 1)]

    def issue(self, *, this_update: datetime, next_update: datetime,
              revoke: tuple[tuple[int, datetime], ...] = ()) -> dict[str, bytes]:
        """One CRL per root generation. ``revoke`` is listed in each: a serial of another root's
        certificate means nothing in a CRL (lookups are per issuer), so the right one decides."""
        return {name: self.pki.issue_crl(root, [*entries, *revoke], this_update=this_update, next_update=next_update)
                for name, root, entries in zip(self.names(), self.pki.jpki_roots, self.entries, strict=True)}


# --- reading the intake's database --------------------------------------------------------------


class Intake:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def snapshot(self) -> dict[str, Any]:
        """Everything the assertions look at, by 受付番号 (codes and counts: no personal data)."""
        with self.sessions() as s:
            deliveries = {d.id: d for d in s.scalars(select(Delivery))}
            number = {i: d.receipt_number for i, d in deliveries.items()}
            versions = {v.receipt_number: v for v in s.scalars(select(ApplicationVersion))}
            by_version = {v.id: n for n, v in versions.items()}
            first = {number[r.delivery_id]: (r.indication, r.sub_indication)
                     for r in s.scalars(select(VerificationRecord))}
            rever: dict[str | None, list[tuple[str, str, str | None]]] = {}
            for r in s.scalars(select(Reverification).order_by(Reverification.id)):
                rever.setdefault(number[r.delivery_id], []).append((r.trigger, r.indication, r.sub_indication))
            forwards = Counter(by_version[f.version_id] for f in s.scalars(select(ForwardItem)))
            delivered = Counter(by_version[f.version_id] for f in s.scalars(
                select(ForwardItem).where(ForwardItem.state == ForwardState.DELIVERED)))
            admitted_events = Counter(e.receipt_number for e in s.scalars(
                select(Event).where(Event.kind == "version.admitted")))
            notices = [(n.receipt_number, n.status, n.acked_at is not None, n.outcome)
                       for n in s.scalars(select(StatusNotice).order_by(StatusNotice.id))]
            return {
                "stored": Counter(d.receipt_number for d in deliveries.values()),
                "awaiting": {d.receipt_number for d in deliveries.values() if d.awaiting_revocation},
                "first": first, "reverified": rever, "forwards": forwards, "delivered": delivered,
                "admitted": {n for n, v in versions.items() if v.admitted_at is not None},
                "admitted_events": admitted_events, "notices": notices,
                "states": {n: v.state.value for n, v in versions.items()},
            }

    def close(self) -> None:
        self.engine.dispose()


def _empty_postgres(request: pytest.FixtureRequest) -> str:
    url = str(request.getfixturevalue("chain_postgres_url"))
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        engine.dispose()
    return url


def crl_refresh(chain: Chain) -> subprocess.CompletedProcess[str]:
    """``python -m dmz_relay crl refresh``: one round of the relay's CRL timer, beside its ``serve``."""
    return subprocess.run([sys.executable, "-m", "dmz_relay", "crl", "refresh"], env=chain.relay.env, cwd=chain.work,
                          capture_output=True, text=True, timeout=180, check=False)


def portal_statuses(portal: PortalData) -> Counter[tuple[str, str]]:
    """(受付番号, status) of every update the portal recorded (its status files)."""
    seen: Counter[tuple[str, str]] = Counter()
    for path in sorted((portal.path / "status").glob("*.json")):
        for entry in json.loads(path.read_text("utf-8"))["entries"]:
            seen[(path.stem, entry["status"])] += 1
    return seen


def crl_set(portal: PortalData, inbox: Path) -> str:
    """The digest of the CRL set the intake's processes use now (``RevocationStoreStatus.digest``:
    over the CRLs in use, whatever their load history), computed here from the same sources."""
    trust = TrustConfig.load(jpki_roots=[portal.jpki_roots], portal_roots=[portal.portal_roots],
                             crls=[portal.crl_dir, inbox], intermediates=[portal.intermediates])
    assert trust.revocation is not None
    return trust.revocation.status().digest


def reverified_with(service: Service, digest: str) -> bool:
    """This process's CRL watcher finished a re-verification pass with the CRL set ``digest``."""
    return any("re-verification with CRL set" in line and digest[:16] in line
               for life in service.lives for line in life.log.read_text("utf-8", errors="replace").splitlines())


def publish(server: CrlServer, crls: dict[str, bytes]) -> None:
    for name, der in crls.items():
        server.serve(f"{name}.crl", der)


# --- the test ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_crls_expire_mid_run_and_a_fresh_crl_reverifies_each_waiting_delivery_once(
    database: str, portal_data_factory: PortalDataFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = portal_data_factory(applications=APPLICATIONS, residents=RESIDENTS, defect_rate=0.0)
    portal = data.copy_to(tmp_path / "portal")
    apps = sorted(portal.applications(), key=_arrived)
    assert len(apps) == APPLICATIONS
    cut = choose_cut(apps)
    before = [a for a in apps if _arrived(a) < cut]
    after = [a for a in apps if _arrived(a) >= cut]
    assert len(before) >= 4, len(before)
    assert len(after) >= 4, len(after)
    late = {a["receipt_number"] for a in after}
    early = {a["receipt_number"] for a in before}
    # What the proof needs of the generated stream (seeded; a change of generator that loses it must
    # show here, not make the test prove less): a later version of an early chain, and a 取下げ.
    assert any(a["kind"] != "新規申請" and a["first_receipt_number"] in early for a in after), after
    assert any(a["kind"] == "取下げ" for a in after), after

    # The negative case: the signing certificate of one waiting 新規申請 (a resident with nothing
    # else after CUT) is revoked a minute before it arrived, in the fresh CRL.
    serials = signer_serials(portal, apps)
    late_by_serial = Counter(serials[n] for n in late)
    victim = next((a for a in after if a["kind"] == "新規申請" and late_by_serial[serials[a["receipt_number"]]] == 1
                   and serials[a["receipt_number"]] not in {serials[n] for n in early}), None)
    assert victim is not None, "no waiting 新規申請 whose card signed nothing else"
    victim_number = victim["receipt_number"]
    revoked_at = _arrived(victim).astimezone(UTC) - timedelta(minutes=1)

    # The CRLs in use from the start end at CUT (same entries as the generated ones).
    crls = Crls(portal)
    start = datetime.fromisoformat(json.loads((portal.path / "manifest.json").read_text())["generated_for"])
    for name, der in crls.issue(this_update=start - timedelta(days=1), next_update=cut).items():
        (portal.crl_dir / f"{name}.crl").write_bytes(der)

    relay_crls, inbox, sink = tmp_path / "relay-crls", tmp_path / "intake-crls", tmp_path / "business-system"
    for d in (relay_crls, inbox, sink):
        d.mkdir()
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [{"name": "all", "procedures": [p.procedure_id for p in PROCEDURES],
                                              "kind": "file", "target": str(sink)}]}), encoding="utf-8")
    database_url = _empty_postgres(request) if database == "postgresql" else None

    with crl_server() as server:
        sources = [{"name": name, "url": server.url(f"{name}.crl")} for name in crls.names()]
        options = ChainOptions(
            database_url=database_url,
            relay={"CRLS": json.dumps([str(portal.crl_dir), str(relay_crls)]), "CRL_DIR": str(relay_crls),
                   "CRL_SOURCES": json.dumps(sources), "CRL_FETCH_IN_SERVE": "false"},
            intake={"CRLS": json.dumps([str(portal.crl_dir), str(inbox)]), "CRL_INBOX": str(inbox),
                    "CRL_WATCH_INTERVAL": "0.2", "ROUTES_FILE": str(routes)},
        )
        with Chain(portal, tmp_path / "chain", options=options) as chain:
            worker = Service("outbox", log_dir=chain.work / "logs", env=chain.intake.env, cwd=chain.work)
            try:
                run(chain, worker, server, portal, crls, inbox, cut=cut, early=early, late=late,
                    victim=victim_number, revoke=((serials[victim_number], revoked_at),),
                    with_notice={a["receipt_number"] for a in apps if a["kind"] == "取下げ"})
            finally:
                worker.terminate(15)
            assert len(chain.intake.lives) == 1  # nothing was restarted but the portal
            assert len(chain.relay.lives) == 1
            assert len(worker.lives) == 1


def run(chain: Chain, worker: Service, server: CrlServer, portal: PortalData, crls: Crls, inbox: Path, *,
        cut: datetime, early: set[str], late: set[str], victim: str, revoke: tuple[tuple[int, datetime], ...],
        with_notice: set[str]) -> None:
    everything = early | late
    intake = Intake(chain.database_url)

    def waiting(what: str, predicate: Any) -> None:
        wait_until(predicate, timeout=WAIT, what=what,
                   on_timeout=lambda: f"{intake.snapshot()}\n{chain.tails()}\n{worker.tail()}")

    def final(numbers: set[str]) -> bool:
        return numbers <= {number for number, _ in chain.final_pairs()}

    try:
        # 1. The CRLs are current for everything the portal offers: PASSED, admitted, forwarded once.
        chain.start_portal(clock=f"fixed:{(cut - timedelta(seconds=1)).isoformat()}")
        chain.start_intake()
        worker.start([sys.executable, "-m", "intake", "outbox", "run", "--interval", "0.2"])
        chain.start_relay()
        waiting("the early applications final at the relay", lambda: final(early))
        waiting("the early applications forwarded",
                lambda: set(intake.snapshot()["delivered"]) == early)
        one = intake.snapshot()
        assert set(one["stored"]) == early
        assert all(v == ("PASSED", None) for v in one["first"].values()), one["first"]
        assert one["admitted"] == early
        assert one["forwards"] == Counter(early)
        assert one["reverified"] == {}
        assert {number for number, *_ in one["notices"]} == with_notice & early

        # 2. Time moves past nextUpdate: the rest arrives, nobody can say whether its signer was revoked.
        chain.portal.terminate()
        chain.start_portal()  # fixed at the end of the period
        waiting("every application final at the relay", lambda: final(everything))
        stones = {t["receipt_number"]: t for t in chain.tombstones() if t["outcome"] == "stored"}
        assert {n: stones[n]["reason_code"] for n in late} == dict.fromkeys(late, "REVOCATION_UNKNOWN")
        assert {n: stones[n]["reason_code"] for n in early} == dict.fromkeys(early)
        two = intake.snapshot()
        assert two["stored"] == Counter(everything)
        assert {n: two["first"][n] for n in late} == dict.fromkeys(late, ("INDETERMINATE", "TRY_LATER"))
        assert two["awaiting"] == late
        assert two["admitted"] == early  # no linkage, no status change, no forwarding for the late ones
        assert two["forwards"] == one["forwards"]
        assert two["notices"] == one["notices"]
        assert two["reverified"] == {}
        assert all(two["states"][n] in ("current", "held") for n in late), two["states"]
        assert len(sink_files(chain)) == len(early)

        # 3. The distribution point publishes fresh CRLs; the relay's timer round fetches, checks,
        #    installs and delivers them; the intake's watchers re-verify. Nothing is restarted.
        now = datetime.now(UTC).replace(microsecond=0)
        fresh = crls.issue(this_update=now - timedelta(hours=1), next_update=now + timedelta(days=2), revoke=revoke)
        publish(server, fresh)
        stale_set = crl_set(portal, inbox)
        refresh = crl_refresh(chain)
        assert refresh.returncode == 0, refresh.stdout + refresh.stderr
        assert all(line.endswith("; delivered to the intake") and ": installed (" in line
                   for line in refresh.stdout.splitlines()), refresh.stdout
        assert len(refresh.stdout.splitlines()) == len(crls.names())
        assert {name: (inbox / f"{name}.crl").read_bytes() for name in fresh} == fresh  # at the intake
        fresh_set = crl_set(portal, inbox)
        assert fresh_set != stale_set
        waiting("every waiting delivery re-verified", lambda: not intake.snapshot()["awaiting"])
        passed = late - {victim}
        waiting("the re-verified applications forwarded",
                lambda: set(intake.snapshot()["delivered"]) == everything - {victim})
        waiting("both watchers re-verified with the fresh CRL set",
                lambda: reverified_with(chain.intake, fresh_set) and reverified_with(worker, fresh_set))
        waiting("status notices acknowledged by the relay",
                lambda: all(acked for _, _, acked, _ in intake.snapshot()["notices"]))
        three = intake.snapshot()
        # One result that settles it per delivery, the last one. The relay delivers the fresh CRLs
        # one per source, so a pass may run between two installs: a delivery whose issuer's CRL came
        # second is then asked once more and stays TRY_LATER (one row per CRL set, never more).
        settled = {n: rows[-1] for n, rows in three["reverified"].items()}
        assert settled == {n: ("revocation", "PASSED", None) for n in passed} | {
            victim: ("revocation", "INDETERMINATE", "REVOKED_NO_POE")}
        for number, rows in three["reverified"].items():
            assert set(rows[:-1]) <= {("revocation", "INDETERMINATE", "TRY_LATER")}, (number, rows)
            assert len(rows) <= len(crls.names()), (number, rows)
        assert three["first"] == two["first"]  # the first result is kept, the new one beside it
        assert three["admitted"] == everything - {victim}
        assert three["forwards"] == Counter(everything - {victim})  # each exactly once, the revoked one never
        assert three["delivered"] == three["forwards"]
        assert three["admitted_events"] == Counter(everything - {victim})
        assert victim not in three["admitted"]
        assert len(sink_files(chain)) == len(everything) - 1
        # Notified once: a status change for each admitted 取下げ (the chain's WITHDRAWN), nothing
        # for the revoked one, each notice exactly once at the intake and at the portal.
        notices = Counter((number, status) for number, status, _, _ in three["notices"])
        assert all(count == 1 for count in notices.values()), notices
        assert all(outcome == "delivered" for _, _, _, outcome in three["notices"]), three["notices"]
        assert set(notices) == {(n, "取下げ") for n in with_notice - {victim}}, notices
        at_portal = portal_statuses(portal)
        assert all(at_portal[key] == 1 for key in notices), (notices, at_portal)
        assert sum(at_portal.values()) == len(notices)
        assert not any(number == victim for number, _ in notices)

        # 4. Another CRL change: both watchers re-verify with it, and find nothing left to do.
        publish(server, crls.issue(this_update=now - timedelta(minutes=30), next_update=now + timedelta(days=3),
                                   revoke=revoke))
        again = crl_refresh(chain)
        assert again.returncode == 0, again.stdout + again.stderr
        second_set = crl_set(portal, inbox)
        assert second_set not in (stale_set, fresh_set)
        waiting("both watchers re-verified with the second fresh CRL set",
                lambda: reverified_with(chain.intake, second_set) and reverified_with(worker, second_set))
        four = intake.snapshot()
        for key in ("reverified", "forwards", "delivered", "admitted", "admitted_events", "notices", "stored"):
            assert four[key] == three[key], key
        assert len(sink_files(chain)) == len(everything) - 1
        assert portal_statuses(portal) == at_portal
        for service in (chain.intake, chain.relay, chain.portal, worker):
            assert service.running(), f"{service.name} exited\n{service.tail()}"
    finally:
        intake.close()


def routes_target(chain: Chain) -> Path:
    routes = json.loads(Path(chain.intake.env["SHINSEI_INTAKE_ROUTES_FILE"]).read_text("utf-8"))
    return Path(routes["routes"][0]["target"])


def sink_files(chain: Chain) -> list[Path]:
    """The business system's drop folder: one file per forwarded (version, route)."""
    return sorted(p for p in routes_target(chain).rglob("*") if p.is_file() and not p.name.startswith("."))

