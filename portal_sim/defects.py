"""How packages are spoiled on purpose, each so that exactly one check catches it.

* ``bad_signature`` — bytes changed after the applicant signed. Two variants, alternating:
  an attachment (or, without attachments, the form) changed in transit after the portal received
  it → the reference digest fails (FAILED / HASH_FAILURE); or the ``SignatureValue`` corrupted
  before the portal computed its 構成情報ダイジェスト, so the portal's 到達情報 still matches
  ``kousei.xml`` and only the applicant's signature fails (FAILED / SIG_CRYPTO_FAILURE).
* ``revoked_certificate`` — chosen when planning (:mod:`portal_sim.stream`): the package is
  signed correctly with a card that the CRL lists as revoked before the arrival.
* ``eicar_attachment`` — the EICAR test file as an extra plain-text attachment, listed in the
  manifest and correctly signed: only a malware scan can catch it.
* ``malformed_zip`` — the ZIP cut off after two thirds: the central directory is gone.
"""

from __future__ import annotations

import base64
import re

from portal_sim.attachments import EICAR
from signature.testing.builder import Attachment

__all__ = [
    "EICAR_ATTACHMENT",
    "corrupt_signature_value",
    "flip_byte",
    "flip_text_digit",
    "truncate_zip",
]

#: The extra attachment of an ``eicar_attachment`` package.
EICAR_ATTACHMENT = Attachment("補足資料", "補足資料.txt", EICAR)

_SIGNATURE_VALUE = re.compile(rb"(<ds:SignatureValue>)([^<]+)(</ds:SignatureValue>)")


def flip_byte(data: bytes) -> bytes:
    """``data`` with one bit of its middle byte flipped (for XML: a digit or letter stays printable
    ASCII — the low bit of '0'..'9' and 'A'..'z' only moves to a neighbour)."""
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def flip_text_digit(xml: bytes) -> bytes:
    """The form with the first digit inside the ``様式バージョン`` element changed (still well-formed)."""
    marker = "<様式バージョン>".encode()
    i = xml.index(marker) + len(marker) + 3  # "0001" → "0000"
    return xml[:i] + bytes([xml[i] ^ 0x01]) + xml[i + 1 :]


def corrupt_signature_value(kousei: bytes) -> bytes:
    """``kousei.xml`` with one bit of the decoded SignatureValue flipped (still valid base64)."""
    match = _SIGNATURE_VALUE.search(kousei)
    if match is None:
        raise ValueError("kousei.xml has no ds:SignatureValue")
    raw = bytearray(base64.b64decode(b"".join(match.group(2).split())))
    raw[len(raw) // 2] ^= 0x01
    return kousei[: match.start(2)] + base64.b64encode(bytes(raw)) + kousei[match.end(2) :]


def truncate_zip(data: bytes) -> bytes:
    """The first two thirds of a ZIP: the local headers survive, the central directory does not."""
    return data[: len(data) * 2 // 3]
