"""Search keys for a person: a name (kanji or kana), a phone number, a birth date.

Applicants, certificates and staff write the same name differently: 髙橋 (the certificate's legal
form) and 高橋 (what staff type), 𠮷田 and 吉田, full- and half-width letters, a space or none
between 氏 and 名, kana in hiragana or katakana. Both sides go through :func:`name_key`, so a
prefix of the key is a prefix of the name however either side wrote it. The fold is for *finding*
candidates, never for deciding identity: the detail page shows the names as written.

The variant table folds the 異体字 a ward meets most in names to the form staff type; it is
deliberately small (each pair is a name staff would call "the same" when searching).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date

from intake.kana import search_key as kana_key

__all__ = ["KIND_BIRTH", "KIND_NAME", "KIND_PHONE", "VARIANTS", "birth_key", "keys_for", "name_key", "phone_key"]

KIND_NAME = "name"
KIND_PHONE = "phone"
KIND_BIRTH = "birth"

#: 異体字 → the common form (searching folds both sides).
VARIANTS: dict[str, str] = {
    "髙": "高", "𠮷": "吉", "﨑": "崎", "嵜": "崎", "邊": "辺", "邉": "辺", "濵": "浜", "濱": "浜",
    "澤": "沢", "櫻": "桜", "廣": "広", "國": "国", "齋": "斎", "齊": "斉", "德": "徳", "惠": "恵",
    "眞": "真", "瀨": "瀬", "冨": "富", "槗": "橋", "栁": "柳",
}
_TABLE = str.maketrans(VARIANTS)
#: Variation selectors (IVS, U+E0100…, and U+FE00…): a glyph choice, not a different name.
_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_LIMIT = 128


def name_key(text: str) -> str:
    """NFKC (width), variation selectors dropped, 異体字 folded, hiragana → katakana, no spaces
    (:func:`intake.kana.search_key` does the last two)."""
    folded = _SELECTORS.sub("", unicodedata.normalize("NFKC", text)).translate(_TABLE)
    return kana_key(folded)[:_LIMIT]


def phone_key(text: str) -> str:
    """Digits only (full-width too); a leading ``+81`` / ``81`` country code becomes the ``0`` of the
    domestic form. Empty if fewer than 4 digits remain (too short to mean a number)."""
    digits = "".join(c for c in unicodedata.normalize("NFKC", text) if c.isdigit())
    if unicodedata.normalize("NFKC", text).lstrip().startswith("+81") and not digits.startswith("0"):
        digits = "0" + digits[2:]
    return digits[:32] if len(digits) >= 4 else ""


def birth_key(d: date) -> str:
    return d.isoformat()


def keys_for(applicant: Iterable[Sequence[str]], *, signer_names: Iterable[str | None] = (),
             birth_date: date | None = None) -> set[tuple[str, str]]:
    """The (kind, key) pairs of one applicant: the typed 氏名 and 氏名フリガナ, the certificate's
    name (and its alternative spelling), the typed 電話番号, the certificate's 生年月日."""
    keys: set[tuple[str, str]] = set()
    typed = {str(pair[0]): str(pair[1]) for pair in applicant if len(pair) == 2}
    for name in (typed.get("氏名"), typed.get("氏名フリガナ"), *signer_names):
        if name and (key := name_key(name)):
            keys.add((KIND_NAME, key))
    if (phone := phone_key(typed.get("電話番号", ""))):
        keys.add((KIND_PHONE, phone))
    if birth_date is not None:
        keys.add((KIND_BIRTH, birth_key(birth_date)))
    return keys
