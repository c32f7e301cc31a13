"""Four eyes for privileged access (issue 15 §3), on SQLite and PostgreSQL: every path by which one
system administrator alone reached My Numbers (review of issue 15) is refused, and a second
administrator's approval is what makes each change take effect."""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.crypto import Sealer
from intake.models import AccessLogRow, StaffChangeRequest, StaffUser
from intake.settings import StaffUISettings
from intake.staff import admin
from intake.staff.errors import FourEyesRefused, LoginFailed, RequestDecided, RequestExpired
from intake.staff.requests import ChangeKind, Filed
from intake.staff.service import create_user, login_with_certificate, login_with_password, totp_secret_of
from status import Role
from tests.conftest import NOW
from tests.intake.staffdata import CATALOGUE, OWN_DEPT, principal

SEALER = Sealer({"t1": base64.b64encode(os.urandom(32)).decode()}, "t1")
PASSWORD = "initial password 1"  # noqa: S105 - a test account
UI = StaffUISettings()
ADMIN1 = principal(Role.SYSTEM_ADMIN, login="admin1")
ADMIN2 = principal(Role.SYSTEM_ADMIN, login="admin2")
FP_ADMIN1 = "cd" * 32  # admin1's own IC card


@pytest.fixture
def admins(session: Session) -> tuple[StaffUser, StaffUser]:
    one = create_user(session, login="admin1", display_name="管理 一郎", roles=["system_admin"],
                      departments=[OWN_DEPT], at=NOW, sealer=SEALER, password=PASSWORD).user
    two = create_user(session, login="admin2", display_name="管理 二郎", roles=["system_admin"],
                      departments=[OWN_DEPT], at=NOW, sealer=SEALER, password=PASSWORD).user
    session.commit()
    return one, two


def _clerk(session: Session, login: str = "suzuki", **kw: Any) -> StaffUser:
    user = create_user(session, login=login, display_name="鈴木 花子", roles=["reviewer"], departments=[OWN_DEPT],
                       at=NOW, sealer=SEALER, password=kw.pop("password", PASSWORD), **kw).user
    session.flush()
    return user


def _approve(session: Session, request_id: int, who: Any, at: Any = NOW) -> admin.Approved:
    return admin.approve_request(session, who, request_id, reason="確認済み", at=at, sealer=SEALER, issuer="i")


def _refused(session: Session, request_id: int, who: Any, rule: str) -> None:
    with pytest.raises(FourEyesRefused) as caught:
        _approve(session, request_id, who)
    assert caught.value.rule == rule
    with pytest.raises(FourEyesRefused):
        admin.deny_request(session, who, request_id, reason="r", at=NOW)
    assert session.get(StaffChangeRequest, request_id).state == "pending"  # type: ignore[union-attr]


def _login(session: Session, login: str, password: str, secret: str) -> str:
    token, _ = login_with_password(session, login=login, password=password, totp_code=pyotp.TOTP(secret).at(NOW),
                                   terminal="ip:127.0.0.1", at=NOW, settings=UI, sealer=SEALER)
    return token


def test_an_account_created_with_reveal_gets_it_only_from_a_second_admin(
        session: Session, admins: tuple[StaffUser, StaffUser]) -> None:
    created = admin.create_account(
        session, ADMIN1, login="sock", display_name="偽 職員", roles=["reviewer"], departments=[OWN_DEPT],
        may_reveal_my_number=True, password=PASSWORD, password_confirm=PASSWORD, client_cert_sha256=None,
        reason="r", at=NOW, catalogue=CATALOGUE, sealer=SEALER, issuer="i")
    session.commit()
    sock = session.get(StaffUser, created.user_id)
    assert sock is not None
    assert sock.may_reveal_my_number is False
    [filed] = created.requests
    _refused(session, filed.request_id, ADMIN1, "own_request")
    assert sock.may_reveal_my_number is False
    # admin1 knows both factors of "sock": the approval grants the reveal and issues a new TOTP secret
    # to admin2, so admin1's copy of the old one no longer logs in.
    approved = _approve(session, filed.request_id, ADMIN2)
    session.commit()
    assert sock.may_reveal_my_number is True
    assert approved.totp is not None
    assert approved.totp.secret != created.totp.secret
    assert totp_secret_of(sock, SEALER) == approved.totp.secret
    with pytest.raises(LoginFailed):
        _login(session, "sock", PASSWORD, created.totp.secret)
    session.rollback()
    assert _login(session, "sock", PASSWORD, approved.totp.secret)


def test_one_admin_cannot_both_set_the_password_and_approve_a_totp_reset(
        session: Session, admins: tuple[StaffUser, StaffUser]) -> None:
    clerk = _clerk(session, may_reveal_my_number=True)
    session.commit()
    old_hash, old_secret = clerk.password_hash, totp_secret_of(clerk, SEALER)
    pw = admin.set_password(session, ADMIN1, clerk.id, password=PASSWORD + "x", password_confirm=PASSWORD + "x",
                            reason="r", at=NOW, sealer=SEALER, issuer="i")
    totp = admin.reset_totp(session, ADMIN1, clerk.id, reason="r", at=NOW, sealer=SEALER, issuer="i")
    assert isinstance(pw, Filed)
    assert isinstance(totp, Filed)
    assert (clerk.password_hash, totp_secret_of(clerk, SEALER)) == (old_hash, old_secret)
    for request_id in (pw.request_id, totp.request_id):
        _refused(session, request_id, ADMIN1, "own_request")
    _approve(session, pw.request_id, ADMIN2)
    assert clerk.password_set_by == "admin1"  # noqa: S105 - a login, not a password
    # admin2 approves the TOTP reset and sees the secret; admin1 (who chose the password) never does.
    issued = _approve(session, totp.request_id, ADMIN2).totp
    assert issued is not None
    assert clerk.totp_set_by == "admin2"
    # admin2, who saw the TOTP secret, may not now choose the password too.
    with pytest.raises(FourEyesRefused) as caught:
        admin.set_password(session, ADMIN2, clerk.id, password=PASSWORD + "y", password_confirm=PASSWORD + "y",
                           reason="r", at=NOW, sealer=SEALER, issuer="i")
    assert caught.value.rule == "both_factors"


def test_a_lone_admin_cannot_move_their_ic_card_onto_another_account(
        session: Session, admins: tuple[StaffUser, StaffUser]) -> None:
    clerk = _clerk(session, may_reveal_my_number=True)
    session.commit()
    updated = admin.update_account(
        session, ADMIN1, clerk.id, display_name=clerk.display_name, roles=list(clerk.roles),
        departments=list(clerk.departments), may_reveal_my_number=True, client_cert_sha256=FP_ADMIN1, reason="r",
        at=NOW, catalogue=CATALOGUE)
    session.commit()
    [filed] = updated.requests
    assert filed.kind is ChangeKind.BIND_IC_CARD
    assert clerk.client_cert_sha256 is None
    with pytest.raises(LoginFailed):
        login_with_certificate(session, fingerprint=FP_ADMIN1, terminal="ip:127.0.0.1", at=NOW, settings=UI)
    session.rollback()
    _refused(session, filed.request_id, ADMIN1, "own_request")
    _approve(session, filed.request_id, ADMIN2)
    session.commit()
    assert clerk.client_cert_sha256 == FP_ADMIN1


def test_a_lone_admin_cannot_make_a_second_admin_to_approve_for_them(
        session: Session, admins: tuple[StaffUser, StaffUser]) -> None:
    created = admin.create_account(
        session, ADMIN1, login="sock", display_name="偽 管理者", roles=["system_admin"], departments=[OWN_DEPT],
        may_reveal_my_number=False, password=PASSWORD, password_confirm=PASSWORD, client_cert_sha256=None,
        reason="r", at=NOW, catalogue=CATALOGUE, sealer=SEALER, issuer="i")
    session.commit()
    sock = session.get(StaffUser, created.user_id)
    assert sock is not None
    assert sock.roles == []
    [filed] = created.requests
    assert filed.kind is ChangeKind.GRANT_ADMIN
    _refused(session, filed.request_id, ADMIN1, "own_request")
    assert sock.roles == []


def test_nobody_approves_a_change_to_their_own_account(session: Session, admins: tuple[StaffUser, StaffUser]) -> None:
    _, two = admins
    updated = admin.update_account(
        session, ADMIN1, two.id, display_name=two.display_name, roles=list(two.roles),
        departments=list(two.departments), may_reveal_my_number=True, client_cert_sha256=None, reason="r", at=NOW,
        catalogue=CATALOGUE)
    [filed] = updated.requests
    _refused(session, filed.request_id, ADMIN2, "own_account")
    assert two.may_reveal_my_number is False


def test_requests_expire_and_are_decided_once(session: Session, admins: tuple[StaffUser, StaffUser]) -> None:
    clerk = _clerk(session)
    first = admin.update_account(
        session, ADMIN1, clerk.id, display_name=clerk.display_name, roles=list(clerk.roles),
        departments=list(clerk.departments), may_reveal_my_number=True, client_cert_sha256=None, reason="r", at=NOW,
        catalogue=CATALOGUE, ttl=timedelta(hours=1)).requests[0]
    with pytest.raises(RequestExpired):
        _approve(session, first.request_id, ADMIN2, at=NOW + timedelta(hours=1))
    assert clerk.may_reveal_my_number is False
    admin.deny_request(session, ADMIN2, first.request_id, reason="期限切れ", at=NOW + timedelta(hours=2))
    with pytest.raises(RequestDecided):
        _approve(session, first.request_id, ADMIN2)
    session.commit()
    rows = list(session.scalars(select(AccessLogRow.action).where(AccessLogRow.action.like("admin.request.%"))
                                .order_by(AccessLogRow.id)))
    assert rows == ["admin.request.grant_reveal", "admin.request.deny"]
