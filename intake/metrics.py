"""Prometheus metrics of one intake process, in its own registry (no process-global state).

Two kinds: what the process sees itself (deliveries by outcome and their durations, counted by
:class:`DeliveryMetrics` around the delivery route), and what the database knows (outbox depth and
failures, status-outbox lag, mail per department, login failures, access-log rows), read
by :class:`DatabaseCollector` **at scrape time only** — a scrape needs the bearer token
(``metrics_token``), so nobody can make the intake query its database by asking. Labels are fixed
vocabularies and department ids: never a 受付番号, a name or anything else about a person.

Metric names (docs/operations.md "Monitoring", docs/運用手順書.md §6): see :data:`METRIC_NAMES`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.models import AccessLogRow, ForwardItem, MailSentLog, StatusNotice

__all__ = ["CONTENT_TYPE", "METRIC_NAMES", "DatabaseCollector", "IntakeMetrics", "authorised"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_log = logging.getLogger(__name__)

#: Every metric the intake exposes (the documentation test checks the docs name only these).
METRIC_NAMES = (
    "intake_deliveries_total",
    "intake_delivery_seconds",
    "intake_verification_seconds",
    "intake_outbox_items",
    "intake_outbox_failed_items",
    "intake_status_outbox_pending",
    "intake_status_outbox_lag_seconds",
    "intake_mail_sent_total",
    "intake_mail_failed",
    "intake_login_failures_total",
    "intake_access_log_rows_total",
    "intake_metrics_scrape_errors_total",
    # the CRLs in use, from the store's status (intake/crls/health.py)
    "intake_crl_seconds_until_next_update",
    "intake_crl_generation",
    "intake_crls_in_use",
    "intake_crl_store_refused",
    "intake_crl_last_refresh_timestamp_seconds",
    "intake_crl_received_total",
    "intake_crl_refused_total",
    "intake_crl_reverify_runs_total",
)


def outcome_of(status: int) -> str:
    """A delivery answer's outcome label: stored (201), duplicate (200), in_flight (409),
    refused (other 4xx), error (5xx)."""
    if status == 201:
        return "stored"
    if status == 200:
        return "duplicate"
    if status == 409:
        return "in_flight"
    return "refused" if 400 <= status < 500 else "error"


class DatabaseCollector(Collector):
    """Reads the database's counts when scraped. A failing query yields what it could and counts
    ``intake_metrics_scrape_errors_total`` (a broken database must not break the scrape)."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._errors = 0

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self._clock()
        families: list[GaugeMetricFamily | CounterMetricFamily] = []
        try:
            with self._sessions() as session:
                families.extend(self._database(session, now))
        except Exception as exc:  # noqa: BLE001 - any database failure: report it as a metric, not a 500
            self._errors += 1
            _log.warning("metrics: database not readable (%s)", type(exc).__name__)
        errors = CounterMetricFamily("intake_metrics_scrape_errors", "Scrapes whose database part failed")
        errors.add_metric([], self._errors)
        families.append(errors)
        yield from families

    def _database(self, session: Session, now: datetime) -> list[GaugeMetricFamily | CounterMetricFamily]:
        outbox = GaugeMetricFamily("intake_outbox_items", "Forwarding outbox items by state", labels=["state"])
        for state, count in session.execute(select(ForwardItem.state, func.count()).group_by(ForwardItem.state)):
            outbox.add_metric([state.value], count)
        failed = GaugeMetricFamily("intake_outbox_failed_items", "Forwarding items that gave up (need a retry)",
                                   labels=["route"])
        for route, count in session.execute(select(ForwardItem.route, func.count())
                                            .where(ForwardItem.state == "failed").group_by(ForwardItem.route)):
            failed.add_metric([route], count)
        pending, oldest = session.execute(select(func.count(), func.min(StatusNotice.at))
                                          .where(StatusNotice.acked_at.is_(None))).one()
        notices = GaugeMetricFamily("intake_status_outbox_pending", "Status notices the relay has not acknowledged")
        notices.add_metric([], pending)
        lag = GaugeMetricFamily("intake_status_outbox_lag_seconds", "Age of the oldest unacknowledged status notice")
        lag.add_metric([], 0.0 if oldest is None else max(0.0, (now - _aware(oldest)).total_seconds()))
        sent = CounterMetricFamily("intake_mail_sent", "Daily mails sent, by department", labels=["department"])
        failing = GaugeMetricFamily("intake_mail_failed", "Daily mails not sent whose last attempt failed",
                                    labels=["department"])
        for department, mail_state, error, count in session.execute(
                select(MailSentLog.department, MailSentLog.state, MailSentLog.last_error.is_not(None), func.count())
                .group_by(MailSentLog.department, MailSentLog.state, MailSentLog.last_error.is_not(None))):
            if mail_state.value == "sent":
                sent.add_metric([department], count)
            elif error:
                failing.add_metric([department], count)
        logins = CounterMetricFamily("intake_login_failures", "Failed staff logins (access-log rows kept)")
        logins.add_metric([], session.scalar(select(func.count()).where(AccessLogRow.action == "login.failed")) or 0)
        appended = CounterMetricFamily("intake_access_log_rows", "Access-log rows appended (highest id): rate() "
                                       "gives the append rate")
        appended.add_metric([], session.scalar(select(func.max(AccessLogRow.id))) or 0)
        return [outbox, failed, notices, lag, sent, failing, logins, appended]


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class IntakeMetrics:
    """The process's registry: delivery counters observed by the app, plus the database collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter("intake_deliveries", "Delivery requests answered, by outcome", ["outcome"],
                                  registry=self.registry)
        self.delivery_seconds = Histogram("intake_delivery_seconds", "From request to answer of a delivery "
                                          "(verification and storing)", buckets=_SECONDS, registry=self.registry)
        self.verification_seconds = Histogram("intake_verification_seconds", "Duration of one package "
                                              "verification (signature.verify_package)", buckets=_SECONDS,
                                              registry=self.registry)

    def add_database(self, collector: DatabaseCollector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def authorised(header: str | None, token: str | None) -> bool:
    """Does ``Authorization: Bearer …`` carry the configured token? No token configured: never."""
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())
