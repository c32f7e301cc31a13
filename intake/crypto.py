"""Encryption at rest: AES-256-GCM with key ids, so keys can be rotated without re-encrypting at once.

A sealed blob is ``b"S1" + len(kid) + kid + nonce(12) + ciphertext+tag``. The associated data binds
a blob to where it belongs (table, row key), so a ciphertext copied to another row does not open.
Two independent sealers exist: one for My Numbers, one for raw packages (docs/operations.md).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CryptoError", "Sealer"]

_MAGIC = b"S1"


class CryptoError(Exception):
    """A blob cannot be opened (unknown key id, tampering, wrong associated data) or a key is bad."""


class Sealer:
    """Encrypts with the active key; decrypts with any configured key."""

    def __init__(
        self, keys: Mapping[str, str], active: str, *, random_bytes: Callable[[int], bytes] = os.urandom
    ) -> None:
        if active not in keys:
            raise CryptoError(f"active key id {active!r} is not configured")
        self._keys: dict[str, AESGCM] = {}
        for kid, b64 in keys.items():
            try:
                raw = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise CryptoError(f"key {kid!r} is not base64") from exc
            if len(raw) != 32 or not kid or len(kid.encode()) > 255:
                raise CryptoError(f"key {kid!r} must be 32 bytes with a short id")
            self._keys[kid] = AESGCM(raw)
        self._active = active
        self._random = random_bytes

    @property
    def active_key_id(self) -> str:
        return self._active

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        kid = self._active.encode()
        nonce = self._random(12)
        return _MAGIC + bytes([len(kid)]) + kid + nonce + self._keys[self._active].encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, *, aad: bytes) -> bytes:
        if not blob.startswith(_MAGIC) or len(blob) < 3:
            raise CryptoError("not a sealed blob")
        n = blob[2]
        kid = blob[3:3 + n].decode(errors="replace")
        key = self._keys.get(kid)
        if key is None:
            raise CryptoError(f"key id {kid!r} is not configured")
        nonce, body = blob[3 + n:15 + n], blob[15 + n:]
        try:
            return key.decrypt(nonce, body, aad)
        except InvalidTag as exc:
            raise CryptoError("blob does not authenticate (tampered, or wrong row)") from exc

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The key id a blob was sealed with (for rotation jobs)."""
        return blob[3:3 + blob[2]].decode(errors="replace")
