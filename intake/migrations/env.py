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
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover - we always migrate online
    raise SystemExit("offline migrations are not supported")
run_migrations_online()
