"""Fail closed with one line: an unsafe or unusable setting stops a command before it does anything."""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["EXIT_CANNOT_START", "refuse"]

EXIT_CANNOT_START = 2


def refuse(message: str) -> NoReturn:
    """Print ``intake: cannot start: <message>`` on stderr and exit 2 (never a traceback)."""
    print(f"intake: cannot start: {message}", file=sys.stderr)
    raise SystemExit(EXIT_CANNOT_START)
