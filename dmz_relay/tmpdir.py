"""The process' temp directory: private, and empty at start-up.

The relay writes no temp files (bodies are read raw into memory; the verifier and the ZIP reader
work in memory). Should any library still spool something, it lands in this private directory, not
in a shared /tmp — and the next start refuses to run until an operator has looked at it, because a
file there may hold plaintext that deleting would not erase (docs/pitfalls.md, "The relay's disk").
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from dmz_relay.errors import RelayConfigError, TempDirNotEmpty

__all__ = ["prepare_temp_dir", "temp_dir_entries"]


def temp_dir_entries(path: Path) -> list[str]:
    return sorted(os.listdir(path))


def prepare_temp_dir(path: Path, *, install: bool = True) -> Path:
    """Create ``path`` (mode 0700) or check it: a directory of ours, private, empty.

    With ``install`` (the default), make it the process' temp directory: ``tempfile.tempdir`` and
    ``TMPDIR`` (inherited by child processes). Raises :class:`TempDirNotEmpty` or
    :class:`RelayConfigError`.
    """
    path = path.absolute()
    try:
        path.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RelayConfigError(f"cannot create the temp directory {path}: {exc.strerror}") from exc
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise RelayConfigError(f"the temp directory {path} is not a directory (or is a symlink)")
    if st.st_uid != os.geteuid():
        raise RelayConfigError(f"the temp directory {path} belongs to another user")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise RelayConfigError(f"the temp directory {path} is accessible to others (mode "
                               f"{stat.S_IMODE(st.st_mode):o}); it must be 0700")
    entries = temp_dir_entries(path)
    if entries:
        raise TempDirNotEmpty(str(path), len(entries))
    if install:
        tempfile.tempdir = str(path)
        os.environ["TMPDIR"] = str(path)
    return path
