"""The boundary between the API and the data directory (:mod:`portal_sim.datadir`).

The API needs little of a data directory: the credentials from its manifest, the application
records and each package's bytes. This adapter reads them through :class:`~portal_sim.datadir.DataDir`
and translates its errors: at start-up into :class:`ConfigurationError` (the server must not start on
a broken directory), per request into API problems (404 for a missing package, 500 for an unreadable
or missing one) — so no ``DataDirError`` and no file path ever reaches a client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from portal_sim.api.catalogue import ApplicationRecordLike
from portal_sim.api.errors import ConfigurationError, InvalidReceiptNumber, PackageUnavailable
from portal_sim.datadir import DataDir
from portal_sim.errors import DataDirError
from portal_sim.errors import InvalidReceiptNumber as DataDirInvalidReceiptNumber

__all__ = ["Source", "open_source"]


@dataclass(frozen=True)
class Source:
    """What the API takes from a data directory."""

    data_dir: DataDir
    records: Sequence[ApplicationRecordLike]

    @property
    def municipality_code(self) -> str:
        return self.data_dir.manifest.municipality_code

    @property
    def api_key(self) -> str:
        return self.data_dir.manifest.api_key

    @property
    def period_start(self) -> datetime:
        return self.data_dir.manifest.generated_for

    def read_package(self, receipt_number: str) -> bytes:
        try:
            return self.data_dir.package_bytes(receipt_number)
        except DataDirInvalidReceiptNumber as exc:
            raise InvalidReceiptNumber("受付番号 must look like YYYYMMDD-NNNNNNNNNN") from exc
        except DataDirError as exc:  # UnknownReceiptNumber too: the list announced it, so the file must exist
            raise PackageUnavailable("the package cannot be read on the portal side") from exc


def open_source(path: Path) -> Source:
    """Open and fully read the data directory at ``path``, or raise :class:`ConfigurationError`."""
    try:
        data_dir = DataDir(path)
        records = data_dir.applications()
    except DataDirError as exc:
        raise ConfigurationError(f"{path} is not a usable portal_sim data directory: {exc}") from exc
    return Source(data_dir=data_dir, records=records)
