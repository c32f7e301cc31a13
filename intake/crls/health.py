"""CRL readiness and metrics of one intake process, both read from the store's ``status()`` (the one
owner of CRL freshness), the watcher's snapshot and the inbox's counts — never by re-reading files.

Readiness (:func:`crl_check`, run by the scheduled check behind ``/readyz``) is red when no CRL is
in use while revocation is required, when the earliest nextUpdate is less than
``crl_expiry_margin_hours`` away or past, and when the watcher cannot read the CRL sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from intake.crls.service import inbox_of
from intake.crls.watcher import watcher_of
from intake.runtime import Runtime
from signature.policy import RevocationMode

__all__ = ["CrlCollector", "crl_check"]


def crl_check(runtime: Runtime, at: datetime) -> str:
    """``"ok"`` (or ``"skipped"``), or what is wrong with the CRLs this process uses."""
    store = runtime.trust.revocation
    if store is None:
        return "none configured" if runtime.settings.revocation is RevocationMode.REQUIRE else "skipped"
    snapshot = watcher_of(runtime).snapshot()
    if snapshot.refresh_error is not None:
        return "CRL sources cannot be read (see the log)"
    margin = timedelta(hours=runtime.settings.crl_expiry_margin_hours)
    return store.status().freshness(at, margin=margin)


class CrlCollector(Collector):
    """The CRL metrics, read when scraped (a few attribute reads; no file is touched)."""

    def __init__(self, runtime: Runtime, clock: Callable[[], datetime]) -> None:
        self._runtime = runtime
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        store = self._runtime.trust.revocation
        until = GaugeMetricFamily("intake_crl_seconds_until_next_update",
                                  "Seconds until the earliest nextUpdate of the CRLs in use (negative: past)")
        generation = GaugeMetricFamily("intake_crl_generation", "Generation of the CRL set in use (changes with it)")
        in_use = GaugeMetricFamily("intake_crls_in_use", "CRLs in use")
        store_refused = GaugeMetricFamily("intake_crl_store_refused",
                                          "CRLs in the CRL sources the store refuses now, by code", labels=["code"])
        if store is not None:
            status = store.status()
            seconds = status.seconds_until_earliest_next_update(self._clock())
            if seconds is not None:
                until.add_metric([], seconds)
            generation.add_metric([], status.generation)
            in_use.add_metric([], status.crl_count)
            for refusal, times in status.refused:
                store_refused.add_metric([refusal.value], times)
        yield from (until, generation, in_use, store_refused)

        watcher = watcher_of(self._runtime).snapshot()
        refreshed = GaugeMetricFamily("intake_crl_last_refresh_timestamp_seconds",
                                      "When this process last re-read its CRL sources successfully (Unix time)")
        if watcher.last_refresh_at is not None:
            refreshed.add_metric([], watcher.last_refresh_at.timestamp())
        runs = CounterMetricFamily("intake_crl_reverify_runs", "Re-verifications asked for after the CRL set changed")
        runs.add_metric([], watcher.reverify_runs)
        yield from (refreshed, runs)

        received = CounterMetricFamily("intake_crl_received", "CRLs the relay delivered to this process, by outcome "
                                       "(installed | unchanged | refused)", labels=["outcome"])
        refused = CounterMetricFamily("intake_crl_refused", "CRLs the relay delivered that were refused, by code",
                                      labels=["code"])
        inbox = inbox_of(self._runtime)
        if inbox is not None:
            for outcome, count in sorted(inbox.received.items()):
                received.add_metric([outcome], count)
            for code, count in sorted(inbox.refused.items()):
                refused.add_metric([code], count)
        yield from (received, refused)
