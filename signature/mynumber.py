"""My Number (個人番号) check digit, per the ordinance of the My Number Act (検査用数字, 施行令第8条)."""

from __future__ import annotations

from signature.errors import SignatureError

__all__ = ["check_digit", "is_valid_my_number"]


def check_digit(first_eleven: str) -> int:
    """The 12th digit for the 11 digits ``first_eleven``."""
    if len(first_eleven) != 11 or not first_eleven.isascii() or not first_eleven.isdigit():
        raise SignatureError("expected 11 ASCII digits")
    total = 0
    # n counts from the rightmost of the 11 digits; weight n+1 for n ≤ 6, n−5 for 7 ≤ n ≤ 11.
    for n, ch in enumerate(reversed(first_eleven), start=1):
        total += int(ch) * (n + 1 if n <= 6 else n - 5)
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def is_valid_my_number(value: str) -> bool:
    """True for 12 ASCII digits whose last digit is the correct check digit."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return False
    return check_digit(value[:11]) == int(value[11])
