"""Exception tree of :mod:`dmz_relay`.

Every error the relay raises on purpose derives from :class:`RelayError`; errors of httpx, sqlite3
and the scanner are translated at the boundary with ``raise … from exc``. Messages and fields never
hold personal data: they name codes, HTTP statuses, counts and 受付番号 at most — never a file name
from a package (a file name can hold a resident's name), never package content.

::

    RelayError
    ├── RelayConfigError            settings, trust material or the temp directory cannot be used
    │   └── TempDirNotEmpty         the private temp directory holds files at start-up
    ├── TombstoneError              the state database cannot be written (not retryable)
    ├── IntakeError                 the intake did not give a receipt
    │   ├── IntakeUnavailable       unreachable / 502–504 / 409 after the capped attempts: the channel waits
    │   ├── IntakeMisconfigured     a 4xx that is not a package refusal, or a TLS failure: the channel stops
    │   ├── IntakeFailed            500 (or another unexpected answer) for this package: one failed attempt
    │   ├── IntakeRejected          a documented package refusal (422 + handover.PACKAGE_REFUSALS): final
    │   └── IntakeProtocolError     a 2xx answer that is not a receipt for these bytes
    └── PortalError                 the portal API did not answer as documented
        ├── PortalUnavailable       429 / 503 / transport errors after the capped waits
        ├── PortalRefused           a 4xx answer (wrong credentials, illegal transition, …)
        └── DownloadMismatch        the downloaded bytes are not the listed size / SHA-256
"""

from __future__ import annotations

__all__ = [
    "DownloadMismatch",
    "IntakeError",
    "IntakeFailed",
    "IntakeMisconfigured",
    "IntakeProtocolError",
    "IntakeRejected",
    "IntakeUnavailable",
    "PortalError",
    "PortalRefused",
    "PortalUnavailable",
    "RelayConfigError",
    "RelayError",
    "TempDirNotEmpty",
    "TombstoneError",
]


class RelayError(Exception):
    """Base class of every error raised on purpose by :mod:`dmz_relay`."""


class RelayConfigError(RelayError):
    """The relay must not start: a setting, trust material or the temp directory cannot be used."""


class TempDirNotEmpty(RelayConfigError):
    """The private temp directory is not empty: a previous run may have left plaintext behind."""

    def __init__(self, path: str, entries: int) -> None:
        super().__init__(f"the relay's temp directory {path} is not empty ({entries} entries): "
                         "inspect and wipe it before starting")
        self.path = path
        self.entries = entries


class TombstoneError(RelayError):
    """The tombstone store could not record a step durably."""


class IntakeError(RelayError):
    """The intake did not answer with a receipt. ``code`` is stable and safe to log."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status


class IntakeUnavailable(IntakeError):
    """Transient: the intake could not be reached or asked us to come back, ``attempts`` times."""

    def __init__(self, message: str, *, code: str, attempts: int, status: int | None = None) -> None:
        super().__init__(message, code=code, status=status)
        self.attempts = attempts


class IntakeMisconfigured(IntakeError):
    """Relay and intake do not fit together: authentication, authorisation, routing, size limits or
    protocol (a 4xx that is not a documented package refusal, or a TLS handshake that fails). Not
    the package's fault: nothing is marked done, the channel stops until the intake answers right."""


class IntakeFailed(IntakeError):
    """This attempt for this package failed at the intake (500 or an unexpected answer): it counts
    against the package's attempt budget, and the channel goes on with the next package."""


class IntakeRejected(IntakeError):
    """Final: the intake refused this package with a documented reason (``handover.PACKAGE_REFUSALS``)."""


class IntakeProtocolError(IntakeError):
    """The intake answered 2xx with something that is not a receipt for the bytes we sent."""


class PortalError(RelayError):
    """The portal API did not answer as documented (docs/portal-api.md)."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status


class PortalUnavailable(PortalError):
    """429 / 503 / transport errors persisted through the capped number of waits."""


class PortalRefused(PortalError):
    """A 4xx answer that waiting will not change."""


class DownloadMismatch(PortalError):
    """The package bytes differ from what the list said (size or SHA-256): never forward them."""
