"""Database plumbing: declarative base with a naming convention, shared column types, engine and
session factory. SQLite by default, PostgreSQL in production; the suite runs on both.

Sessions are created outside data functions (one per request or job); services take
``*, session`` and never commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, String, TypeDecorator, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, mapped_column, sessionmaker

from intake.auditkeys import AccessLogKeys

__all__ = ["Base", "IntPK", "Str64", "UTCDateTime", "make_engine", "make_session_factory"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
IntPK = Annotated[int, mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)]
Str64 = Annotated[str, mapped_column(String(64))]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings this application relies on. ``hide_parameters``: a database error's
    text never carries the statement's values (a form, a name) into a log line or a traceback."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True,
                               **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")  # durable commits (pitfalls.md)
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)


#: ``Session.info`` key of the access log's keys (read by :func:`intake.accesslog.service.access_log_keys`).
ACCESS_LOG_KEYS_INFO = "shinsei.access_log_keys"


def make_session_factory(engine: Engine, *, access_log_keys: AccessLogKeys | None = None) -> sessionmaker[Any]:
    """Sessions that write and check the access log with ``access_log_keys`` (the settings'
    :meth:`~intake.settings.IntakeSettings.access_log_keyring`; every command of ``python -m intake``
    passes them). Without keys: the public development key, for tests and tools only."""
    keys = access_log_keys or AccessLogKeys.for_development()
    return sessionmaker(engine, expire_on_commit=False, info={ACCESS_LOG_KEYS_INFO: keys})
