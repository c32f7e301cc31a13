"""Exception tree of :mod:`portal_sim`.

Messages name files, receipt numbers and checks, never a resident's name, address, birth date or
My Number (the data directory holds synthetic personal data, but the habit is the same as for
real data).
"""

from __future__ import annotations

__all__ = [
    "DataDirError",
    "InvalidReceiptNumber",
    "PortalSimError",
    "UnknownReceiptNumber",
]


class PortalSimError(Exception):
    """Base class of every error raised by :mod:`portal_sim`."""


class DataDirError(PortalSimError):
    """A data directory is missing, incomplete, or not in the format this version reads."""


class InvalidReceiptNumber(DataDirError):
    """A string that is not a plain 受付番号 (``YYYYMMDD-NNNNNNNNNN``) was used as one.

    Raised before any file is touched, so that a name such as ``../manifest`` can never reach
    the file system.
    """

    def __init__(self, value: str) -> None:
        # Only the length: the value came from outside and may be anything.
        super().__init__(f"not a receipt number (expected YYYYMMDD-NNNNNNNNNN, got {len(value)} characters)")
        self.value = value


class UnknownReceiptNumber(DataDirError):
    """A well-formed 受付番号 that has no package in the data directory."""

    def __init__(self, receipt_number: str) -> None:
        super().__init__(f"no package for receipt number {receipt_number}")
        self.receipt_number = receipt_number
