"""The newest CRL's ``thisUpdate`` per issuer, for the ``intake_crl_age_seconds`` metric.

Files are re-read only when their (size, mtime, inode) change, so a scrape costs a ``stat`` per
file. The issuer label is the first 16 hex digits of the SHA-256 of the issuer's name (no name text).
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from pathlib import Path

from cryptography import x509

__all__ = ["CrlAges"]

_SUFFIXES = {".crl", ".pem", ".der"}


class CrlAges:
    def __init__(self, sources: list[Path]) -> None:
        self._sources = list(sources)
        self._cache: dict[Path, tuple[tuple[int, int, int], list[tuple[str, datetime]]]] = {}
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for source in self._sources:
            if source.is_dir():
                files.extend(sorted(p for p in source.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file()))
            elif source.is_file():
                files.append(source)
        return files

    def _read(self, path: Path) -> list[tuple[str, datetime]]:
        try:
            st = path.stat()
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            data = path.read_bytes()
        except OSError:
            return []
        try:
            crls = ([x509.load_der_x509_crl(data)] if data[:1] == b"\x30"
                    else [x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + block)
                          for block in data.split(b"-----BEGIN X509 CRL-----")[1:]])
        except ValueError:
            crls = []
        found = [(hashlib.sha256(c.issuer.public_bytes()).hexdigest()[:16], c.last_update_utc) for c in crls]
        self._cache[path] = (stamp, found)
        return found

    def newest(self) -> dict[str, datetime]:
        """Issuer label → the newest thisUpdate among its CRLs."""
        newest: dict[str, datetime] = {}
        with self._lock:
            for path in self._files():
                for issuer, this_update in self._read(path):
                    if issuer not in newest or this_update > newest[issuer]:
                        newest[issuer] = this_update
        return newest
