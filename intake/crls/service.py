"""The CRL inbox: a CRL the relay delivers is checked against this intake's own trust, written
atomically into ``crl_inbox`` and swapped into this process's revocation store.

One copy per name (``<inbox>/<name>.crl``). The check is :func:`signature.revocation.inspect_crl`
— the store's own acceptance rules, the signature when the issuer is known to this intake (its
configured certificates and those its store met in validated paths), and never older than the copy
it replaces. Installs are serialised across processes (an ``flock`` on ``<inbox>/.install.lock``),
so two API workers receiving two CRLs for one name cannot interleave check and write. Every other
process picks the new file up with its own :class:`~intake.crls.watcher.CrlWatcher`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from handover import CrlReceipt, crl_file_name
from intake.crls.errors import CrlNotStored, CrlRefused
from intake.durable import publish_file
from intake.runtime import Runtime
from signature.errors import SignatureError
from signature.revocation import RevocationStore, inspect_crl

__all__ = ["CrlInbox", "inbox_of"]

_log = logging.getLogger(__name__)

_LOCK_FILE = ".install.lock"


@dataclass
class CrlInbox:
    """The inbox of one process: its directory, its store, and what it received (for metrics)."""

    directory: Path
    store: RevocationStore
    #: outcome (installed | unchanged | refused) → count, since this process started
    received: Counter[str] = field(default_factory=Counter)
    #: refusal code → count, since this process started
    refused: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def install(self, name: str, data: bytes, *, at: datetime) -> CrlReceipt:
        """Check ``data`` and install it as ``name``; the receipt, or :class:`CrlRefused` (422 with
        the CRL refusal code) / :class:`CrlNotStored` (503)."""
        file_name = crl_file_name(name)
        with self._lock, self._across_processes():
            path = self.directory / file_name
            try:
                installed: bytes | None = path.read_bytes()
            except FileNotFoundError:
                installed = None
            except OSError as exc:
                raise CrlNotStored(f"the installed CRL {name} cannot be read ({type(exc).__name__})") from exc
            found = inspect_crl(data, at=at, issuers=self.store.known_issuers(), installed=installed)
            if found.refusal is not None:
                self.received["refused"] += 1
                self.refused[found.refusal.value] += 1
                _log.warning("CRL %s refused: %s (%s); the installed copy stays", name, found.refusal.value,
                             found.detail)
                raise CrlRefused(422, found.refusal.value, f"CRL {name} refused: {found.detail}")
            if not found.unchanged:
                try:
                    publish_file(self.directory, file_name, found.der, mode=0o644)
                except OSError as exc:
                    _log.error("CRL %s not stored (%s)", name, type(exc).__name__)
                    raise CrlNotStored(f"CRL {name} could not be written ({type(exc).__name__})") from exc
        outcome: Literal["installed", "unchanged"] = "unchanged" if found.unchanged else "installed"
        self.received[outcome] += 1
        try:
            self.store.refresh(at=at)  # this process at once; the others with their watchers
        except SignatureError as exc:
            # The CRL is installed; a source of the store is missing (the watcher reports it).
            _log.error("CRL sources cannot be re-read after installing %s: %s", name, exc)
        if outcome == "installed":
            _log.info("CRL %s installed (key id %s, thisUpdate %s, CRL number %s)", name,
                      (found.issuer_key_id or "-")[:16], found.this_update and found.this_update.isoformat(),
                      found.crl_number)
        if found.this_update is None or found.next_update is None:  # an accepted CRL always has both
            raise CrlNotStored(f"CRL {name}: no validity period")
        return CrlReceipt(name=name, sha256=found.sha256, outcome=outcome, this_update=found.this_update,
                          next_update=found.next_update, crl_number=found.crl_number)

    @contextlib.contextmanager
    def _across_processes(self) -> Iterator[None]:
        try:
            fd = os.open(self.directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CrlNotStored(f"the CRL inbox cannot be locked ({type(exc).__name__})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


_inboxes: dict[int, tuple[object, CrlInbox]] = {}
_inboxes_lock = threading.Lock()


def inbox_of(runtime: Runtime) -> CrlInbox | None:
    """This process's inbox for ``runtime``'s store (one per store); None without ``crl_inbox``."""
    directory, store = runtime.settings.crl_inbox, runtime.trust.revocation
    if directory is None or store is None:
        return None
    with _inboxes_lock:
        hit = _inboxes.get(id(store))
        if hit is None or hit[0] is not store:  # the stored reference keeps the id from being reused
            hit = (store, CrlInbox(directory, store))
            _inboxes[id(store)] = hit
        return hit[1]
