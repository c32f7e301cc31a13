"""Database plumbing: declarative base with a naming convention, shared column types, engine and
session factory. SQLite by default, PostgreSQL in production; the suite runs on both.

Sessions are created outside data functions (one per request or job); services take
``*, session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    insert,
    inspect,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, mapped_column, sessionmaker

from intake.auditkeys import AccessLogKeys

__all__ = ["Base", "IntPK", "Str64", "UTCDateTime", "insert_loaded", "make_engine", "make_session_factory",
           "rows_inserted", "table_of"]

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


def table_of(entity: type[Base]) -> Table:
    """``entity``'s table, typed as one (``__table__`` is typed as any ``FromClause``), for the
    Core statements written outside the unit of work."""
    return cast(Table, entity.__table__)


_M = TypeVar("_M", bound=Base)
#: ``Session.info`` key: the objects :func:`insert_loaded` put in the identity map inside :func:`rows_inserted`.
_INSERTED_INFO = "shinsei.rows_inserted"
#: One prebuilt ``INSERT … RETURNING id`` per table (compiled once, from SQLAlchemy's cache after).
_INSERTS: dict[Table, Insert] = {}


def insert_loaded(session: Session, entity: type[_M], values: Mapping[str, Any]) -> _M:
    """Insert one row of ``entity`` with a Core ``INSERT … RETURNING id`` on the session's
    connection — in its transaction and savepoint, outside the unit of work — and return the ORM
    object as if it had just been loaded: persistent, unmodified, in the identity map, so callers
    read and change it like any other (a change is an ``UPDATE`` at the next flush).

    ``values`` must name every column but the id: the object is built from them, and a column left
    out would be read back on first access. Relationships are not set: assign them with
    :func:`sqlalchemy.orm.attributes.set_committed_value` where the caller knows them.

    Why (docs/decisions.md, "Core for a delivery's writes"): an ORM ``add`` + ``flush`` costs
    ~0.6 ms of CPU, this ~0.2 ms, and it leaves nothing pending for the next flush to sort through.
    """
    mapper = inspect(entity)
    missing = {attr.key for attr in mapper.column_attrs} - set(values) - {"id"}
    if missing:
        raise ValueError(f"insert_loaded({entity.__name__}) needs every column; missing: {sorted(missing)}")
    table = table_of(entity)
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = insert(table).returning(table.c.id)
    row_id = session.connection().execute(statement, dict(values)).scalar_one()
    obj = entity(**values)
    obj.id = row_id  # type: ignore[attr-defined]
    make_transient_to_detached(obj)  # its values become the loaded state: nothing to flush
    session.add(obj)
    inserted = session.info.get(_INSERTED_INFO)
    if inserted is not None:
        inserted.append(obj)
    return obj


@contextmanager
def rows_inserted(session: Session) -> Iterator[None]:
    """Around a savepoint whose rows :func:`insert_loaded` writes: if it raises, the objects of
    the rows its rollback took back leave the identity map. (A savepoint's rollback forgets only
    the objects the unit of work inserted; without this, these would stay as if their rows existed.)"""
    inserted: list[Base] = []
    outer = session.info.get(_INSERTED_INFO)
    session.info[_INSERTED_INFO] = inserted
    try:
        yield
    except BaseException:
        for obj in inserted:
            if obj in session:
                session.expunge(obj)
        raise
    finally:
        if outer is None:
            session.info.pop(_INSERTED_INFO, None)
        else:
            outer.extend(inserted)
            session.info[_INSERTED_INFO] = outer
