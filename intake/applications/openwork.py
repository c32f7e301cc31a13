"""Open work: one definition for the dashboard and the daily mail (they show the same numbers).

Per procedure, as the rows say now:

* 未審査 (``unreviewed``): a chain in the review queue (``needs_review``) that is not final;
* 宛名番号待ち (``unlinked``): linkage UNRESOLVED or CONFLICT, not final;
* 署名検証エラー (``signature_errors``): the current version's signature did not pass, not final;
* 転送失敗 (``failed_forwards``): forwarding items FAILED (whatever the chain's status);
* 本人確認要 (``held``): versions held for a staff decision (:mod:`intake.applications.admission`),
  whatever the chain's status — they change nothing until someone decides;
* 処理期限超過 (``overdue``): :func:`intake.applications.deadlines.overdue_clause`.

"Final" is 完了・却下・取下げ (:data:`status.FINAL_STATUSES`). ``tests/intake/test_open_work.py``
checks the dashboard and the mail against each other on the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.orm import Session

from intake.applications.deadlines import overdue_clause
from intake.models import Application, ApplicationVersion, ForwardItem, ForwardState, LinkageState, VersionState
from status import FINAL_STATUSES

__all__ = ["OpenWork", "open_work"]

_FINAL = [s.value for s in FINAL_STATUSES]


@dataclass(frozen=True)
class OpenWork:
    unreviewed: int = 0
    unlinked: int = 0
    signature_errors: int = 0
    failed_forwards: int = 0
    overdue: int = 0
    held: int = 0

    @property
    def total(self) -> int:
        return self.unreviewed + self.unlinked + self.signature_errors + self.failed_forwards + self.held

    def __add__(self, other: OpenWork) -> OpenWork:
        return OpenWork(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def open_work(session: Session, *, today: date, scope: ColumnElement[bool] | None = None) -> dict[str, OpenWork]:
    """Open work per 手続ID within ``scope`` (a condition on :class:`Application`; None: every chain)."""
    where = scope if scope is not None else true()
    open_ = Application.status.not_in(_FINAL)
    by = Application.procedure_id
    chain = Application.id == ApplicationVersion.application_id
    queries = {
        "unreviewed": select(by, func.count()).where(where, Application.needs_review.is_(True), open_),
        "unlinked": select(by, func.count()).where(
            where, Application.linkage_state.in_([LinkageState.UNRESOLVED, LinkageState.CONFLICT]), open_),
        "signature_errors": select(by, func.count()).select_from(ApplicationVersion).join(Application, chain)
        .where(where, and_(ApplicationVersion.state == VersionState.CURRENT,
                           ApplicationVersion.indication != "PASSED"), open_),
        "failed_forwards": select(by, func.count()).select_from(ForwardItem)
        .join(ApplicationVersion, ApplicationVersion.id == ForwardItem.version_id).join(Application, chain)
        .where(where, ForwardItem.state == ForwardState.FAILED),
        "overdue": select(by, func.count()).where(where, overdue_clause(today)),
        "held": select(by, func.count()).select_from(ApplicationVersion).join(Application, chain)
        .where(where, ApplicationVersion.state == VersionState.HELD),
    }
    acc: dict[str, dict[str, int]] = defaultdict(dict)
    for name, query in queries.items():
        for procedure_id, n in session.execute(query.group_by(by)):
            acc[procedure_id][name] = int(n)
    return {p: OpenWork(**counts) for p, counts in acc.items()}
