"""A staff member whose login is as long as a login may be (64) accepts a held version: the version
records ``staff:<login>`` as who admitted it (on PostgreSQL a ``VARCHAR(64)`` refused that, and the
acceptance failed, for any login of 59 characters or more — migration 0012)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.applications.admission import Decision, HoldReason, Rules, decide
from intake.models import ApplicationVersion
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from status import Role
from tests.conftest import PackageFactory, World
from tests.intake.staffdata import deliver, principal

LOGIN = "k" * 64  # admin.py: login ids are 3-64 of a-z 0-9 . _ -


def test_a_64_character_login_accepts_a_held_version(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec, world: World,
) -> None:
    deliver(session, runtime, make_package(spec=spec))
    other = world.pki.issue_signer(world.residents[1])  # another resident signs the chain's 再申請: held
    later = replace(spec, receipt_number="20261125-0000000002", kind="再申請", first_receipt_number=spec.receipt_number,
                    user_cert_serial=format(other.cert.serial_number, "X"),
                    arrived_at=spec.arrived_at + timedelta(minutes=5))
    deliver(session, runtime, make_package(spec=later, signer=other))
    held = session.scalar(select(ApplicationVersion).where(ApplicationVersion.receipt_number == later.receipt_number))
    assert held is not None
    assert held.hold_reason == HoldReason.OTHER_APPLICANT
    decide(session, principal(Role.REVIEWER, login=LOGIN), Rules(runtime.routes, runtime.procedures),
           application_id=held.application_id, version_id=held.id, decision=Decision.ACCEPT,
           reason="改姓を戸籍で確認", at=runtime.clock())
    session.commit()
    session.expire_all()
    assert (held.admitted_by, held.decided_by) == (f"staff:{LOGIN}", LOGIN)
