"""RSA keys derived from the seed, so that the same seed gives byte-identical certificates.

cryptography's (OpenSSL's) key generation takes no seed. pycryptodome's ``RSA.generate`` takes a
``randfunc``; fed with a deterministic byte stream it always finds the same primes. The stream for
one key is SHA-512 in counter mode over (derivation version, seed, label), so every key depends on
its own label only, and keys can be derived in any order, in parallel, or read from a cache.

Derivation is slow (about 0.5 s per 2048-bit key with pycryptodome's constant-time integers), so
derived keys are kept in a cache directory. The cache changes nothing but speed: an entry is named
after a hash of everything the key depends on (including pycryptodome's version, in case its prime
search ever changes) and holds exactly the key a fresh derivation would give. Deleting the cache is
always safe. The keys are test keys for a simulator: the cache stores them unencrypted (mode 0600).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import Crypto
from Crypto.PublicKey import RSA
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from portal_sim.datadir import atomic_write

__all__ = ["KEY_BITS", "KeyDeriver", "default_jobs", "derive_rsa_key_der", "key_stream"]

KEY_BITS = 2048
_DERIVATION = "shinsei/portal_sim/rsa-key/v1"
_PUBLIC_EXPONENT = 65537


def key_stream(seed: int, label: str) -> Callable[[int], bytes]:
    """A deterministic ``randfunc(n) -> n bytes`` for one key: SHA-512(prefix || counter) blocks."""
    prefix = f"{_DERIVATION}\x00{seed}\x00{label}\x00".encode()
    buffer = bytearray()
    counter = 0

    def randfunc(n: int) -> bytes:
        nonlocal counter
        while len(buffer) < n:
            buffer.extend(hashlib.sha512(prefix + counter.to_bytes(8, "big")).digest())
            counter += 1
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    return randfunc


def derive_rsa_key_der(seed: int, label: str, bits: int = KEY_BITS) -> bytes:
    """The key for (``seed``, ``label``) as unencrypted PKCS#8 DER (slow: see the module docstring)."""
    key = RSA.generate(bits, randfunc=key_stream(seed, label), e=_PUBLIC_EXPONENT)
    der: bytes = key.export_key(format="DER", pkcs=8)
    return der


def _derive_job(job: tuple[int, str, int]) -> tuple[str, bytes]:
    seed, label, bits = job
    return label, derive_rsa_key_der(seed, label, bits)


def _load(der: bytes) -> rsa.RSAPrivateKey:
    # The expensive consistency checks (primality of p and q) are skipped: the key was either just
    # derived or written to the cache by this module after being derived (a simulator's test keys).
    key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA key")
    return key


class KeyDeriver:
    """Derives (and caches) the RSA keys of one generation run.

    ``cache_dir=None`` disables the cache. ``jobs`` > 1 derives missing keys in that many worker
    processes; the result does not depend on it.
    """

    def __init__(
        self,
        seed: int,
        *,
        cache_dir: Path | None = None,
        jobs: int = 1,
        bits: int = KEY_BITS,
    ) -> None:
        self.seed = seed
        self.cache_dir = cache_dir
        self.jobs = max(1, jobs)
        self.bits = bits
        self._keys: dict[str, rsa.RSAPrivateKey] = {}

    def _cache_path(self, label: str) -> Path | None:
        if self.cache_dir is None:
            return None
        name = hashlib.sha256(
            f"{_DERIVATION}\x00{Crypto.__version__}\x00{self.bits}\x00{self.seed}\x00{label}".encode()
        ).hexdigest()
        return self.cache_dir / f"{name}.der"

    def _from_cache(self, label: str) -> rsa.RSAPrivateKey | None:
        path = self._cache_path(label)
        if path is None:
            return None
        try:
            return _load(path.read_bytes())
        except (OSError, ValueError, TypeError):
            return None  # absent or damaged: derive again (and overwrite)

    def _to_cache(self, label: str, der: bytes) -> None:
        path = self._cache_path(label)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(path, der, mode=0o600)
        except OSError:
            pass  # a read-only or full cache only costs time

    def derive_all(self, labels: Iterable[str], *, progress: Callable[[int], object] | None = None) -> int:
        """Make every key of ``labels`` available to :meth:`key` (from the cache or derived).

        ``progress(n)`` is called as keys become available; returns how many had to be derived.
        """
        missing: list[str] = []
        for label in dict.fromkeys(labels):  # unique, order kept
            if label in self._keys:
                continue
            cached = self._from_cache(label)
            if cached is None:
                missing.append(label)
            else:
                self._keys[label] = cached
                if progress is not None:
                    progress(1)
        for label, der in self._derive(missing):
            self._to_cache(label, der)
            self._keys[label] = _load(der)
            if progress is not None:
                progress(1)
        return len(missing)

    def _derive(self, labels: Sequence[str]) -> Iterable[tuple[str, bytes]]:
        jobs = [(self.seed, label, self.bits) for label in labels]
        workers = min(self.jobs, len(jobs))
        if workers <= 1:
            yield from map(_derive_job, jobs)
            return
        # "spawn": workers inherit nothing (no locks or threads of the parent), whatever the caller runs in.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            yield from pool.map(_derive_job, jobs)

    def key(self, label: str) -> rsa.RSAPrivateKey:
        """The key of ``label``, derived on the spot if :meth:`derive_all` did not cover it."""
        if label not in self._keys:
            self.derive_all([label])
        return self._keys[label]

    def __call__(self, label: str) -> rsa.RSAPrivateKey:
        return self.key(label)


def default_jobs() -> int:
    """One worker per CPU."""
    return os.cpu_count() or 1
