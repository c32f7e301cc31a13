"""Resolve a chain's 宛名番号 from the verified user-certificate serial; never guess."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.models import Application, ApplicationVersion, LinkageDecision, LinkageEntry, LinkageState

__all__ = ["resolve_on_arrival"]


def resolve_on_arrival(session: Session, app: Application, version: ApplicationVersion, *, at: datetime) -> None:
    """Set ``app``'s 宛名番号 from the linkage entries for ``version``'s serial, if exactly one.

    Manually set numbers are kept. Two different 宛名番号 for one serial is a conflict for staff.
    """
    if app.linkage_state is LinkageState.MANUAL or version.user_cert_serial is None:
        return
    day = at.date()
    rows = session.scalars(select(LinkageEntry).where(
        LinkageEntry.cert_serial == version.user_cert_serial, LinkageEntry.active.is_(True))).all()
    numbers = {r.atena_number for r in rows
               if (r.valid_from is None or r.valid_from <= day) and (r.valid_to is None or day <= r.valid_to)}
    if len(numbers) == 1:
        state, number = LinkageState.AUTO, next(iter(numbers))
        import_id = max(r.import_id for r in rows if r.atena_number == number)
    elif len(numbers) > 1:
        state, number, import_id = LinkageState.CONFLICT, None, None
    else:
        state, number, import_id = LinkageState.UNRESOLVED, None, None
    if app.linkage_state is LinkageState.AUTO and state is LinkageState.UNRESOLVED:
        return  # a later version without a mapping keeps the chain's earlier resolution
    if (state, number) == (app.linkage_state, app.atena_number):
        return
    app.linkage_state, app.atena_number = state, number
    session.add(LinkageDecision(application_id=app.id, at=at, state=state, atena_number=number,
                                import_id=import_id, reason=f"arrival of {version.receipt_number}"))
