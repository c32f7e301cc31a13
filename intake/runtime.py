"""What a request or job needs besides its database session, built once from settings.

Time is an input: every service gets ``now`` from ``Runtime.clock`` (tests pin it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from intake.crypto import Sealer
from intake.forwarding.routes import Route, load_routes
from intake.procedures import ProcedureCatalogue, load_procedures
from intake.settings import IntakeSettings
from malware import ClamdScanner, NullScanner, Scanner
from signature.policy import VerificationPolicy, ZipLimits
from signature.verify import TrustConfig

__all__ = ["Clock", "Runtime", "clock_for", "system_clock"]

_log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def clock_for(settings: IntakeSettings) -> Clock:
    """The process's clock: the system clock, or in development the ``dev_clock`` setting's moment,
    running on in real time from when the process started (settings refuse it in production)."""
    start = settings.dev_clock
    if start is None:
        return system_clock
    origin = time.monotonic()

    def shifted() -> datetime:
        return start.astimezone(UTC) + timedelta(seconds=time.monotonic() - origin)

    _log.warning("intake runs on a DEVELOPMENT CLOCK starting at %s", start.isoformat())
    return shifted


@dataclass(frozen=True)
class Runtime:
    settings: IntakeSettings
    trust: TrustConfig
    my_number_sealer: Sealer
    package_sealer: Sealer
    clock: Clock = system_clock
    routes: tuple[Route, ...] = ()
    procedures: ProcedureCatalogue = field(default_factory=lambda: ProcedureCatalogue({}, configured=False))
    policy: VerificationPolicy = field(default_factory=VerificationPolicy)
    #: P11: every file of every delivery is scanned here too (``NullScanner`` in development).
    scanner: Scanner = field(default_factory=NullScanner)
    #: Told each package verification's duration in seconds (the intake_verification_seconds metric).
    observe_verification: Callable[[float], None] = field(default=lambda _seconds: None)

    @property
    def scanner_name(self) -> str:
        return "none" if isinstance(self.scanner, NullScanner) else "clamd"

    def crl_set(self) -> str | None:
        """The digest of the CRL set in use (``RevocationStoreStatus.digest``); None without a store."""
        store = self.trust.revocation
        return store.status().digest if store is not None else None

    @classmethod
    def from_settings(cls, settings: IntakeSettings, *, clock: Clock | None = None) -> Runtime:
        trust = TrustConfig.load(
            jpki_roots=settings.jpki_roots, portal_roots=settings.portal_roots, crls=settings.crls,
            intermediates=settings.jpki_intermediates,
        )
        return cls(
            settings=settings,
            trust=trust,
            my_number_sealer=Sealer({k: v.get_secret_value() for k, v in settings.my_number_keys.items()},
                                    settings.my_number_active_key),
            package_sealer=Sealer({k: v.get_secret_value() for k, v in settings.package_keys.items()},
                                  settings.package_active_key),
            clock=clock if clock is not None else clock_for(settings),
            routes=load_routes(settings.routes_file),
            procedures=load_procedures(settings.procedures_file),
            policy=VerificationPolicy(
                limits=ZipLimits(max_package_bytes=settings.max_package_bytes), revocation=settings.revocation
            ),
            scanner=(ClamdScanner(settings.clamd_socket, timeout=settings.clamd_timeout)
                     if settings.effective_scanner == "clamd" else NullScanner()),
        )
