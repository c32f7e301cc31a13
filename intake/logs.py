"""The intake's process log: JSON lines, with the relay's allow-list rule (dmz_relay/logs.py).

Every record becomes one JSON object: time (UTC), level, logger, and the message **template** as
the developer wrote it (constant text). The values formatted into it (``%s`` arguments) are kept
only if they are allow-listed tokens — ASCII identifiers, numbers, digests, codes, paths without a
query string — and replaced by ``"[dropped]"`` otherwise: a name, an address, a Japanese file name, a
search term in a URL's query string or a database error text can therefore never reach the log,
whichever library logged it. Exceptions are logged by type only (a traceback quotes values; a
database error quotes the statement's parameters).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["DROPPED", "JsonFormatter", "configure_logging", "safe_value"]

DROPPED = "[dropped]"
# ASCII only: letters, digits and the punctuation of codes, digests, addresses and paths. No '?',
# '&', '%', quotes or spaces, so no query string, percent-encoded text or prose gets through.
_TOKEN = re.compile(r"[A-Za-z0-9_.:/+\-=,@#\[\]()]{0,200}")


def safe_value(value: Any) -> Any:
    """``value`` if it may be logged, else :data:`DROPPED`."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and _TOKEN.fullmatch(value):
        return value
    if isinstance(value, list | tuple) and len(value) <= 20:
        return [safe_value(v) for v in value]
    return DROPPED


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": str(record.msg) if isinstance(record.msg, str) else DROPPED,
        }
        args = record.args
        if isinstance(args, tuple) and args:
            out["args"] = [safe_value(a) for a in args]
        elif isinstance(args, dict) and args:
            out["args"] = {str(k): safe_value(v) for k, v in args.items()}
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False)


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send every record of the process (uvicorn's included) as JSON lines to ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return handler
