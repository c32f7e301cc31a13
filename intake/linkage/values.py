"""The two values linkage is about, in one canonical form each, and the day that validity is judged on."""

from __future__ import annotations

import re
from datetime import date, datetime

from intake.atena import ATENA_NUMBER_RE, is_atena_number
from intake.jst import jst_day
from intake.linkage.errors import InvalidAtenaNumber

__all__ = ["ATENA_NUMBER_RE", "SERIAL_RE", "arrival_day", "check_atena_number", "normalise_serial"]

#: A certificate serial as hex digits, as the portal's arrival record may spell it.
SERIAL_RE = re.compile(r"[0-9A-Fa-f]{1,64}", re.ASCII)


def normalise_serial(value: str) -> str | None:
    """Uppercase hex without leading zeros — the form ``signature`` gives ``user_cert_serial`` in —
    or ``None`` when ``value`` is not a hex serial."""
    if not SERIAL_RE.fullmatch(value):
        return None
    return value.upper().lstrip("0") or "0"


def check_atena_number(value: str) -> str:
    """``value`` if it is a 宛名番号, else :class:`InvalidAtenaNumber` (the message omits the value)."""
    if not is_atena_number(value):
        raise InvalidAtenaNumber("宛名番号 must be exactly 10 digits")
    return value


def arrival_day(arrived_at: datetime) -> date:
    """The calendar day (JST, the register's calendar) on which a validity period is judged."""
    return jst_day(arrived_at)
