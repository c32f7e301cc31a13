"""``intake backup`` / ``intake restore``: the database (sealed blobs included) and the linkage inbox.

A backup is a directory (mode 0700) holding:

- ``database.pgdump`` (``pg_dump -Fc``) or ``database.sqlite`` (SQLite's online backup API): every
  table, so the sealed packages, attachments and My Numbers, the access log and the events;
- ``linkage-inbox/``: the 番号紐付情報 files waiting in ``ui.linkage_inbox``;
- ``manifest.json``: when, the schema revision, the SHA-256 and size of every file, and the **ids**
  of the keys the sealed blobs need — never a key. Keys are backed up apart, by their own procedure
  (docs/運用手順書.md §4), so that one stolen backup medium does not open the My Numbers.

The backup holds names and addresses in clear (the signer's 4 情報): it is 特定個人情報 — encrypted
media, access-controlled, logged.

``restore`` checks every file against the manifest, refuses when a key id the backup needs is not
configured (the blobs would never open again), refuses to overwrite a database that holds
deliveries unless ``--force``, restores, then migrates to the newest revision. Applications that
arrived after the backup are then brought back by the relay: ``python -m dmz_relay replay --since``
the backup's time (docs/operations.md "Backups and restore"); the intake's idempotency drops the
ones it has.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from intake.db import make_engine
from intake.keys import TABLES, key_counts
from intake.models import Delivery
from intake.settings import IntakeSettings

__all__ = ["run_backup", "run_restore"]

FORMAT = "shinsei-intake-backup/1"
_PG_TIMEOUT = 6 * 3600


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pg_env(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection options for pg_dump/pg_restore, the password in the environment (never argv)."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    args = ["--host", parsed.host or "localhost", "--port", str(parsed.port or 5432),
            "--username", parsed.username or "postgres", "--dbname", parsed.database or "postgres"]
    query_host = parsed.query.get("host")
    if isinstance(query_host, str):  # a Unix socket directory
        args[1] = query_host
    return args, env


def run_backup(settings: IntakeSettings, sessions: sessionmaker[Session], out: Path, *, at: datetime) -> int:
    from intake.migrate import current

    if out.exists() and any(out.iterdir()):
        print(f"NG  {out} is not empty: a backup goes into a new directory")
        return 2
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        target = out / "database.sqlite"
        source = sqlite3.connect(make_url(url).database or "")
        try:
            copy = sqlite3.connect(target)
            with copy:
                source.backup(copy)
            copy.close()
        finally:
            source.close()
        kind = "sqlite"
    else:
        target = out / "database.pgdump"
        args, env = _pg_env(url)
        done = subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), *args],  # noqa: S603,S607 - fixed tool, our arguments
                              env=env, capture_output=True, text=True, timeout=_PG_TIMEOUT, check=False)
        if done.returncode != 0:
            print(f"NG  pg_dump failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
            return 1
        kind = "postgresql"
    target.chmod(0o600)
    files: list[dict[str, Any]] = [{"path": target.name, "sha256": _sha256(target), "size": target.stat().st_size}]
    inbox = settings.ui.linkage_inbox
    if inbox is not None and inbox.is_dir():
        (out / "linkage-inbox").mkdir(mode=0o700)
        for entry in sorted(inbox.iterdir()):
            if entry.is_file() and not entry.is_symlink() and not entry.name.startswith("."):
                copied = out / "linkage-inbox" / entry.name
                shutil.copyfile(entry, copied)
                copied.chmod(0o600)
                _fsync(copied)
                files.append({"path": f"linkage-inbox/{entry.name}", "sha256": _sha256(copied),
                              "size": copied.stat().st_size})
    needed = {t.name: sorted(per) for t, per in zip(TABLES, key_counts(sessions).values(), strict=True)}
    with sessions() as session:
        deliveries = session.scalar(select(func.count()).select_from(Delivery)) or 0
    manifest = {"format": FORMAT, "created_at": at.isoformat(), "database": kind, "revision": current(url),
                "deliveries": deliveries, "files": files, "key_ids": needed,
                "keys": "not included: back them up with their own procedure"}
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    _fsync(target)
    _fsync(out / "manifest.json")
    _fsync(out)
    print(f"OK  backup of {deliveries} deliveries in {out} (created {at.isoformat()}); the keys are not in it")
    return 0


def run_restore(settings: IntakeSettings, source: Path, *, force: bool) -> int:
    from intake.keys import sealers
    from intake.migrate import upgrade

    try:
        manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"NG  {source} holds no readable manifest.json ({type(exc).__name__})")
        return 2
    if manifest.get("format") != FORMAT:
        print(f"NG  not an intake backup of format {FORMAT}")
        return 2
    for entry in manifest["files"]:
        path = source / entry["path"]
        if not path.is_file() or _sha256(path) != entry["sha256"]:
            print(f"NG  {entry['path']} is missing or differs from the manifest: the backup is damaged")
            return 1
    keys = sealers(settings)
    configured = {"my_number": set(settings.my_number_keys), "package": set(settings.package_keys)}
    missing = sorted({kid for table in TABLES for kid in manifest["key_ids"].get(table.name, [])
                      if kid not in configured[table.purpose]})
    if missing:
        print(f"NG  the backup needs key id(s) {', '.join(missing)}, which are not configured: restore the keys "
              "first (their own procedure), else the sealed data would never open again")
        return 1
    del keys
    url = settings.effective_database_url
    engine = make_engine(url)
    try:
        held = 0
        if inspect(engine).has_table("deliveries"):
            with engine.connect() as connection:
                held = connection.execute(select(func.count()).select_from(Delivery.__table__)).scalar() or 0
    finally:
        engine.dispose()
    if held and not force:
        print(f"NG  the database holds {held} deliveries: restore into an empty database (or --force to replace)")
        return 1
    if manifest["database"] == "sqlite":
        if not url.startswith("sqlite"):
            print("NG  a SQLite backup cannot be restored into PostgreSQL")
            return 2
        target = Path(make_url(url).database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(source / "database.sqlite", target)
        _fsync(target)
    else:
        if url.startswith("sqlite"):
            print("NG  a PostgreSQL backup cannot be restored into SQLite")
            return 2
        args, env = _pg_env(url)
        done = subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--exit-on-error",  # noqa: S603,S607
                               *args, str(source / "database.pgdump")],
                              env=env, capture_output=True, text=True, timeout=_PG_TIMEOUT, check=False)
        if done.returncode != 0:
            print(f"NG  pg_restore failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
            return 1
    inbox = settings.ui.linkage_inbox
    if inbox is not None and (source / "linkage-inbox").is_dir():
        inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
        for entry in sorted((source / "linkage-inbox").iterdir()):
            if not (inbox / entry.name).exists():
                shutil.copyfile(entry, inbox / entry.name)
    upgrade(url)
    print(f"OK  restored the backup of {manifest['created_at']} ({manifest['deliveries']} deliveries); "
          f"now replay from the portal: python -m dmz_relay replay --since {manifest['created_at']}")
    return 0
