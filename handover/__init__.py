"""The relay↔intake hand-over contract: what crosses the DMZ besides the package itself.

Shared by :mod:`dmz_relay` (which writes it) and :mod:`intake` (which reads it), and by nothing
else; it imports nothing of ours. One type per message, versioned, owning its encoding and its size
budget (style.md 16); ``tests/test_handover.py`` pins the wire form both sides depend on.
"""

from handover.report import (
    REPORT_HEADER,
    REPORT_MAX_CHARS,
    MalwareFindings,
    RelayReport,
    RelayVerdict,
    ReportRefused,
)
from handover.status import (
    COMMENT_MAX_CHARS,
    NoticeRefused,
    OutboxRefused,
    StatusAck,
    StatusNoticeItem,
    StatusOutboxPage,
)

__all__ = [
    "COMMENT_MAX_CHARS",
    "REPORT_HEADER",
    "REPORT_MAX_CHARS",
    "MalwareFindings",
    "NoticeRefused",
    "OutboxRefused",
    "RelayReport",
    "RelayVerdict",
    "ReportRefused",
    "StatusAck",
    "StatusNoticeItem",
    "StatusOutboxPage",
]
