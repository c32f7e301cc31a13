"""Opaque paging cursors.

A cursor is the position *after* the last item a page returned, base64url-encoded JSON tagged with
the list it belongs to. Because positions are keys (not offsets), items that arrive later never
shift a client's place: paging has no duplicates and no gaps, and the last cursor of a poll is the
starting point of the next. Clients must treat cursors as opaque; the encoding may change.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from portal_sim.api.errors import InvalidCursor

__all__ = ["MAX_CURSOR_LENGTH", "decode_cursor", "encode_cursor"]

MAX_CURSOR_LENGTH = 512


def encode_cursor(kind: str, position: list[Any]) -> str:
    raw = json.dumps({"k": kind, "p": position}, ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, cursor: str) -> list[Any]:
    """The position in ``cursor``, or :class:`InvalidCursor` if it is not one of ours for ``kind``."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidCursor("cursor is not one this server issued") from exc
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("p"), list):
        raise InvalidCursor("cursor belongs to a different list")
    position: list[Any] = data["p"]
    return position
