"""A reviewer's decision on a held version is taken on the chain as it stands when it is taken, not
as it stood when the page was loaded (found by a review of the 宛名番号 linkage on arrival, which
reads the chain's versions as loaded: issue 19)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from intake.applications.admission import Decision, Rules, _admit, decide, lock_chain
from intake.db import make_session_factory
from intake.linkage.service import evaluate_chains
from intake.models import (
    Application,
    ApplicationVersion,
    Delivery,
    LinkageDecision,
    LinkageEntry,
    LinkageImport,
    LinkageState,
    SignerIdentityRow,
    VersionState,
)
from status import Role
from tests.intake.staffdata import CATALOGUE, OWN_PROCEDURE, principal

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
FIRST = "20261125-0000000001"


def _version(s: Session, app: Application, n: int, kind: str, serial: str, *, hold: str | None = None
             ) -> ApplicationVersion:
    number = f"20261125-{n:010d}"
    delivery = Delivery(idempotency_key=f"k{n}", sha256=f"{n:064x}", size=1, receipt_number=number, package=b"",
                        received_at=T0, client_id="test")
    s.add(delivery)
    s.flush()
    version = ApplicationVersion(
        application_id=app.id, delivery_id=delivery.id, receipt_number=number, kind=kind,
        arrived_at=T0 + timedelta(minutes=n), stored_at=T0,
        state=VersionState.HELD if hold else VersionState.CURRENT, indication="TOTAL_PASSED",
        user_cert_serial=serial, form_xml="<x/>", form_file="f.xml", applicant=[], procedure_id=OWN_PROCEDURE,
        admitted_at=None if hold else T0, admitted_by=None if hold else "first", hold_reason=hold)
    s.add(version)
    s.flush()
    s.add(SignerIdentityRow(version_id=version.id, name=f"申請者{n}", sex="1", birth_date=date(1980, 1, 1),
                            address="東京都港区", cert_serial=serial, issuer="JPKI",
                            not_before=T0, not_after=T0 + timedelta(days=999)))
    return version


def test_accepting_a_version_sees_one_admitted_meanwhile_and_the_two_numbers_conflict(engine: Engine) -> None:
    """The chain: V1 admitted (serial S1, no linkage entry), V2 held waiting for revocation data
    (S2 → 宛名番号 1111111111), V3 held as another applicant's (S3 → 2222222222). A reviewer opens the
    chain and accepts V3; in between, a re-verification admits V2 and links the chain to 1111111111.
    With all three admitted the data names two numbers: CONFLICT, never the reviewer's version's
    number over the other."""
    factory = make_session_factory(engine)
    rules = Rules(routes=(), procedures=CATALOGUE)
    with factory() as s:
        app = Application(first_receipt_number=FIRST, procedure_id=OWN_PROCEDURE, procedure_name="児童手当",
                          created_at=T0, updated_at=T0)
        s.add(app)
        s.flush()
        _version(s, app, 1, "新規申請", "S1")
        v2 = _version(s, app, 2, "再申請", "S2", hold="SIGNATURE_NOT_PASSED")
        v3 = _version(s, app, 3, "補正", "S3", hold="OTHER_APPLICANT")
        imported = LinkageImport(file_sha256="1" * 64, file_name="atena.csv", mode="full", imported_at=T0, rows=2)
        s.add(imported)
        s.flush()
        s.add_all([LinkageEntry(cert_serial="S2", atena_number="1111111111", import_id=imported.id),
                   LinkageEntry(cert_serial="S3", atena_number="2222222222", import_id=imported.id)])
        s.commit()
        app_id, v2_id, v3_id = app.id, v2.id, v3.id

    with factory() as staff:
        # decide() reads the chain and its versions first (load_for); the other transaction commits
        # after that read and before the decision is applied — here, before decide() is called, in
        # the same transaction, so that the interleaving is certain rather than hoped for.
        # (held by a name, as decide() holds what it loaded: the session's identity map keeps only
        # objects something refers to)
        loaded = staff.get_one(Application, app_id)
        assert len(loaded.versions) == 3
        with factory() as other:  # the re-verification after a CRL update
            chain = other.get_one(Application, app_id)
            lock_chain(other, chain)
            _admit(other, chain, other.get_one(ApplicationVersion, v2_id), rules, at=T0 + timedelta(hours=1),
                   by="same-certificate")
            other.commit()
        decide(staff, principal(Role.REVIEWER, login="reviewer1"), rules, application_id=app_id,
               version_id=v3_id, decision=Decision.ACCEPT, reason="本人に確認済み", at=T0 + timedelta(hours=2))
        staff.commit()

    with factory() as s:
        app = s.get_one(Application, app_id)
        admitted = s.scalars(select(ApplicationVersion.user_cert_serial).where(
            ApplicationVersion.application_id == app_id, ApplicationVersion.admitted_at.is_not(None))).all()
        assert sorted(admitted) == ["S1", "S2", "S3"]
        assert evaluate_chains(s, [app_id])[app_id].state is LinkageState.CONFLICT
        assert (app.linkage_state, app.atena_number) == (LinkageState.CONFLICT, None)
        decisions = s.scalars(select(LinkageDecision.state).where(LinkageDecision.application_id == app_id)
                              .order_by(LinkageDecision.id)).all()
        assert decisions == [LinkageState.AUTO, LinkageState.CONFLICT]
        # and the chain's current version is the newest admitted one, V3 (V2 superseded)
        states = dict(s.execute(select(ApplicationVersion.receipt_number, ApplicationVersion.state)
                                .where(ApplicationVersion.application_id == app_id)).all())
        assert states == {FIRST: VersionState.SUPERSEDED, "20261125-0000000002": VersionState.SUPERSEDED,
                          "20261125-0000000003": VersionState.CURRENT}
