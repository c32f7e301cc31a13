"""``dmz_relay backup`` / ``restore``: the relay's state — ``tombstones.db`` (tombstones, pull cursor).

It holds no personal data (docs/relay.md, "Erasure and what is on disk"), so the backup needs no
special custody. SQLite's online backup API copies it consistently while the relay runs. A restore
puts the file back with the relay **stopped**; the pull channel then resumes from the saved cursor,
and anything after it is fetched again (the intake's idempotency drops repeats).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from dmz_relay.settings import RelaySettings

__all__ = ["backup_state", "restore_state"]


def backup_state(settings: RelaySettings, out: Path) -> int:
    source_path = settings.tombstone_path
    if not source_path.exists():
        print(f"NG  no state at {source_path}")
        return 2
    if out.exists():
        print(f"NG  {out} exists: a backup is written to a new file")
        return 2
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(out)
        with target:
            source.backup(target)
        target.close()
    finally:
        source.close()
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    print(f"OK  relay state backed up to {out}")
    return 0


def restore_state(settings: RelaySettings, file: Path, *, force: bool) -> int:
    try:
        with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as check:
            check.execute("SELECT count(*) FROM tombstones").fetchone()
    except sqlite3.Error:
        print(f"NG  {file} is not a relay state backup")
        return 2
    target = settings.tombstone_path
    if target.exists() and not force:
        print(f"NG  {target} exists: stop the relay and pass --force to replace it")
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    temp = target.with_name(target.name + ".restore")
    shutil.copyfile(file, temp)
    os.replace(temp, target)
    print(f"OK  relay state restored to {target}")
    return 0
