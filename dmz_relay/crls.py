"""CRLs from the distribution points the operator configures, installed here and handed to the intake.

Only the relay reaches LGWAN, where J-LIS publishes its CRLs; the intake opens no connection out. So
one *round* (:meth:`CrlFetcher.run_once`; ``python -m dmz_relay crl refresh``, a systemd timer, and
every ``CRL_REFRESH_INTERVAL`` seconds inside ``serve``) does, for each configured source:

1. **fetch** — ``GET`` its URL with a total deadline (``CRL_FETCH_TIMEOUT``) and a size cap
   (``CRL_MAX_BYTES``, checked on ``Content-Length`` and while reading), no redirects, no content
   encoding (a compressed answer could inflate past any cap), conditional on the last ETag /
   Last-Modified; a transport error, a non-200 answer, a truncated or over-size body fails the
   source and keeps its installed copy;
2. **check** — :func:`signature.revocation.inspect_crl` against the installed copy, with the
   configured certificates, those the store met in validated paths and the source's own ``issuer``
   certificate (then required to have signed it): a forged, damaged or replayed old CRL is refused
   with its code and the installed copy stays in use;
3. **install** — a new CRL is written atomically (temp file, fsync, rename, fsync of the directory)
   as ``<crl_dir>/<name>.crl``; ``crl_dir`` is one of the relay's ``crls`` sources, and the store of
   this process swaps it in at once (:meth:`RevocationStore.refresh`; other relay processes pick it
   up with their own refresh);
4. **deliver** — every installed copy the intake has not confirmed yet is sent over the relay's
   mTLS channel (``PUT /api/v1/crls/{name}``, :mod:`handover.crls`), retried with the relay's backoff
   on 409/502/503/504 and connection errors. A CRL the intake refuses (422 + code) is reported and
   not sent again until the source publishes another one.

What a round learnt is kept in ``<data_dir>/crl-state.json`` (per source: last attempt, last success,
outcome and code, ETag, what the intake confirmed or refused — no personal data; CRLs hold none), so
that readiness, metrics and ``dmz_relay status`` see the rounds of every process. Rounds are
serialised across processes by an ``flock`` on ``<data_dir>/crl-round.lock``: a round that finds
another running is skipped (``busy``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from cryptography import x509
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dmz_relay.errors import IntakeError, IntakeRejected, RelayConfigError
from dmz_relay.forwarder import IntakeClient
from dmz_relay.logs import event
from dmz_relay.metrics import Metrics
from dmz_relay.settings import CrlSource, RelaySettings
from handover import crl_file_name
from signature.certs import load_certificates
from signature.errors import SignatureError
from signature.revocation import CrlInspection, RevocationStore, inspect_crl

__all__ = ["CrlFetcher", "CrlRound", "SourceResult", "build_crl_http"]

Clock = Callable[[], datetime]
Outcome = Literal["installed", "unchanged", "refused", "failed"]
Delivery = Literal["delivered", "already", "refused", "failed", "off"]

STATE_FILE = "crl-state.json"
LOCK_FILE = "crl-round.lock"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SourceResult:
    """What one round did with one source (no personal data)."""

    name: str
    outcome: Outcome
    code: str | None = None
    detail: str = ""
    inspection: CrlInspection | None = field(default=None, repr=False)
    #: the intake's answer for the installed copy: delivered (now), already (earlier), refused,
    #: failed (try again next round), off (CRL_DELIVER=false); None: nothing installed to deliver
    delivery: Delivery | None = None
    delivery_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("installed", "unchanged") and self.delivery in (None, "delivered", "already", "off")

    def line(self) -> str:
        """One line for the operator (``crl refresh`` prints one per source)."""
        if self.outcome == "installed" and self.inspection is not None:
            i = self.inspection
            verified = "signature verified" if i.signature_verified else "issuer not known yet: verified at first use"
            text = (f"{self.name}: installed (thisUpdate {_iso(i.this_update)}, nextUpdate {_iso(i.next_update)}, "
                    f"CRL number {i.crl_number if i.crl_number is not None else '-'}, {verified})")
        elif self.outcome == "unchanged":
            text = f"{self.name}: unchanged"
        elif self.outcome == "refused":
            text = f"{self.name}: REFUSED {self.code} ({self.detail}); the installed copy stays in use"
        else:
            text = f"{self.name}: FAILED {self.code} ({self.detail}); the installed copy stays in use"
        if self.delivery == "delivered":
            text += "; delivered to the intake"
        elif self.delivery == "already":
            text += "; the intake has it"
        elif self.delivery == "refused":
            text += f"; the intake REFUSED it: {self.delivery_code} (not sent again)"
        elif self.delivery == "failed":
            text += f"; NOT delivered to the intake: {self.delivery_code} (next round tries again)"
        return text


@dataclass(frozen=True)
class CrlRound:
    results: tuple[SourceResult, ...]
    #: another process was running a round: nothing was done
    busy: bool = False

    @property
    def ok(self) -> bool:
        return not self.busy and all(r.ok for r in self.results)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "-"


class _Failed(Exception):
    def __init__(self, outcome: Outcome, code: str, detail: str) -> None:
        super().__init__(code)
        self.outcome, self.code, self.detail = outcome, code, detail


def build_crl_http(settings: RelaySettings) -> httpx.Client:
    """The client for the distribution points: ``CRL_CA`` for https (never the public web CAs; none:
    every https source fails), no proxies from the environment, no redirects."""
    context = (ssl.create_default_context(cafile=str(settings.crl_ca)) if settings.crl_ca is not None
               else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    timeout = httpx.Timeout(settings.crl_fetch_timeout, connect=min(10.0, settings.crl_fetch_timeout))
    return httpx.Client(verify=context, timeout=timeout, trust_env=False, follow_redirects=False)


class CrlFetcher:
    """One relay's CRL rounds (:meth:`run_once`) and what they learnt (:meth:`state`)."""

    def __init__(
        self, settings: RelaySettings, *, http: httpx.Client, store: RevocationStore | None,
        configured: Sequence[x509.Certificate], intake: IntakeClient | None, clock: Clock, metrics: Metrics,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.crl_dir is None:
            raise RelayConfigError("crl_sources need crl_dir")
        self.settings = settings
        self.sources: tuple[CrlSource, ...] = tuple(settings.crl_sources)
        self.crl_dir = settings.crl_dir
        self._http = http
        self._store = store
        self._configured = tuple(configured)
        self._intake = intake if settings.crl_deliver else None
        self._clock = clock
        self._metrics = metrics
        self._monotonic = monotonic  # the download deadline only; decisions use ``clock``
        self._state_path = settings.data_dir / STATE_FILE
        self._lock_path = settings.data_dir / LOCK_FILE
        self._round = threading.Lock()
        try:
            self._issuers = {s.name: load_certificates([s.issuer]) for s in self.sources if s.issuer is not None}
        except SignatureError as exc:
            raise RelayConfigError(f"a CRL source's issuer certificate cannot be used: {exc}") from exc

    @classmethod
    def from_settings(cls, settings: RelaySettings, *, clock: Clock) -> CrlFetcher:
        """The assembly for ``python -m dmz_relay crl refresh``: the configured certificates, the
        intake channel and the distribution points' client — no tombstones, no temp directory and
        no CRL store, so it runs beside ``serve`` without touching what ``serve`` holds."""
        from dmz_relay.forwarder import BackoffPolicy, build_intake_http

        if not settings.crl_sources or settings.crl_dir is None:
            raise RelayConfigError("no CRL sources configured (crl_sources, crl_dir)")
        try:
            settings.crl_dir.mkdir(parents=True, exist_ok=True)
            configured = load_certificates([*settings.jpki_roots, *settings.jpki_intermediates])
            intake_http = build_intake_http(settings)
            http = build_crl_http(settings)
        except SignatureError as exc:
            raise RelayConfigError(f"trust material cannot be used: {exc}") from exc
        except (ValueError, OSError) as exc:
            raise RelayConfigError(f"TLS material or crl_dir cannot be used: {exc}") from exc
        metrics = Metrics()
        intake = IntakeClient(intake_http, backoff=BackoffPolicy(
            settings.forward_attempts, settings.forward_backoff_initial, settings.forward_backoff_max,
            settings.forward_jitter), sleep=time.sleep, metrics=metrics)
        return cls(settings, http=http, store=None, configured=configured, intake=intake, clock=clock,
                   metrics=metrics)

    def close(self) -> None:
        self._http.close()
        if self._intake is not None:
            self._intake.http.close()

    # --- a round ---------------------------------------------------------------------------------

    def run_once(self, *, redeliver: bool = False) -> CrlRound:
        """Fetch, check, install and deliver every source once; ``redeliver`` sends every installed
        copy to the intake again (after an intake restore)."""
        if not self._round.acquire(blocking=False):
            return CrlRound((), busy=True)
        try:
            with self._exclusive() as held:
                if not held:
                    return CrlRound((), busy=True)
                return self._run(redeliver)
        finally:
            self._round.release()

    def _run(self, redeliver: bool) -> CrlRound:
        state = self.state()
        results = [self._fetch_one(source, state.setdefault(source.name, {})) for source in self.sources]
        if self._store is not None and any(r.outcome == "installed" for r in results):
            try:
                self._store.refresh(at=self._clock())
            except SignatureError as exc:
                event("crl.store_refresh_failed", level=40, detail=str(exc)[:200])
        results = [self._deliver(r, state[r.name], redeliver) for r in results]
        self._save_state(state)
        for r in results:
            self._metrics.crl_fetches.labels(r.name, r.outcome).inc()
            if r.outcome == "refused" and r.code is not None:
                self._metrics.crl_refused.labels(r.code).inc()
            if r.delivery in ("delivered", "refused", "failed"):
                self._metrics.crl_deliveries.labels(r.delivery).inc()
        return CrlRound(tuple(results))

    def _fetch_one(self, source: CrlSource, state: dict[str, Any]) -> SourceResult:
        at = self._clock()
        state["last_attempt_at"] = at.isoformat()
        path = self.crl_dir / crl_file_name(source.name)
        try:
            installed: bytes | None = path.read_bytes()
        except FileNotFoundError:
            installed = None
        except OSError as exc:
            return self._settle(source, state, _Failed("failed", "LOCAL_READ_ERROR", type(exc).__name__))
        # Conditional only for the very copy installed: a file replaced by hand is fetched again.
        same = installed is not None and state.get("validators_sha256") == hashlib.sha256(installed).hexdigest()
        try:
            body, validators = self._download(source, state if same else {})
        except _Failed as failed:
            return self._settle(source, state, failed)
        if body is None:  # 304 Not Modified
            return self._settle(source, state, None, detail="not modified")
        # With an issuer configured for the source, that certificate must have signed it; otherwise
        # every certificate known here may verify it (a CRL of a CA seen only in packages waits).
        own = self._issuers.get(source.name)
        found = inspect_crl(body, at=at, issuers=own if own is not None else self._known_issuers(),
                            installed=installed, require_signature=own is not None)
        if found.refusal is not None:
            return self._settle(source, state, _Failed("refused", found.refusal.value, found.detail), found)
        if not found.unchanged:
            try:
                _publish(self.crl_dir, crl_file_name(source.name), found.der)
            except OSError as exc:
                return self._settle(source, state, _Failed("failed", "LOCAL_WRITE_ERROR", type(exc).__name__), found)
        state.update(validators, validators_sha256=found.sha256)  # only for an accepted CRL
        if found.unchanged:
            return self._settle(source, state, None, found, detail="the installed CRL itself")
        return self._settle(source, state, None, found, installed=True)

    def _settle(self, source: CrlSource, state: dict[str, Any], failed: _Failed | None,
                found: CrlInspection | None = None, *, installed: bool = False, detail: str = "") -> SourceResult:
        if failed is not None:
            state.update(outcome=failed.outcome, code=failed.code)
            event(f"crl.{failed.outcome}", level=30, detail=f"{source.name}: {failed.code}: {failed.detail}"[:300],
                  reason_code=failed.code)
            return SourceResult(source.name, failed.outcome, failed.code, failed.detail, found)
        outcome: Outcome = "installed" if installed else "unchanged"
        state.update(outcome=outcome, code=None, last_success_at=self._clock().isoformat())
        if installed and found is not None:
            event("crl.installed", detail=f"{source.name}: CRL number {found.crl_number}, key id "
                                          f"{(found.issuer_key_id or '-')[:16]}", sha256=found.sha256)
        return SourceResult(source.name, outcome, None, detail, found)

    def _download(self, source: CrlSource, conditional: dict[str, Any]) -> tuple[bytes | None, dict[str, Any]]:
        """The body of a 200 answer (None for 304) and its ETag / Last-Modified; :class:`_Failed`
        for everything else."""
        cap = self.settings.crl_max_bytes
        headers = {"Accept-Encoding": "identity", "Accept": "application/pkix-crl, */*"}
        if conditional.get("etag"):
            headers["If-None-Match"] = str(conditional["etag"])
        if conditional.get("last_modified"):
            headers["If-Modified-Since"] = str(conditional["last_modified"])
        deadline = self._monotonic() + self.settings.crl_fetch_timeout
        try:
            with self._http.stream("GET", source.url, headers=headers) as response:
                if response.status_code == 304 and conditional:
                    return None, {}
                if response.status_code != 200:
                    raise _Failed("failed", f"HTTP_{response.status_code}", "the distribution point did not answer "
                                                                             "with the CRL")
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise _Failed("refused", "CONTENT_ENCODING", f"content encoding {encoding[:20]} is refused")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > cap:
                    raise _Failed("refused", "TOO_LARGE", f"Content-Length over the cap of {cap} bytes")
                body = bytearray()
                for chunk in response.iter_raw(_CHUNK):
                    body += chunk
                    if len(body) > cap:
                        raise _Failed("refused", "TOO_LARGE", f"more than the cap of {cap} bytes")
                    if self._monotonic() > deadline:
                        raise _Failed("failed", "TIMEOUT", "the download took longer than CRL_FETCH_TIMEOUT")
                if declared is not None and declared.isdigit() and int(declared) != len(body):
                    raise _Failed("refused", "TRUNCATED", "the body is shorter than its Content-Length")
                validators = {"etag": _header(response, "etag"), "last_modified": _header(response, "last-modified")}
        except httpx.TimeoutException as exc:
            raise _Failed("failed", "TIMEOUT", type(exc).__name__) from exc
        except httpx.RemoteProtocolError as exc:
            # The connection ended before the body did (Content-Length not reached).
            raise _Failed("refused", "TRUNCATED", "the connection closed before the whole CRL arrived") from exc
        except httpx.HTTPError as exc:
            raise _Failed("failed", "CONNECT_ERROR", type(exc).__name__) from exc
        return bytes(body), validators

    def _known_issuers(self) -> tuple[x509.Certificate, ...]:
        if self._store is not None:
            return self._store.known_issuers()
        return self._configured

    # --- delivery to the intake ----------------------------------------------------------------

    def _deliver(self, result: SourceResult, state: dict[str, Any], redeliver: bool) -> SourceResult:
        path = self.crl_dir / crl_file_name(result.name)
        try:
            der = path.read_bytes()
        except OSError:
            return result  # nothing installed yet
        if self._intake is None:
            return _with(result, "off")
        sha = hashlib.sha256(der).hexdigest()
        if not redeliver and state.get("delivered_sha256") == sha:
            return _with(result, "already")
        if not redeliver and state.get("delivery_refused_sha256") == sha:
            return _with(result, "refused", state.get("delivery_code"))
        try:
            receipt = self._intake.deliver_crl(result.name, der)
        except IntakeRejected as exc:
            state.update(delivery_refused_sha256=sha, delivery_code=exc.code)
            event("crl.delivery_refused", level=30, detail=f"{result.name}: the intake refused it",
                  intake_code=exc.code, sha256=sha)
            return _with(result, "refused", exc.code)
        except IntakeError as exc:
            state.update(delivery_code=exc.code)
            event("crl.delivery_failed", level=30, detail=f"{result.name}: not delivered", intake_code=exc.code)
            return _with(result, "failed", exc.code)
        state.update(delivered_sha256=sha, delivered_at=self._clock().isoformat(), delivery_code=None,
                     delivery_refused_sha256=None)
        event("crl.delivered", detail=f"{result.name}: {receipt.outcome} at the intake", sha256=sha)
        return _with(result, "delivered")

    # --- state shared by the processes of this relay ---------------------------------------------

    def state(self) -> dict[str, dict[str, Any]]:
        """Per source: last_attempt_at, last_success_at, outcome, code, etag, last_modified,
        delivered_sha256, delivered_at, delivery_refused_sha256, delivery_code (ISO times)."""
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        sources = data.get("sources") if isinstance(data, dict) else None
        if not isinstance(sources, dict):
            return {}
        return {str(k): dict(v) for k, v in sources.items() if isinstance(v, dict)}

    def _save_state(self, state: dict[str, dict[str, Any]]) -> None:
        names = {s.name for s in self.sources}
        data = {"version": 1, "sources": {k: v for k, v in sorted(state.items()) if k in names}}
        try:
            _publish(self._state_path.parent, self._state_path.name,
                     json.dumps(data, ensure_ascii=True, indent=1).encode())
        except OSError as exc:
            event("crl.state_not_saved", level=40, detail=type(exc).__name__)

    def last_success(self) -> dict[str, datetime | None]:
        """Source name → when it was last fetched successfully (installed or unchanged)."""
        state = self.state()
        found: dict[str, datetime | None] = {}
        for source in self.sources:
            value = state.get(source.name, {}).get("last_success_at")
            try:
                found[source.name] = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                found[source.name] = None
        return found

    def readiness(self, at: datetime) -> str:
        """``"ok"``, or which sources were not fetched successfully within ``CRL_FETCH_MAX_AGE_HOURS``."""
        limit = at - timedelta(hours=self.settings.crl_fetch_max_age_hours)
        late = sorted(name for name, when in self.last_success().items() if when is None or when < limit)
        if not late:
            return "ok"
        return f"not fetched successfully for {self.settings.crl_fetch_max_age_hours:g} h: {', '.join(late)}"

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)


def _header(response: httpx.Response, name: str) -> str | None:
    """A validator header worth sending back: short printable ASCII, else None."""
    value = response.headers.get(name)
    return value if value is not None and len(value) <= 200 and value.isascii() and value.isprintable() else None


def _with(result: SourceResult, delivery: Delivery, code: str | None = None) -> SourceResult:
    return SourceResult(result.name, result.outcome, result.code, result.detail, result.inspection, delivery, code)


def _publish(directory: Path, name: str, data: bytes) -> None:
    """Write ``directory/name`` atomically and durably: temp file, fsync, rename, fsync the directory.

    The temp name ends in ``.tmp``, so the CRL store never reads a half-written file.
    """
    tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CrlStoreCollector(Collector):
    """Gauges read at scrape time: the store's status and the rounds' state file (a stat and a small
    read; no CRL is read)."""

    def __init__(self, store: RevocationStore | None, fetcher: CrlFetcher | None, clock: Clock) -> None:
        self._store = store
        self._fetcher = fetcher
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        until = GaugeMetricFamily("relay_crl_seconds_until_next_update",
                                  "Seconds until the earliest nextUpdate of the CRLs in use (negative: past)")
        generation = GaugeMetricFamily("relay_crl_generation", "Generation of the CRL set in use (changes with it)")
        in_use = GaugeMetricFamily("relay_crls_in_use", "CRLs in use")
        store_refused = GaugeMetricFamily("relay_crl_store_refused",
                                          "CRLs in the CRL sources the store refuses now, by code", labels=["code"])
        if self._store is not None:
            status = self._store.status()
            seconds = status.seconds_until_earliest_next_update(self._clock())
            if seconds is not None:
                until.add_metric([], seconds)
            generation.add_metric([], status.generation)
            in_use.add_metric([], status.crl_count)
            for refusal, times in status.refused:
                store_refused.add_metric([refusal.value], times)
        success = GaugeMetricFamily("relay_crl_last_success_timestamp_seconds",
                                    "When each CRL source was last fetched successfully (Unix time)",
                                    labels=["source"])
        if self._fetcher is not None:
            for name, when in sorted(self._fetcher.last_success().items()):
                if when is not None:
                    success.add_metric([name], when.timestamp())
        yield from (until, generation, in_use, store_refused, success)
