"""Structured JSON logs with an allow-list of fields and of values: nothing personal reaches a line.

Every relay log line is an *event* with named fields; :func:`event` refuses a field that is not in
:data:`ALLOWED_FIELDS` (a programming error, caught by the tests). Values are allow-listed tokens:
numbers, booleans, and short one-line strings of printable ASCII (identifiers, 受付番号, digests,
URLs and paths, fixed English texts); the ``status`` field takes only the portal's status
vocabulary. Anything else — a name, a Japanese file name, free text of any script — is not logged:
the value is replaced by ``[dropped]``. Other libraries' records (uvicorn, httpx, signature's CRL
warnings) pass the same test on their message: a message with anything but those characters is
written as ``[dropped]`` too. So a file name from a package (which can hold a resident's name), a
certificate subject or package content cannot reach a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["ALLOWED_FIELDS", "DROPPED", "JsonFormatter", "configure_logging", "event", "safe_text"]

#: The only fields a relay event may carry.
ALLOWED_FIELDS = frozenset({
    "receipt_number",  # 受付番号
    "sha256",  # of the package
    "channel",  # push | pull
    "outcome",
    "reason_code",
    "duration_ms",
    "attempts",
    "http_status",
    "intake_code",
    "portal_code",
    "count",
    "infected",  # how many files clamd flagged (never their names)
    "signatures",  # clamd signature names, e.g. "Eicar-Test-Signature"
    "notice_id",
    "status",  # a portal status value (到達 … 取下げ): a fixed vocabulary
    "retry_after",
    "stage",
    "check",
    "ok",
    "detail",  # fixed English text written by the relay, never data from a package
})

#: Printable ASCII only, one line: ``\w`` would let kanji and kana through.
_SAFE_STRING = re.compile(r"[\x20-\x7e]{0,300}")
#: The portal's status vocabulary (docs/portal-api.md): the only non-ASCII values a line may hold.
STATUS_VALUES = frozenset({"到達", "受付", "審査中", "補正依頼", "完了", "却下", "取下げ"})
DROPPED = "[dropped]"
_log = logging.getLogger("dmz_relay")


def safe_text(value: str) -> str:
    """``value`` if it is an allow-listed token, else :data:`DROPPED`."""
    return value if _SAFE_STRING.fullmatch(value) else DROPPED


def _checked(name: str, value: Any) -> Any:
    if name not in ALLOWED_FIELDS:
        raise ValueError(f"log field {name!r} is not allowed (dmz_relay.logs.ALLOWED_FIELDS)")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if name == "status":
            return value if value in STATUS_VALUES else DROPPED
        return safe_text(value)
    if isinstance(value, list | tuple):
        return [_checked(name, v) for v in value]
    return DROPPED


def event(name: str, *, level: int = logging.INFO, logger: logging.Logger | None = None, **fields: Any) -> None:
    """Log the event ``name`` with allow-listed ``fields``."""
    checked = {k: _checked(k, v) for k, v in fields.items()}
    (logger or _log).log(level, name, extra={"relay_fields": checked})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, event/message and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "relay_fields", None)
        if fields is not None:
            out["event"] = record.msg
            out.update(fields)
        else:
            out["message"] = safe_text(record.getMessage())
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: a traceback's values could quote package content.
            out["exception"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False)


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send every log record of the process as JSON lines to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO; URLs hold 受付番号 only, but keep the noise down.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return handler
