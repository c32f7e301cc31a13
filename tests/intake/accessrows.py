"""Test helper: access-log rows are written at commit (intake.accesslog.service), so a test that
needs their ids commits first and reads them back."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.models import AccessLogRow


def committed_ids(session: Session, count: int) -> list[int]:
    """Commit ``session`` and return the ids of its last ``count`` access-log rows, oldest first."""
    session.commit()
    ids = list(session.scalars(select(AccessLogRow.id).order_by(AccessLogRow.id.desc()).limit(count)))
    assert len(ids) == count
    return ids[::-1]
