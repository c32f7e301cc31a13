"""Alembic environment: the URL comes from the caller's Config (intake.migrate), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from intake import models  # noqa: F401 - registers the tables on Base.metadata
from intake.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Changing a column on SQLite copies its table ("batch"); with foreign keys enforced, the
            # copy's DROP TABLE fails for a table others reference. Off for the migration (it can only
            # be switched outside a transaction), and every reference checked after it: one pointing
            # nowhere fails the upgrade loudly. (pysqlite runs DDL outside a transaction, so what ran
            # stays: restore the backup the upgrade procedure takes first.)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=sqlite,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left {len(broken)} row(s) referring to nothing")
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover - we always migrate online
    raise SystemExit("offline migrations are not supported")
run_migrations_online()
