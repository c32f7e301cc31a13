"""The フリガナ search key: one spelling for what staff type and what applicants typed.

Applicants and staff write the same reading in different ways (ｶﾅ / カナ / かな, with or without a
space between 氏 and 名). Both sides go through :func:`search_key`, so a prefix of the key is a
prefix of the reading however either side typed it.
"""

from __future__ import annotations

import unicodedata

__all__ = ["search_key"]

_HIRAGANA = range(0x3041, 0x3097)  # ぁ … ゖ; the katakana block is 0x60 above
_LIMIT = 128


def search_key(text: str) -> str:
    """NFKC (half-width → full-width katakana), hiragana → katakana, no whitespace, at most 128
    characters."""
    folded = unicodedata.normalize("NFKC", text)
    out = "".join(chr(ord(c) + 0x60) if ord(c) in _HIRAGANA else c for c in folded if not c.isspace())
    return out[:_LIMIT]
