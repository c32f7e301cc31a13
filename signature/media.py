"""Media type of a file from its content, never from its name (a ``.pdf`` may be anything)."""

from __future__ import annotations

import filetype

__all__ = ["sniff_media_type"]

_BINARY = {"application/pdf", "image/jpeg", "image/png", "application/zip"}


def sniff_media_type(data: bytes) -> str:
    """``application/pdf``, ``image/jpeg``, ``image/png``, ``application/xml``, ``text/plain`` or
    ``application/octet-stream``."""
    kind = filetype.guess(data[:8192])
    if kind is not None and kind.mime in _BINARY:
        return str(kind.mime)
    head = data[:64].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<?xml") or head.startswith(b"<"):
        return "application/xml"
    if _is_text(data):
        return "text/plain"
    return "application/octet-stream"


def _is_text(data: bytes) -> bool:
    for encoding in ("utf-8", "cp932"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return all(c.isprintable() or c in "\r\n\t\f" for c in text)
    return False
