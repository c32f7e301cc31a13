"""Schema migrations with Alembic, driven from code (``python -m intake db upgrade|downgrade|current|history``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from intake import models  # noqa: F401 - registers the tables on Base.metadata
from intake.db import (
    Base,
    make_engine,
)

__all__ = ["alembic_config", "current", "downgrade", "history", "pending_differences", "upgrade"]


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The database's revision (``None``: not migrated at all)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def history() -> list[str]:
    """``revision <- down_revision: message`` per revision, newest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [f"{rev.revision} <- {rev.down_revision or 'base'}: {(rev.doc or '').strip()}"
            for rev in script.walk_revisions()]


def pending_differences(engine: Engine) -> list[object]:
    """Differences between the migrated database and the models (empty: migrations are complete)."""
    with engine.connect() as connection:
        ctx = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))
