"""One relay instance: everything a request, a poll round or a status round needs, built once.

:meth:`Relay.from_settings` prepares the private temp directory (refusing to start if it is not
empty), loads the trust material, opens the tombstone store and builds the clients. Tests build a
:class:`Relay` with :meth:`Relay.build` and inject the clock, sleep, randomness, scanner and HTTP
clients. :meth:`Relay.readiness` answers ``/readyz``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from dmz_relay.crls import CrlFetcher, CrlStoreCollector, build_crl_http
from dmz_relay.errors import RelayConfigError
from dmz_relay.forwarder import BackoffPolicy, IntakeClient, build_intake_http
from dmz_relay.metrics import Metrics
from dmz_relay.pipeline import Clock, Pipeline
from dmz_relay.portal import PortalClient, build_portal_http
from dmz_relay.pull import Budget, Puller
from dmz_relay.settings import RelaySettings
from dmz_relay.status_relay import StatusRelay
from dmz_relay.tmpdir import prepare_temp_dir
from dmz_relay.tombstones import Round, TombstoneStore
from malware import ClamdScanner, NullScanner, Scanner
from probes import ReadinessMonitor
from signature.errors import SignatureError
from signature.policy import RevocationMode, VerificationPolicy, ZipLimits
from signature.verify import TrustConfig

__all__ = ["Relay", "clock_for", "system_clock"]

_log = logging.getLogger(__name__)


def system_clock() -> datetime:
    return datetime.now(UTC)


def clock_for(settings: RelaySettings) -> Clock:
    """The process's clock: the system clock, or in development the ``dev_clock`` setting's moment,
    running on in real time from when the process started (settings refuse it in production).
    The intake has the same rule (``intake.runtime.clock_for``); the zones share no code."""
    start = settings.dev_clock
    if start is None:
        return system_clock
    origin = time.monotonic()

    def shifted() -> datetime:
        return start.astimezone(UTC) + timedelta(seconds=time.monotonic() - origin)

    _log.warning("relay runs on a DEVELOPMENT CLOCK starting at %s", start.isoformat())
    return shifted


@dataclass
class Relay:
    settings: RelaySettings
    trust: TrustConfig
    scanner: Scanner
    scanner_name: str
    tombstones: TombstoneStore
    intake: IntakeClient
    pipeline: Pipeline
    metrics: Metrics
    slots: threading.BoundedSemaphore
    stop: threading.Event
    clock: Clock
    portal: PortalClient | None = None
    puller: Puller | None = None
    status_relay: StatusRelay | None = None
    #: the CRL rounds (fetch, check, install, deliver); None without ``crl_sources``
    crl_fetcher: CrlFetcher | None = None
    #: why the last re-scan of the CRL files failed (None: it did not)
    crl_refresh_error: str | None = None
    #: the scheduled readiness check behind ``/readyz`` (:func:`dmz_relay.ops.monitor_of`)
    monitor: ReadinessMonitor | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def build(
        cls, settings: RelaySettings, *, trust: TrustConfig, scanner: Scanner, intake_http: httpx.Client,
        portal_http: httpx.Client | None = None, clock: Clock = system_clock,
        sleep: Callable[[float], None] | None = None, rng: random.Random | None = None,
        metrics: Metrics | None = None, crl_http: httpx.Client | None = None,
    ) -> Relay:
        """Assemble a relay from parts (tests inject every one of them)."""
        stop = threading.Event()
        metrics = metrics or Metrics()
        # In production, waits end early on shutdown: a stopping relay does not sit out a backoff.
        def interruptible(seconds: float) -> None:
            stop.wait(seconds)

        wait = sleep if sleep is not None else interruptible
        tombstones = TombstoneStore(settings.tombstone_path)
        closed = tombstones.close_open(clock())  # the memory of a process that died holding packages is gone
        if closed:
            _log.warning("closed %d tombstone(s) a previous process left open (PROCESS_ENDED)", closed)
        intake = IntakeClient(
            intake_http, backoff=BackoffPolicy(settings.forward_attempts, settings.forward_backoff_initial,
                                               settings.forward_backoff_max, settings.forward_jitter),
            sleep=wait, rng=rng, metrics=metrics, stop=stop)
        policy = VerificationPolicy(limits=ZipLimits(max_package_bytes=settings.max_package_bytes),
                                    revocation=settings.revocation)
        scanner_name = "none" if isinstance(scanner, NullScanner) else "clamd"
        pipeline = Pipeline(trust=trust, policy=policy, scanner=scanner, scanner_name=scanner_name, intake=intake,
                            tombstones=tombstones, clock=clock, metrics=metrics,
                            max_package_bytes=settings.max_package_bytes, stop=stop)
        slots = threading.BoundedSemaphore(settings.max_concurrent_packages)
        relay = cls(settings=settings, trust=trust, scanner=scanner, scanner_name=scanner_name,
                    tombstones=tombstones, intake=intake, pipeline=pipeline, metrics=metrics, slots=slots,
                    stop=stop, clock=clock)
        relay._closers.extend([tombstones.close, intake_http.close])
        if settings.crl_sources:
            if crl_http is None:
                raise RelayConfigError("crl_sources need an HTTP client for the distribution points")
            relay.crl_fetcher = CrlFetcher(
                settings, http=crl_http, store=trust.revocation,
                configured=(*trust.jpki.anchors, *trust.intermediates), intake=intake, clock=clock, metrics=metrics)
            relay._closers.append(crl_http.close)
        metrics.registry.register(CrlStoreCollector(trust.revocation, relay.crl_fetcher, clock))
        if portal_http is not None:
            if settings.municipality_code is None or settings.portal_api_key is None:
                raise RelayConfigError("the portal needs municipality_code and portal_api_key")
            relay.portal = PortalClient(
                portal_http, municipality_code=settings.municipality_code,
                api_key=settings.portal_api_key.get_secret_value(), sleep=wait,
                max_waits=settings.portal_max_waits, max_retry_after=settings.portal_max_retry_after,
                metrics=metrics)
            relay.puller = Puller(
                portal=relay.portal, pipeline=pipeline, tombstones=tombstones, slots=slots, metrics=metrics,
                page_size=settings.page_size, stop=stop, intake=intake, report_reception=settings.report_reception,
                prefetch=settings.pull_prefetch,
                budget=Budget(max_attempts=settings.item_max_attempts,
                              max_age=timedelta(hours=settings.item_max_age_hours),
                              max_consecutive_failures=settings.max_consecutive_failures))
            relay.puller.update_gauges()
            relay.status_relay = StatusRelay(intake=intake, portal=relay.portal, metrics=metrics, stop=stop)
            relay._closers.append(portal_http.close)
        return relay

    @classmethod
    def from_settings(cls, settings: RelaySettings, *, clock: Clock = system_clock) -> Relay:
        """The production assembly: private temp dir first, then trust, scanner and clients."""
        prepare_temp_dir(settings.effective_temp_dir)
        if settings.crl_dir is not None:
            try:
                settings.crl_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RelayConfigError(f"crl_dir {settings.crl_dir} cannot be created ({type(exc).__name__})") from exc
        try:
            trust = TrustConfig.load(jpki_roots=settings.jpki_roots, portal_roots=settings.portal_roots,
                                     crls=settings.crls, intermediates=settings.jpki_intermediates)
        except SignatureError as exc:
            raise RelayConfigError(f"trust material cannot be used: {exc}") from exc
        scanner: Scanner = (NullScanner() if settings.scanner == "none"
                            else ClamdScanner(settings.clamd_socket, timeout=settings.clamd_timeout))
        try:
            intake_http = build_intake_http(settings)
            portal_http = build_portal_http(settings) if settings.portal_url else None
            crl_http = build_crl_http(settings) if settings.crl_sources else None
        except (ValueError, OSError) as exc:
            raise RelayConfigError(f"TLS material cannot be used: {exc}") from exc
        return cls.build(settings, trust=trust, scanner=scanner, intake_http=intake_http,
                         portal_http=portal_http, clock=clock, crl_http=crl_http)

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        for close in reversed(self._closers):
            close()
        self._closers.clear()

    # --- operations ----------------------------------------------------------------------------

    def refresh_trust(self) -> None:
        """Pick up changed CRL files (cheap when nothing changed: a stat per file); a source that
        cannot be read is reported by readiness, and the CRLs loaded before stay in use."""
        store = self.trust.revocation
        if store is None:
            return
        try:
            store.refresh(at=self.clock())
        except SignatureError as exc:
            if self.crl_refresh_error is None:
                _log.error("CRL sources cannot be read (the CRLs loaded before stay in use): %s", exc)
            self.crl_refresh_error = str(exc)
        else:
            self.crl_refresh_error = None

    def crl_loop(self, *, fetch: bool) -> None:
        """For ``serve`` and ``pull``: re-scan the CRL files every ``crl_watch_interval`` seconds and,
        with ``fetch``, run a CRL round at once and then every ``crl_refresh_interval`` seconds."""
        s = self.settings
        next_round = time.monotonic()  # scheduling only; what is decided uses ``clock``
        while not self.stop.is_set():
            self.refresh_trust()
            if fetch and self.crl_fetcher is not None and time.monotonic() >= next_round:
                try:
                    crl_round = self.crl_fetcher.run_once()
                except Exception:  # noqa: BLE001 - the loop must survive one bad round; it is logged
                    _log.exception("CRL round failed")
                else:
                    for result in crl_round.results:
                        _log.info("CRL round: %s", result.line())
                next_round = time.monotonic() + s.crl_refresh_interval
            self.stop.wait(s.crl_watch_interval)

    def readiness(self) -> dict[str, str]:
        """Each check's state: "ok", "skipped", "disabled" or what is wrong (no personal data)."""
        checks: dict[str, str] = {}
        checks["intake"] = self.intake.readiness()
        # What the packages' answers said: a misconfiguration is red although /readyz of the intake
        # (no client certificate check there) may answer.
        checks["intake_channel"] = self.pipeline.channel.readiness()
        if self.portal is None:
            checks["portal"] = "skipped"
        else:
            checks["portal"] = "ok" if self.portal.ready() else "unreachable"
        if self.scanner_name == "none":
            checks["scanner"] = "disabled"
        else:
            checks["scanner"] = "ok" if self.scanner.ping() else "not answering"
        checks["trust"] = "ok" if self.trust.jpki.anchors and self.trust.portal.anchors else "no anchors"
        store = self.trust.revocation
        if store is None:
            checks["crls"] = "none configured" if self.settings.revocation is RevocationMode.REQUIRE else "skipped"
        elif self.crl_refresh_error is not None:
            checks["crls"] = "CRL sources cannot be read (see the log)"
        else:
            margin = timedelta(hours=self.settings.crl_expiry_margin_hours)
            checks["crls"] = store.status().freshness(self.clock(), margin=margin)
        if self.crl_fetcher is not None:
            checks["crl_sources"] = self.crl_fetcher.readiness(self.clock())
        return checks

    def status(self) -> dict[str, object]:
        """Reconciliation for operators (``dmz_relay status``): no personal data, only 受付番号,
        digests, counts, codes and times."""
        def round_json(r: Round | None) -> dict[str, object] | None:
            if r is None:
                return None
            return {"started_at": r.started_at.isoformat(), "finished_at": r.finished_at and r.finished_at.isoformat(),
                    "stopped": r.stopped, "listed": r.listed, "settled": r.settled, "failed": r.failed}

        counts = self.tombstones.reconciliation()
        return {
            "items": {state.value: n for state, n in counts.items()},
            "listed": sum(counts.values()),
            "set_aside": [{"receipt_number": i.receipt_number, "sha256": i.sha256, "reason_code": i.reason_code,
                           "attempts": i.attempts, "first_seen_at": i.first_seen_at.isoformat(),
                           "set_aside_at": i.settled_at and i.settled_at.isoformat(),
                           "portal_told": i.portal_told_at is not None, "intake_told": i.intake_told_at is not None}
                          for i in self.tombstones.set_aside_items()],
            "last_round": round_json(self.tombstones.last_round()),
            "last_completed_round": round_json(self.tombstones.last_round(completed=True)),
            "intake_channel": self.pipeline.channel.readiness(),
            "crls": self._crl_status(),
        }

    def _crl_status(self) -> dict[str, object]:
        store = self.trust.revocation
        out: dict[str, object] = {}
        if store is not None:
            st = store.status()
            out.update(generation=st.generation, digest=st.digest, in_use=st.crl_count,
                       earliest_next_update=st.earliest_next_update and st.earliest_next_update.isoformat(),
                       store_refused={code.value: n for code, n in st.refused})
        if self.crl_fetcher is not None:
            out["sources"] = self.crl_fetcher.state()
        return out

    def run_loop(self, work: Callable[[], object], interval: float) -> None:
        """Run ``work`` every ``interval`` seconds until :attr:`stop` is set (for ``serve``)."""
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                work()
            except Exception:  # noqa: BLE001 - a loop must survive one bad round; it is logged
                _log.exception("background round failed")
            self.stop.wait(max(0.0, interval - (time.monotonic() - started)))
