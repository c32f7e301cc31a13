"""``python -m tests.support.crashing_intake serve …``: the real intake, except that the process
dies (``os._exit``) right after the first commit that stored a delivery — before any reply is
sent. Used by the crash test; nothing in the product knows about it."""

from __future__ import annotations

import os
import sys

from sqlalchemy import event
from sqlalchemy.orm import Session

from intake.cli import main
from intake.models import Delivery


@event.listens_for(Session, "after_flush")
def _note_delivery(session: Session, _context: object) -> None:
    if any(isinstance(obj, Delivery) for obj in session.new):
        session.info["stored_delivery"] = True


@event.listens_for(Session, "after_commit")
def _die(session: Session) -> None:
    # after_commit fires for a savepoint's release too (store_once stores in one): only the
    # transaction's own commit makes the delivery durable.
    if session.info.get("stored_delivery") and not session.in_nested_transaction():
        os._exit(137)


sys.exit(main())
