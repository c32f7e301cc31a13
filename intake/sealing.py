"""Where each sealed blob belongs: the one place that names the associated data of every blob.

:class:`intake.crypto.Sealer` encrypts; the label given here as associated data binds a blob to its
row, so a ciphertext copied to another row (or table) does not open. Every seal and every open of a
package, an attachment, a My Number or a TOTP secret goes through these functions, so a writer and a
reader can never disagree on a label. Raw packages, attachments and TOTP secrets use the package
key; My Numbers their own key (docs/operations.md, "Keys and rotation").
"""

from __future__ import annotations

from intake.crypto import Sealer

__all__ = [
    "open_attachment",
    "open_my_number",
    "open_package",
    "open_totp",
    "seal_attachment",
    "seal_my_number",
    "seal_package",
    "seal_totp",
]


def _package(delivery_id: int) -> bytes:
    return f"deliveries:{delivery_id}".encode()


def _attachment(attachment_id: int) -> bytes:
    return f"attachments:{attachment_id}".encode()


def _my_number(version_id: int, position: int) -> bytes:
    return f"my_numbers:{version_id}:{position}".encode()


def _totp(user_id: int) -> bytes:
    return f"staff_users:{user_id}:totp".encode()


def seal_package(sealer: Sealer, delivery_id: int, data: bytes) -> bytes:
    return sealer.seal(data, aad=_package(delivery_id))


def open_package(sealer: Sealer, delivery_id: int, blob: bytes) -> bytes:
    return sealer.open(blob, aad=_package(delivery_id))


def seal_attachment(sealer: Sealer, attachment_id: int, data: bytes) -> bytes:
    return sealer.seal(data, aad=_attachment(attachment_id))


def open_attachment(sealer: Sealer, attachment_id: int, blob: bytes) -> bytes:
    return sealer.open(blob, aad=_attachment(attachment_id))


def seal_my_number(sealer: Sealer, version_id: int, position: int, value: str) -> bytes:
    return sealer.seal(value.encode(), aad=_my_number(version_id, position))


def open_my_number(sealer: Sealer, version_id: int, position: int, blob: bytes) -> str:
    return sealer.open(blob, aad=_my_number(version_id, position)).decode()


def seal_totp(sealer: Sealer, user_id: int, secret: str) -> bytes:
    return sealer.seal(secret.encode(), aad=_totp(user_id))


def open_totp(sealer: Sealer, user_id: int, blob: bytes) -> str:
    return sealer.open(blob, aad=_totp(user_id)).decode()
