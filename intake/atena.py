"""宛名番号: the ward's number for a person (the resident register's key), in its one form.

Its own module because three owners need the form and must not import each other: linkage (the
番号紐付情報 import and staff linking), the access log (whose 宛名番号 column holds a 宛名番号 and
nothing else: not a My Number typed into a search box) and the staff searches.
"""

from __future__ import annotations

import re

__all__ = ["ATENA_NUMBER_RE", "is_atena_number"]

#: 宛名番号 as the resident register exports it (and portal_sim generates it): exactly 10 digits.
ATENA_NUMBER_RE = re.compile(r"[0-9]{10}", re.ASCII)


def is_atena_number(value: object) -> bool:
    return isinstance(value, str) and ATENA_NUMBER_RE.fullmatch(value) is not None
