"""Durable file publication: temp file → write → fsync → ``os.replace`` → fsync the directory.

The one implementation for every file the intake hands to someone else (business-system drop
folders, ``.eml`` mail files). An fsync error is not retryable in place (pitfalls.md): the caller
treats the write as failed and, where it matters, retries the whole publication later.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["publish_file"]


def publish_file(directory: Path, name: str, data: bytes, *, mode: int) -> Path:
    """Write ``data`` as ``directory/name`` atomically and durably; raise :class:`OSError` on failure.

    If the directory cannot be synced after the rename, the published file is removed again, so a
    failure never leaves a file whose durability is unknown.
    """
    final = directory / name
    tmp = directory / f".{name}.{secrets.token_hex(8)}.tmp"
    published = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        published = True
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if published:
            with contextlib.suppress(OSError):
                final.unlink(missing_ok=True)
        raise
    return final
