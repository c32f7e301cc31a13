"""The linkage inbox: the folder the 住基 side drops 番号紐付情報 files into (``ui.linkage_inbox``).

Files are picked from here, never uploaded through a browser. Only plain names of regular files are
listed or read (no folder part, no hidden file, no symlink, no FIFO), each read with a cap
(:data:`MAX_FILE_BYTES`) and hashed, so that what a dry run showed is what an import takes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.authz import LINKAGE_IMPORT_ROLES, Principal
from intake.linkage.errors import (
    InboxFileMissing,
    InboxFileTooLarge,
    InboxNameRefused,
    InboxNotConfigured,
    InboxUnavailable,
)
from intake.models import LinkageImport
from intake.settings import StaffUISettings

__all__ = ["MAX_FILE_BYTES", "InboxFile", "inbox_files", "read_inbox_file", "require_importer"]

#: The largest file read (64 MiB, about 700 000 rows of ~90 bytes: above a ward's full export). A
#: fixed constant, not a setting: the whole file is held in memory for the dry run and the import.
MAX_FILE_BYTES = 64 * 1024 * 1024


def require_importer(principal: Principal) -> None:
    principal.require(LINKAGE_IMPORT_ROLES, "import linkage files")


@dataclass(frozen=True)
class InboxFile:
    """One file of the inbox. ``sha256`` is ``None`` for a file over :data:`MAX_FILE_BYTES` (not
    read); ``import_id``: the import that already took these bytes, if any."""

    name: str
    size: int
    modified_at: datetime
    sha256: str | None
    import_id: int | None

    @property
    def too_large(self) -> bool:
        return self.sha256 is None


def _inbox(settings: StaffUISettings) -> Path:
    if settings.linkage_inbox is None:
        raise InboxNotConfigured("ui.linkage_inbox is not set")
    return settings.linkage_inbox


def _plain(name: str) -> bool:
    """A bare file name: no folder part, not hidden, no control or format characters."""
    return (0 < len(name) <= 255 and not name.startswith(".") and "/" not in name and "\\" not in name
            and not any(unicodedata.category(c).startswith("C") for c in name))


def _scan(inbox: Path) -> list[os.DirEntry[str]]:
    """The inbox's eligible entries: plain names of regular files (a symlink is not one)."""
    try:
        with os.scandir(inbox) as entries:
            return [e for e in entries if _plain(e.name) and e.is_file(follow_symlinks=False)]
    except OSError as exc:
        raise InboxUnavailable("the linkage inbox cannot be listed") from exc


def _open_capped(inbox: Path, name: str) -> tuple[bytes, os.stat_result]:
    """The file's bytes (and its ``fstat``), opened relative to the inbox without following a
    symlink and refused if it is not a regular file or is over the cap."""
    try:
        folder = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise InboxUnavailable("the linkage inbox cannot be opened") from exc
    try:
        # O_NONBLOCK: a FIFO put in the file's place must not hang the request (fstat refuses it).
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError as exc:
        raise InboxFileMissing("no such file in the linkage inbox") from exc
    finally:
        os.close(folder)
    with open(fd, "rb", closefd=True) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InboxFileMissing("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise InboxFileTooLarge(info.st_size, MAX_FILE_BYTES)
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:  # grew after the fstat
        raise InboxFileTooLarge(len(data), MAX_FILE_BYTES)
    return data, info


def read_inbox_file(settings: StaffUISettings, name: str) -> bytes:
    """The bytes of the inbox file called exactly ``name`` (a name from a form), read with the cap.

    :class:`InboxNameRefused` for anything but a plain name; :class:`InboxFileMissing` for a plain
    name that is not one of :func:`inbox_files`' files. No role check: callers check first.
    """
    if not _plain(name):
        raise InboxNameRefused("not a plain file name of the linkage inbox")
    inbox = _inbox(settings)
    if not any(e.name == name for e in _scan(inbox)):
        raise InboxFileMissing("no such file in the linkage inbox")
    data, _info = _open_capped(inbox, name)
    return data


_Identity = tuple[int, int, int, int, int]  # (device, inode, size, mtime_ns, ctime_ns)
_digests: dict[_Identity, str] = {}
_digests_lock = threading.Lock()


def _identity(info: os.stat_result) -> _Identity:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _digest(inbox: Path, name: str, info: os.stat_result) -> str:
    """SHA-256 of a listed file, remembered by the file's identity so that a page view does not
    re-read an inbox of large files (only for display: a preview and a run always hash what they read)."""
    with _digests_lock:
        known = _digests.get(_identity(info))
    if known is not None:
        return known
    data, opened = _open_capped(inbox, name)
    sha = hashlib.sha256(data).hexdigest()
    with _digests_lock:
        if len(_digests) > 4096:
            _digests.clear()
        _digests[_identity(opened)] = sha
    return sha


def inbox_files(session: Session, principal: Principal, settings: StaffUISettings) -> list[InboxFile]:
    """The inbox's files, newest first, each with its SHA-256 and the import that took it, if any."""
    require_importer(principal)
    inbox = _inbox(settings)
    listed: list[tuple[str, os.stat_result, str | None]] = []
    for entry in _scan(inbox):
        try:
            info = entry.stat(follow_symlinks=False)
            sha = None if info.st_size > MAX_FILE_BYTES else _digest(inbox, entry.name, info)
        except (OSError, InboxFileMissing):
            continue  # gone or replaced by something else since the listing
        except InboxFileTooLarge:
            sha = None
        listed.append((entry.name, info, sha))
    shas = sorted({sha for _, _, sha in listed if sha})
    imported: dict[str, int] = {}
    if shas:
        imported = {sha: import_id for sha, import_id in session.execute(
            select(LinkageImport.file_sha256, LinkageImport.id).where(LinkageImport.file_sha256.in_(shas)))}
    files = [InboxFile(name, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC), sha,
                       imported.get(sha) if sha else None) for name, info, sha in listed]
    return sorted(files, key=lambda f: (-f.modified_at.timestamp(), f.name))
