"""The access log's keys: HMAC keys the database does not hold (issue 15 §4).

Each access-log row's hash is an HMAC-SHA-256 under the key its ``key_id`` names, so someone who
can write the database but does not hold the key cannot recompute a chain that verifies: rewriting
the tail of the log (or all of it) shows at the first rewritten row. The keys come from a file or
setting kept apart from the database (``access_log_keys_file``, docs/operations.md "Keys of the
access log"); development uses one public key, loudly, and production refuses it.

The same key makes the **keyed fingerprint** of a login id nobody has (:meth:`AccessLogKeys.fingerprint`):
a failed login with an unknown id is logged as that fingerprint, never as the typed text (it may be
a password typed into the wrong field), yet the same mistyped id repeated shows as the same value.

A leaf: no database, no other module of the intake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEVELOPMENT_KEY_ID", "AccessLogKeyError", "AccessLogKeys", "development_access_log_key"]

DEVELOPMENT_KEY_ID = "dev1"


class AccessLogKeyError(ValueError):
    """The access-log key configuration is unusable (never quotes a key)."""


def development_access_log_key() -> str:
    """The public development key (base64): derived like the other development keys, refused in
    production by value (:mod:`intake.keypolicy`)."""
    return base64.b64encode(hashlib.sha256(b"shinsei-development-key:access-log").digest()).decode()


@dataclass(frozen=True)
class AccessLogKeys:
    """HMAC keys by id; ``active`` keys new rows, every id verifies old ones."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str
    development: bool = False
    #: Rows up to this id may be unkeyed (plain SHA-256): the rows written before an upgrade to keyed
    #: hashes. Set by the operator (``access_log_unkeyed_through``), outside the database, so nobody
    #: with database access alone can pass rewritten rows off as old ones. 0: no unkeyed row at all.
    unkeyed_through: int = 0

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise AccessLogKeyError("the active access-log key id is not configured")
        for kid, raw in self.keys.items():
            if not kid or len(kid) > 32 or len(raw) < 32:
                raise AccessLogKeyError(f"access-log key {kid!r}: at least 32 bytes, an id of 1-32 characters")

    @classmethod
    def from_base64(cls, keys: Mapping[str, str], active: str, *, development: bool = False,
                    unkeyed_through: int = 0) -> AccessLogKeys:
        raw: dict[str, bytes] = {}
        for kid, b64 in keys.items():
            try:
                raw[kid] = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AccessLogKeyError(f"access-log key {kid!r} is not base64") from exc
        return cls(raw, active, development, unkeyed_through)

    @classmethod
    def for_development(cls) -> AccessLogKeys:
        return cls.from_base64({DEVELOPMENT_KEY_ID: development_access_log_key()}, DEVELOPMENT_KEY_ID,
                               development=True)

    def knows(self, key_id: str) -> bool:
        return key_id in self.keys

    def mac(self, key_id: str, body: bytes) -> str:
        """HMAC-SHA-256 of ``body`` under ``key_id`` (hex); :class:`AccessLogKeyError` for an unknown id."""
        key = self.keys.get(key_id)
        if key is None:
            raise AccessLogKeyError(f"access-log key {key_id!r} is not configured")
        return hmac.new(key, body, hashlib.sha256).hexdigest()

    def fingerprint(self, purpose: str, text: str) -> str:
        """``fp:`` + 16 hex digits of an HMAC of ``text`` under the active key, for ``purpose``
        (``login``): the same text gives the same value under one key; the value reveals nothing."""
        return "fp:" + self.mac(self.active, f"{purpose}:{text}".encode())[:16]
