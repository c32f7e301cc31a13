"""Prometheus metrics of one relay instance, in its own registry (no process-global state).

Labels are fixed vocabularies (channel, outcome, stage, result): never a 受付番号 or anything else
per package, so the series stay few and hold no data about anyone.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.packages = Counter("relay_packages", "Packages handled, by channel and outcome",
                                ["channel", "outcome"], registry=r)
        self.receipt_to_erasure = Histogram(
            "relay_package_seconds", "From reading a package to erasing the relay's copy", ["channel"],
            buckets=_SECONDS, registry=r)
        self.stage = Histogram("relay_stage_seconds", "Duration of one pipeline stage", ["stage"],
                               buckets=_SECONDS, registry=r)
        self.forward_retries = Counter("relay_forward_retries", "Forwarding attempts that were retried",
                                       registry=r)
        self.malware = Counter("relay_malware_files", "Files the scanner flagged", registry=r)
        self.in_flight = Gauge("relay_packages_in_flight", "Packages in memory now", registry=r)
        self.pull_backlog = Gauge("relay_pull_backlog", "Listed packages of the current page not yet handled",
                                  registry=r)
        self.push_busy = Counter("relay_push_busy", "Pushes answered 503 because the relay was saturated",
                                 registry=r)
        self.portal_waits = Counter("relay_portal_waits", "Waits on portal 429/503/transport errors", ["reason"],
                                    registry=r)
        self.statuses = Counter("relay_status_notices", "Status notices relayed to the portal, by result",
                                ["result"], registry=r)
        self.intake_channel_ok = Gauge("relay_intake_channel_ok",
                                       "1 while the intake answers as configured; 0 while the channel is stopped",
                                       registry=r)
        self.intake_channel_stops = Counter("relay_intake_channel_stops",
                                            "Times the channel to the intake stopped, by why "
                                            "(misconfigured | unavailable)", ["state"], registry=r)
        self.items = Gauge("relay_pull_items", "Listed 受付番号 by state (pending | stored | refused | set_aside)",
                           ["state"], registry=r)
        self.set_aside = Counter("relay_pull_set_aside", "Items set aside after their attempt budget", registry=r)
        self.rounds = Counter("relay_pull_rounds", "Pull rounds by result (completed | stopped)", ["result"],
                              registry=r)
        self.crl_fetches = Counter("relay_crl_fetches", "CRL source fetches, by source and outcome "
                                   "(installed | unchanged | refused | failed)", ["source", "outcome"], registry=r)
        self.crl_refused = Counter("relay_crl_refused", "Fetched CRLs refused (the installed copy kept), by code",
                                   ["code"], registry=r)
        self.crl_deliveries = Counter("relay_crl_deliveries", "CRLs sent to the intake, by result "
                                      "(delivered | refused | failed)", ["result"], registry=r)
        self.last_completed_round = Gauge("relay_pull_last_completed_round_timestamp_seconds",
                                          "When the last pull round that ran to the end finished (Unix time)",
                                          registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
