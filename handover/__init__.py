"""The relay↔intake hand-over contract: what crosses the DMZ besides the package itself.

Shared by :mod:`dmz_relay` (which writes it) and :mod:`intake` (which reads it), and by nothing
else; it imports nothing of ours. One type per message, versioned, owning its encoding and its size
budget (style.md 16); ``tests/test_handover.py`` pins the wire form both sides depend on.
"""

from handover.crls import (
    CRL_DEFAULT_MAX_BYTES,
    CRL_MEDIA_TYPE,
    CRL_NAME_PATTERN,
    CRL_REFUSALS,
    CRL_REFUSED_STATUS,
    CrlAnswerKind,
    CrlReceipt,
    classify_crl_answer,
    crl_file_name,
    crl_path,
)
from handover.refusals import PACKAGE_REFUSALS, PACKAGE_REFUSED_STATUS, AnswerKind, classify
from handover.report import (
    REPORT_HEADER,
    REPORT_MAX_CHARS,
    MalwareFindings,
    RelayReport,
    RelayVerdict,
    ReportRefused,
)
from handover.setaside import SetAsideBatch, SetAsideNotice
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
    "CRL_DEFAULT_MAX_BYTES",
    "CRL_MEDIA_TYPE",
    "CRL_NAME_PATTERN",
    "CRL_REFUSALS",
    "CRL_REFUSED_STATUS",
    "PACKAGE_REFUSALS",
    "PACKAGE_REFUSED_STATUS",
    "REPORT_HEADER",
    "REPORT_MAX_CHARS",
    "AnswerKind",
    "CrlAnswerKind",
    "CrlReceipt",
    "MalwareFindings",
    "NoticeRefused",
    "OutboxRefused",
    "RelayReport",
    "RelayVerdict",
    "ReportRefused",
    "SetAsideBatch",
    "SetAsideNotice",
    "StatusAck",
    "StatusNoticeItem",
    "StatusOutboxPage",
    "classify",
    "classify_crl_answer",
    "crl_file_name",
    "crl_path",
]
