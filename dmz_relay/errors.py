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
    │   ├── IntakeUnavailable       unreachable / 5xx / 409 after the capped attempts: try later
    │   ├── IntakeRejected          a 4xx answer: the intake will not take these bytes
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


class IntakeRejected(IntakeError):
    """Permanent: the intake answered 4xx (its ``code`` and ``status`` are kept for the source)."""


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
