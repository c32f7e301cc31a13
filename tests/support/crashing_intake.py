"""``python -m tests.support.crashing_intake serve …``: the real intake, except that the process
dies (``os._exit``) right after the first commit that stored a delivery — before any reply is
sent. Used by the crash test; nothing in the product knows about it."""

from __future__ import annotations

import os
import sys
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction

from intake.cli import main


@event.listens_for(Engine, "after_cursor_execute")
def _note_delivery(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
    # The statement, not the ORM: the delivery row is written with Core (intake.db.insert_loaded).
    if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
        conn.info["stored_delivery"] = True


@event.listens_for(Session, "after_begin")
def _note_connection(session: Session, _transaction: SessionTransaction, conn: Connection) -> None:
    session.info["connection_info"] = conn.info  # the pooled connection's dict: readable after the commit


@event.listens_for(Session, "after_commit")
def _die(session: Session) -> None:
    # after_commit fires for a savepoint's release too (store_once stores in one): only the
    # transaction's own commit makes the delivery durable.
    info = session.info.get("connection_info")
    if info is not None and info.get("stored_delivery") and not session.in_nested_transaction():
        os._exit(137)


sys.exit(main())
