"""Which keys production refuses: every key value that appears in this repository, and weak ones.

A key is judged by its **value**, never by its id: renaming the public development key ``dev1`` to
``k2026`` must not make it acceptable. :data:`PUBLIC_KEY_DIGESTS` holds the SHA-256 of the raw bytes
of every 32-byte key written anywhere in the source, the tests, the documentation and the examples
(the development keys of :func:`intake.settings.development_keys` included);
``tests/intake/test_secure_defaults.py`` scans the repository and fails when a key appears that this
list does not refuse. Keys with few distinct byte values (``"A" * 44``, a repeated pattern) are
refused too: 32 random bytes have about 30 distinct values; fewer than 16 happens by chance with a
probability far below 10⁻¹⁵.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

__all__ = ["PUBLIC_KEY_DIGESTS", "key_problem", "public_key_digest", "token_problem"]

#: SHA-256 (hex) of the raw bytes of every key value that is public because it is in this repository.
PUBLIC_KEY_DIGESTS = frozenset({
    # intake.settings development keys: "my-number", "package", "access-log"
    "209d0d2734f432efe977a63cfe9dae7e753c5e29717732a8e94b99cb97240ec2",
    "4c1e7ccd40b40763b50767a0b7edd7292f5af2e1f5ffbf1dc0c970a733737e42",
    "e95565bf010ed87558c2a8bc643eb4d8ce4ca434fb3fdc4bd55740dc0037379d",
})

_MIN_DISTINCT_BYTES = 16
_MIN_TOKEN_LENGTH = 32


def public_key_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def key_problem(b64: str) -> str | None:
    """Why production refuses this key (base64 of 32 bytes), or ``None``. Never quotes the key."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return "is not base64"
    if len(raw) != 32:
        return "must be 32 bytes"
    if public_key_digest(raw) in PUBLIC_KEY_DIGESTS:
        return "is a public key from the source or the tests: generate one (openssl rand -base64 32)"
    if len(set(raw)) < _MIN_DISTINCT_BYTES:
        return "is not random (too few distinct bytes): generate one (openssl rand -base64 32)"
    return None


def token_problem(token: str) -> str | None:
    """Why a bearer token (metrics) is refused, or ``None``."""
    if len(token) < _MIN_TOKEN_LENGTH:
        return f"must be at least {_MIN_TOKEN_LENGTH} characters (openssl rand -hex 32)"
    if len(set(token)) < 10:
        return "is not random (too few distinct characters)"
    return None
