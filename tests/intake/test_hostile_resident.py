"""Another resident cannot touch your application (issue 15, item 1): over the real HTTP API, with
real signed packages, on SQLite and PostgreSQL.

Resident A applies; resident B — a valid card of their own, a forged signature, a signature whose
revocation status nobody can tell yet, another procedure — sends 取下げ, 補正 and 再申請 naming A's
初回受付番号. A's chain stays exactly as it was: status, current version, 宛名番号, forwarding, portal
notices. B's versions are kept and shown as 「本人確認要」 with the reason. A's own later versions —
the same card, a renewed card, a card after a move — are admitted as before; a namesake born the
same day is told apart by the 番号紐付情報. Staff accept one held version and reject another, both
access-logged; a hold that waits for a fact cannot be accepted.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from intake.api import create_app
from intake.applications.admission import Decision, HoldReason, Rules, decide
from intake.db import make_session_factory
from intake.deliveries.service import expected_key
from intake.errors import IllegalStateChange, ReasonRequired
from intake.forwarding.routes import Route
from intake.models import (
    AccessLogRow,
    ApplicantKey,
    Application,
    ApplicationState,
    ApplicationVersion,
    Event,
    ForwardItem,
    LinkageEntry,
    LinkageImport,
    LinkageState,
    StatusNotice,
    VersionState,
)
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from signature.testing.pki import Issued, Resident
from status import Role
from tests.conftest import NOW, PackageFactory, World
from tests.intake.conftest import Clock
from tests.intake.staffdata import CATALOGUE, OTHER_PROCEDURE, principal
from tests.support.servers import serve_in_thread

A_SERIAL, B_SERIAL, A_RENEWED_SERIAL, NAMESAKE_SERIAL = "1A2B3C4D5E6F", "B0B0B0B0B0B0", "1A2B3C4D5E70", "C0C0C0C0C0C0"
FIRST = "20261125-0000000001"
REVIEWER = principal(Role.REVIEWER, login="reviewer1")


@dataclass
class Ward:
    url: str
    sessions: object
    engine: Engine
    runtime: Runtime
    a: Issued
    b: Issued

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/api/v1/deliveries", content=body, timeout=60,
                          headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})

    def session(self) -> Session:
        return make_session_factory(self.engine)()


@pytest.fixture
def ward(engine: Engine, runtime: Runtime, world: World, clock: Clock, tmp_path: object) -> Iterator[Ward]:
    # Two days on: CRLs valid at A's arrival (NOW - 30 min) have expired by a later arrival.
    clock.now = NOW + timedelta(days=2, hours=1)
    route = Route("kodomo-system", frozenset({"KOSODATE-JIDOTEATE-NINTEI"}), "file", "/nonexistent-outbox")
    rt = replace(runtime, procedures=CATALOGUE, routes=(route,))
    b = world.pki.issue_signer(world.residents[2])
    with serve_in_thread(create_app(rt, make_session_factory(engine))) as url:
        yield Ward(url, None, engine, rt, world.signer, b)


def spec_of(base: ApplicationSpec, n: int, kind: str, *, serial: str, minutes: int, **changes: object
            ) -> ApplicationSpec:
    return replace(base, receipt_number=f"20261125-{n:010d}", kind=kind, first_receipt_number=FIRST,
                   user_cert_serial=serial, arrived_at=base.arrived_at + timedelta(minutes=minutes),
                   **changes)  # type: ignore[arg-type]


def forged(body: bytes, form_file: str) -> bytes:
    """The form changed after signing: the signature no longer covers it (FAILED / HASH_FAILURE)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(body)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(form_file):
                data = data.replace("<備考/>".encode(), "<備考>口座を変更</備考>".encode(), 1)
                assert data != src.read(info)
            dst.writestr(info, data)
    return out.getvalue()


def chain(s: Session) -> Application:
    app = s.scalar(select(Application).where(Application.first_receipt_number == FIRST))
    assert app is not None
    return app


def version_or_none(s: Session, receipt: str) -> ApplicationVersion | None:
    return s.scalar(select(ApplicationVersion).where(ApplicationVersion.receipt_number == receipt))


def version(s: Session, receipt: str) -> ApplicationVersion:
    v = s.scalar(select(ApplicationVersion).where(ApplicationVersion.receipt_number == receipt))
    assert v is not None
    return v


def link(s: Session, *pairs: tuple[str, str]) -> None:
    imp = LinkageImport(file_sha256="0" * 64, file_name="test.csv", mode="full", imported_at=NOW, rows=len(pairs))
    s.add(imp)
    s.flush()
    for serial, atena in pairs:
        s.add(LinkageEntry(cert_serial=serial, atena_number=atena, valid_from=date(2020, 1, 1), valid_to=None,
                           import_id=imp.id))
    s.commit()


def snapshot(s: Session) -> tuple[object, ...]:
    app = chain(s)
    current = [v.receipt_number for v in app.versions if v.state is VersionState.CURRENT]
    # ...and how staff find it: a held version's signer (another name) must not make A's chain findable.
    keys = sorted(s.execute(select(ApplicantKey.kind, ApplicantKey.key).where(ApplicantKey.application_id == app.id)))
    return (app.status, app.state, current, app.atena_number, app.linkage_state,
            s.scalar(select(func.count()).select_from(StatusNotice)),
            sorted(s.scalars(select(ForwardItem.idempotency_key))), app.applicant_kana, keys, app.due_on)


def test_another_resident_changes_nothing_and_staff_decide(
    ward: Ward, world: World, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    with ward.session() as s:
        link(s, (A_SERIAL, "0000000001"), (B_SERIAL, "0000000002"))
    assert ward.post(make_package()).status_code == 201
    with ward.session() as s:
        before = snapshot(s)
        assert before[2] == [FIRST]
        assert before[3:5] == ("0000000001", LinkageState.AUTO)
        assert before[6] == [f"{FIRST}:kodomo-system"]
        assert {kind for kind, _key in before[8]} >= {"name", "birth"}  # A's chain is findable by A
        assert version(s, FIRST).admitted_by == "first-application"

    b_withdraw = spec_of(spec, 2, "取下げ", serial=B_SERIAL, minutes=5)
    b_forged = spec_of(spec, 3, "補正", serial=B_SERIAL, minutes=6)
    b_failed = spec_of(spec, 7, "補正", serial=B_SERIAL, minutes=6)
    b_unknown = spec_of(spec, 4, "再申請", serial=B_SERIAL, minutes=60 * 48)  # after the CRLs' nextUpdate
    b_other = spec_of(spec, 5, "再申請", serial=B_SERIAL, minutes=7, procedure_id=OTHER_PROCEDURE,
                      procedure_name="戸籍証明書の請求")
    a_other = spec_of(spec, 6, "再申請", serial=A_SERIAL, minutes=8, procedure_id=OTHER_PROCEDURE,
                      procedure_name="戸籍証明書の請求")
    # A certificate issued after the 到達日時 it claims to have signed before: FAILED / NOT_YET_VALID.
    later_card = world.pki.issue_signer(world.residents[2], not_before=NOW + timedelta(days=1))
    for body in (make_package(spec=b_withdraw, signer=ward.b),
                 forged(make_package(spec=b_forged, signer=ward.b), spec.form_file),
                 make_package(spec=b_failed, signer=later_card),
                 make_package(spec=b_unknown, signer=ward.b),
                 make_package(spec=b_other, signer=ward.b),
                 make_package(spec=a_other)):
        assert ward.post(body).status_code == 201

    with ward.session() as s:
        assert snapshot(s) == before  # nothing of A's chain moved: status, state, current, link, notices, forwarding
        held = {v.receipt_number: (v.state, v.indication, v.hold_reason) for v in chain(s).versions
                if v.receipt_number != FIRST}
        assert held == {
            b_withdraw.receipt_number: (VersionState.HELD, "PASSED", HoldReason.OTHER_APPLICANT),
            b_failed.receipt_number: (VersionState.HELD, "FAILED", HoldReason.SIGNATURE_NOT_PASSED),
            b_unknown.receipt_number: (VersionState.HELD, "INDETERMINATE", HoldReason.SIGNATURE_NOT_PASSED),
            b_other.receipt_number: (VersionState.HELD, "PASSED", HoldReason.OTHER_PROCEDURE),
            a_other.receipt_number: (VersionState.HELD, "PASSED", HoldReason.OTHER_PROCEDURE),
        }
        assert all(v.admitted_at is None for v in chain(s).versions if v.receipt_number != FIRST)
        # The forged package's contents cannot be trusted at all: stored as evidence, no version.
        assert version_or_none(s, b_forged.receipt_number) is None
        held_events = s.scalars(select(Event.receipt_number).where(Event.kind == "version.held"))
        assert sorted(held_events) == sorted(held)
        assert chain(s).needs_review  # staff are asked to look

    # Staff: B's FAILED 補正 waits for nothing a person can confirm — it can only be rejected.
    rules = Rules(ward.runtime.routes, ward.runtime.procedures)
    with ward.session() as s:
        app_id = chain(s).id
        forged_id, withdraw_id = version(s, b_failed.receipt_number).id, version(s, b_withdraw.receipt_number).id
        with pytest.raises(IllegalStateChange):
            decide(s, REVIEWER, rules, application_id=app_id, version_id=forged_id, decision=Decision.ACCEPT,
                   reason="本人に確認済み", at=ward.runtime.clock())
        with pytest.raises(ReasonRequired):
            decide(s, REVIEWER, rules, application_id=app_id, version_id=forged_id, decision=Decision.REJECT,
                   reason="  ", at=ward.runtime.clock())
        s.rollback()
        decide(s, REVIEWER, rules, application_id=app_id, version_id=forged_id, decision=Decision.REJECT,
               reason="署名が不正", at=ward.runtime.clock())
        s.commit()
    with ward.session() as s:
        assert snapshot(s) == before
        assert version(s, b_failed.receipt_number).state is VersionState.REJECTED
        # The reviewer established that the 取下げ's signer is the applicant after all (e.g. a name
        # change): accepting it takes effect as on arrival — withdrawn, a portal notice, no forwarding.
        decide(s, REVIEWER, rules, application_id=app_id, version_id=withdraw_id, decision=Decision.ACCEPT,
               reason="改姓を戸籍で確認", at=ward.runtime.clock())
        s.commit()
    with ward.session() as s:
        app = chain(s)
        accepted = version(s, b_withdraw.receipt_number)
        assert (accepted.state, accepted.admitted_by) == (VersionState.CURRENT, "staff:reviewer1")
        assert (app.state, app.status) == (ApplicationState.WITHDRAWN, "取下げ")
        assert s.scalar(select(func.count()).select_from(StatusNotice)) == 1
        actions = list(s.execute(select(AccessLogRow.action, AccessLogRow.staff_id, AccessLogRow.reason)
                                 .where(AccessLogRow.action.like("version.%")).order_by(AccessLogRow.id)))
        assert actions == [("version.reject", "reviewer1", "署名が不正"),
                           ("version.accept", "reviewer1", "改姓を戸籍で確認")]
        # Accepted, B's serial now speaks for the chain: the linkage data gives it another 宛名番号,
        # so the chain is a conflict for staff — never silently relinked to B's number.
        assert (app.atena_number, app.linkage_state) == (None, LinkageState.CONFLICT)


def renewed(world: World, resident: Resident, **changes: object) -> Issued:
    return world.pki.issue_signer(replace(resident, **changes))  # type: ignore[arg-type]


def test_the_applicant_own_versions_are_admitted(
    ward: Ward, world: World, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """Same card; a renewed card after a move (new serial, new 住所); each admitted by its rule."""
    assert ward.post(make_package()).status_code == 201
    moved = renewed(world, world.residents[0], address="東京都港区芝公園四丁目2番8号")
    same_card = spec_of(spec, 2, "補正", serial=A_SERIAL, minutes=5)
    new_card = spec_of(spec, 3, "再申請", serial=A_RENEWED_SERIAL, minutes=9)
    assert ward.post(make_package(spec=same_card)).status_code == 201
    assert ward.post(make_package(spec=new_card, signer=moved)).status_code == 201
    with ward.session() as s:
        assert version(s, same_card.receipt_number).admitted_by == "same-certificate"
        newest = version(s, new_card.receipt_number)
        assert (newest.admitted_by, newest.state) == ("same-basic-info", VersionState.CURRENT)
        keys = sorted(s.scalars(select(ForwardItem.idempotency_key)))
        assert keys == sorted(f"{r}:kodomo-system" for r in (FIRST, same_card.receipt_number,
                                                             new_card.receipt_number))


def test_a_namesake_born_the_same_day_is_told_apart_by_the_linkage_data(
    ward: Ward, world: World, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """Same 氏名, 生年月日 and 性別, another person: the 番号紐付情報 gives the two serials different
    宛名番号, and that decides — held. Without linkage data the 基本4情報 rule would admit it (the
    rule's documented limit), so the test shows the linkage is what tells them apart."""
    with ward.session() as s:
        link(s, (A_SERIAL, "0000000001"), (NAMESAKE_SERIAL, "0000000009"))
    assert ward.post(make_package()).status_code == 201
    namesake = renewed(world, world.residents[0], address="大阪府大阪市北区中之島1-3-20")
    other = spec_of(spec, 2, "取下げ", serial=NAMESAKE_SERIAL, minutes=5)
    assert ward.post(make_package(spec=other, signer=namesake)).status_code == 201
    with ward.session() as s:
        held = version(s, other.receipt_number)
        assert (held.state, held.hold_reason) == (VersionState.HELD, HoldReason.OTHER_APPLICANT)
        assert chain(s).state is ApplicationState.OPEN


def test_a_version_before_its_first_application_waits_for_it(
    ward: Ward, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """A 補正 that overtakes its 新規申請 is held until the first application arrives, then admitted
    (it is the applicant's own card); someone else's waiting version is then held as another applicant."""
    early = spec_of(spec, 2, "補正", serial=A_SERIAL, minutes=5)
    foreign = spec_of(spec, 3, "取下げ", serial=B_SERIAL, minutes=6)
    assert ward.post(make_package(spec=early)).status_code == 201
    assert ward.post(make_package(spec=foreign, signer=ward.b)).status_code == 201
    with ward.session() as s:
        assert version(s, early.receipt_number).hold_reason == HoldReason.FIRST_NOT_ARRIVED
        assert s.scalar(select(func.count()).select_from(ForwardItem)) == 0
    assert ward.post(make_package()).status_code == 201
    with ward.session() as s:
        assert version(s, early.receipt_number).state is VersionState.CURRENT
        assert version(s, FIRST).state is VersionState.SUPERSEDED
        waiting = version(s, foreign.receipt_number)
        assert (waiting.state, waiting.hold_reason) == (VersionState.HELD, HoldReason.OTHER_APPLICANT)
        assert chain(s).state is ApplicationState.OPEN


def test_the_dashboard_and_list_show_held_versions(ward: Ward, make_package: PackageFactory,
                                                    spec: ApplicationSpec) -> None:
    from intake.applications.dashboard import dashboard
    from intake.applications.listing import ListFilters, list_applications

    assert ward.post(make_package()).status_code == 201
    assert ward.post(make_package(spec=spec_of(spec, 2, "取下げ", serial=B_SERIAL, minutes=5),
                                  signer=ward.b)).status_code == 201
    at: datetime = ward.runtime.clock()
    with ward.session() as s:
        board = dashboard(s, REVIEWER, at=at)
        assert board is not None
        assert board.held == 1
        page = list_applications(s, REVIEWER, ListFilters(held=True), page_size=20, at=at)
        assert [r.first_receipt_number for r in page.rows] == [FIRST]
