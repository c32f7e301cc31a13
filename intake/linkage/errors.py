"""Exceptions of the linkage package. Messages name line numbers and columns, never values.

::

    IntakeError
    ├── InvalidRequest
    │   ├── InvalidAtenaNumber        a 宛名番号 that is not in the register's format
    │   ├── ReasonRequired            (the shared class) a manual setting without a 処理事由
    │   └── LinkageFileRejected       a 番号紐付情報 file with broken lines (``problems``)
    │   ├── InboxNotConfigured        ui.linkage_inbox is not set
    │   ├── InboxUnavailable          the inbox folder cannot be listed
    │   ├── InboxNameRefused          not a plain file name (traversal, slash, NUL, hidden, control chars)
    │   └── InboxFileTooLarge         larger than the cap (``size``, ``limit``)
    ├── AccessDenied
    │   └── LinkagePermissionDenied   the actor lacks SET_ATENA_PERMISSION (cause: permission)
    ├── NotFound
    │   └── InboxFileMissing          a plain name that is not (or no longer) a file of the inbox
    └── Conflict
        ├── FileChangedSincePreview   the file's bytes hash differently from the preview's
        └── ImportAlreadyRunning      another import is running in this process (``job_id``)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from intake.errors import AccessDenied, Conflict, Denial, InvalidRequest, NotFound

__all__ = [
    "FileChangedSincePreview",
    "ImportAlreadyRunning",
    "InboxFileMissing",
    "InboxFileTooLarge",
    "InboxNameRefused",
    "InboxNotConfigured",
    "InboxUnavailable",
    "InvalidAtenaNumber",
    "LineProblem",
    "LinkageFileRejected",
    "LinkagePermissionDenied",
    "by_line",
]


class InvalidAtenaNumber(InvalidRequest):
    code = "INVALID_ATENA_NUMBER"


class LinkagePermissionDenied(AccessDenied):
    """The actor lacks :data:`intake.authz.SET_ATENA_PERMISSION`."""

    def __init__(self) -> None:
        super().__init__("the permission to set 宛名番号 is required", cause=Denial.PERMISSION,
                         code="LINKAGE_PERMISSION_DENIED")


@dataclass(frozen=True)
class LineProblem:
    """One broken line of a linkage file. ``line`` counts from 1 (the header is line 1; 0 means
    the file as a whole). ``column`` is a header name, ``reason`` a fixed English phrase: neither
    ever contains a value from the file."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = "file" if self.line == 0 else f"line {self.line}"
        return f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"


def by_line(problems: Iterable[LineProblem]) -> tuple[LineProblem, ...]:
    """Without repeats, ordered by line; within a line in the order found (column order)."""
    return tuple(sorted(dict.fromkeys(problems), key=lambda p: p.line))


class LinkageFileRejected(InvalidRequest):
    """The file was not imported at all; ``problems`` lists every broken line."""

    code = "LINKAGE_FILE_REJECTED"

    def __init__(self, problems: tuple[LineProblem, ...]) -> None:
        self.problems = by_line(problems)
        lines = sorted({p.line for p in self.problems})
        shown = ", ".join(map(str, lines[:20])) + (", …" if len(lines) > 20 else "")
        super().__init__(f"linkage file rejected: {len(self.problems)} problem(s) on line(s) {shown}")


class InboxNotConfigured(InvalidRequest):
    code = "LINKAGE_INBOX_NOT_CONFIGURED"


class InboxUnavailable(InvalidRequest):
    code = "LINKAGE_INBOX_UNAVAILABLE"


class InboxNameRefused(InvalidRequest):
    code = "LINKAGE_INBOX_NAME_REFUSED"


class InboxFileTooLarge(InvalidRequest):
    code = "LINKAGE_FILE_TOO_LARGE"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the file has {size} bytes; at most {limit} are read")
        self.size = size
        self.limit = limit


class InboxFileMissing(NotFound):
    code = "LINKAGE_FILE_MISSING"


class FileChangedSincePreview(Conflict):
    code = "LINKAGE_FILE_CHANGED"


class ImportAlreadyRunning(Conflict):
    code = "LINKAGE_IMPORT_RUNNING"

    def __init__(self, job_id: int) -> None:
        super().__init__(f"linkage import job {job_id} is running")
        self.job_id = job_id
