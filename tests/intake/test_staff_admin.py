"""The staff-administration service on SQLite and PostgreSQL: role check, validation, guards, logging."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.authz import ALL, ROLE_LABELS, ROLE_ORDER, STAFF_ROLES, UNASSIGNED
from intake.crypto import Sealer
from intake.errors import NotFound, PermissionDenied, ReasonRequired
from intake.forwarding.routes import Route
from intake.models import AccessLogRow, StaffSession, StaffUser
from intake.procedures import ProcedureCatalogue
from intake.settings import StaffUISettings
from intake.staff import admin, overview
from intake.staff.errors import (
    AccountStateConflict,
    AdminGuard,
    FingerprintTaken,
    InvalidDepartments,
    InvalidDisplayName,
    InvalidFingerprint,
    InvalidLoginId,
    InvalidRoles,
    LoginTaken,
    NoChange,
    PasswordMismatch,
    WeakPassword,
)
from intake.staff.requests import ChangeKind, Filed
from intake.staff.service import create_user, login_with_password, resume_session, totp_secret_of
from status import Role
from tests.conftest import NOW
from tests.intake.staffdata import CATALOGUE, OTHER_DEPT, OTHER_PROCEDURE, OWN_DEPT, OWN_PROCEDURE, principal

SEALER = Sealer({"t1": base64.b64encode(os.urandom(32)).decode()}, "t1")
PASSWORD = "initial password 1"  # noqa: S105 - a test account
ADMIN = principal(Role.SYSTEM_ADMIN, login="admin1")
#: the second administrator of the four eyes (issue 15 §3)
ADMIN2 = principal(Role.SYSTEM_ADMIN, login="admin2")
UI = StaffUISettings()
FP = "ab" * 32


def _user(session: Session, login: str, roles: list[str], *, password: str | None = PASSWORD,
          cert: str | None = None, departments: list[str] | None = None) -> StaffUser:
    new = create_user(session, login=login, display_name=f"職員 {login}", roles=roles,
                      departments=departments or [OWN_DEPT], at=NOW, sealer=SEALER, password=password,
                      client_cert_sha256=cert)
    session.flush()
    return new.user


@pytest.fixture
def admin1(session: Session) -> StaffUser:
    user = _user(session, "admin1", ["system_admin"])
    session.commit()
    return user


def _create(session: Session, **overrides: Any) -> admin.CreatedAccount:
    args: dict[str, Any] = {
        "login": "tanaka.k", "display_name": "田中 一郎", "roles": ["reviewer"], "departments": [OWN_DEPT],
        "may_reveal_my_number": False, "password": PASSWORD, "password_confirm": PASSWORD,
        "client_cert_sha256": None, "reason": "4月の異動", "at": NOW, "catalogue": CATALOGUE, "sealer": SEALER,
        "issuer": "申請管理システム"}
    args.update(overrides)
    return admin.create_account(session, ADMIN, **args)


def _update(session: Session, user: StaffUser, who: Any = ADMIN, **overrides: Any) -> admin.Updated:
    args: dict[str, Any] = {
        "display_name": user.display_name, "roles": list(user.roles), "departments": list(user.departments),
        "may_reveal_my_number": user.may_reveal_my_number, "client_cert_sha256": user.client_cert_sha256,
        "reason": "体制変更", "at": NOW, "catalogue": CATALOGUE}
    args.update(overrides)
    return admin.update_account(session, who, user.id, **args)


def _approve(session: Session, request_id: int, who: Any = ADMIN2) -> admin.Approved:
    return admin.approve_request(session, who, request_id, reason="確認済み", at=NOW, sealer=SEALER, issuer="i")


def _rows(session: Session) -> list[AccessLogRow]:
    return list(session.scalars(select(AccessLogRow).where(AccessLogRow.action.like("admin.%"))
                                .order_by(AccessLogRow.id)))


# --- the role ---------------------------------------------------------------------------------------

CALLS: dict[str, Callable[[Session, Any], object]] = {
    "list": lambda s, p: admin.list_users(s, p, at=NOW),
    "get": lambda s, p: admin.get_user(s, p, 1, at=NOW),
    "create": lambda s, p: admin.create_account(
        s, p, login="x-user", display_name="x", roles=["viewer"], departments=[OWN_DEPT], may_reveal_my_number=False,
        password=PASSWORD, password_confirm=PASSWORD, client_cert_sha256=None, reason="r", at=NOW,
        catalogue=CATALOGUE, sealer=SEALER, issuer="i"),
    "update": lambda s, p: admin.update_account(
        s, p, 1, display_name="x", roles=["viewer"], departments=[OWN_DEPT], may_reveal_my_number=True,
        client_cert_sha256=None, reason="r", at=NOW, catalogue=CATALOGUE),
    "deactivate": lambda s, p: admin.deactivate(s, p, 1, reason="r", at=NOW),
    "reactivate": lambda s, p: admin.reactivate(s, p, 1, reason="r", at=NOW),
    "unlock": lambda s, p: admin.unlock(s, p, 1, reason="r", at=NOW),
    "totp": lambda s, p: admin.reset_totp(s, p, 1, reason="r", at=NOW, sealer=SEALER, issuer="i"),
    "password": lambda s, p: admin.set_password(s, p, 1, password=PASSWORD, password_confirm=PASSWORD, reason="r",
                                                at=NOW, sealer=SEALER, issuer="i"),
    "roles": lambda s, p: overview.role_matrix(s, p),
    "departments": lambda s, p: overview.department_overview(s, p, CATALOGUE),
    "procedures": lambda s, p: overview.procedure_overview(p, CATALOGUE, ()),
    "routes": lambda s, p: overview.route_overview(p, (), CATALOGUE),
}


_OTHERS = sorted(STAFF_ROLES - {Role.SYSTEM_ADMIN})


@pytest.mark.parametrize("roles", [(r,) for r in _OTHERS] + [tuple(_OTHERS)],
                         ids=[r.value for r in _OTHERS] + ["all-but-system_admin"])
def test_every_function_refuses_other_roles(session: Session, admin1: StaffUser, roles: tuple[Role, ...]) -> None:
    who = principal(*roles, login="someone")
    admitted = []
    for name, call in CALLS.items():
        try:
            call(session, who)
        except PermissionDenied:
            continue
        admitted.append(name)
    assert admitted == []
    session.rollback()
    assert _rows(session) == []
    user = session.get(StaffUser, admin1.id)
    assert user is not None
    assert (user.active, user.roles) == (True, ["system_admin"])


def test_every_function_admits_the_admin(session: Session, admin1: StaffUser) -> None:
    assert [u.login for u in admin.list_users(session, ADMIN, at=NOW)] == ["admin1"]
    assert admin.get_user(session, ADMIN, admin1.id, at=NOW).is_admin
    with pytest.raises(NotFound):
        admin.get_user(session, ADMIN, admin1.id + 1000, at=NOW)
    with pytest.raises(NotFound):
        admin.unlock(session, ADMIN, admin1.id + 1000, reason="r", at=NOW)


# --- creating ---------------------------------------------------------------------------------------


def test_create_returns_a_working_totp_secret_and_logs_no_secret(session: Session, admin1: StaffUser) -> None:
    created = _create(session, may_reveal_my_number=True, client_cert_sha256=FP.upper(),
                      roles=["department_admin", "reviewer"])
    session.commit()
    user = session.get(StaffUser, created.user_id)
    assert user is not None
    # The reveal and the IC card wait for a second administrator (four eyes).
    assert (user.login, user.roles, user.departments, user.may_reveal_my_number, user.client_cert_sha256) == (
        "tanaka.k", ["department_admin", "reviewer"], [OWN_DEPT], False, None)
    assert [f.kind for f in created.requests] == [ChangeKind.GRANT_REVEAL, ChangeKind.BIND_IC_CARD]
    assert totp_secret_of(user, SEALER) == created.totp.secret
    assert created.totp.secret not in repr(created.totp)
    uri = created.totp.provisioning_uri
    assert uri.startswith("otpauth://totp/")
    assert f"secret={created.totp.secret}" in uri
    token, _ = login_with_password(session, login="tanaka.k", password=PASSWORD,
                                   totp_code=pyotp.TOTP(created.totp.secret).at(NOW), terminal="ip:127.0.0.1",
                                   at=NOW, settings=UI, sealer=SEALER)
    assert token
    rows = _rows(session)
    assert [r.action for r in rows] == ["admin.user.create", "admin.request.grant_reveal",
                                        "admin.request.bind_ic_card"]
    row = rows[0]
    assert (row.action, row.subject, row.staff_id) == ("admin.user.create", f"staff_user:{user.id}", "admin1")
    assert row.reason is not None
    assert row.reason.startswith("4月の異動 [")
    assert "roles=reviewer,department_admin" in row.reason
    assert "reveal=no" in row.reason
    assert user.password_hash is not None
    for r in rows:
        for value in (r.at.isoformat(), r.staff_id, r.department, r.terminal, r.action, r.reason or "",
                      r.atena_number or "", r.subject):
            for secret in (PASSWORD, created.totp.secret, user.password_hash, FP, FP.upper()):
                assert secret not in value


@pytest.mark.parametrize("login", ["ab", "a" * 65, "Tanaka", "tanaka k", "田中", "tanaka/k", "tanaka@ku", ""])
def test_login_ids_outside_the_pattern_are_refused(session: Session, admin1: StaffUser, login: str) -> None:
    with pytest.raises(InvalidLoginId):
        _create(session, login=login)


@pytest.mark.parametrize("login", ["abc", "a" * 64, "tanaka.k_2-x", "0123"])
def test_login_ids_inside_the_pattern_are_accepted(session: Session, admin1: StaffUser, login: str) -> None:
    _create(session, login=login)


@pytest.mark.parametrize(("overrides", "error"), [
    ({"reason": ""}, ReasonRequired),
    ({"reason": "  \n "}, ReasonRequired),
    ({"display_name": " "}, InvalidDisplayName),
    ({"display_name": "x" * 129}, InvalidDisplayName),
    ({"roles": []}, InvalidRoles),
    ({"roles": ["system"]}, InvalidRoles),
    ({"roles": ["superuser"]}, InvalidRoles),
    ({"departments": []}, InvalidDepartments),
    ({"departments": ["somewhere"]}, InvalidDepartments),
    ({"departments": [ALL]}, InvalidDepartments),  # "all" only without a catalogue
    ({"password": "short pass1", "password_confirm": "short pass1"}, WeakPassword),
    ({"password_confirm": PASSWORD + "x"}, PasswordMismatch),
    ({"client_cert_sha256": "ab" * 31}, InvalidFingerprint),
    ({"client_cert_sha256": "zz" * 32}, InvalidFingerprint),
    ({"login": "admin1"}, LoginTaken),
])
def test_create_validation(session: Session, admin1: StaffUser, overrides: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        _create(session, **overrides)
    session.rollback()
    assert session.scalar(select(StaffUser.id).where(StaffUser.login == "tanaka.k")) is None
    assert _rows(session) == []


def test_fingerprints_are_unique(session: Session, admin1: StaffUser) -> None:
    _user(session, "ic-user", ["viewer"], password=None, cert=FP)
    with pytest.raises(FingerprintTaken):
        _create(session, client_cert_sha256=FP)


def test_departments_come_from_the_catalogue(session: Session, admin1: StaffUser) -> None:
    assert admin.known_departments(CATALOGUE) == {OWN_DEPT: "子ども家庭課", OTHER_DEPT: "区民課",
                                                  UNASSIGNED: "カタログにない手続（未割当）"}
    assert list(admin.known_departments(ProcedureCatalogue({}, configured=False))) == [ALL]
    _create(session, departments=[OWN_DEPT, UNASSIGNED])
    _create(session, login="dev-user", departments=[ALL], catalogue=ProcedureCatalogue({}, configured=False))
    with pytest.raises(InvalidDepartments) as caught:
        _create(session, login="dev-user2", departments=[OWN_DEPT],
                catalogue=ProcedureCatalogue({}, configured=False))
    assert caught.value.unknown == {OWN_DEPT}


# --- updating ---------------------------------------------------------------------------------------


def test_update_records_what_changed(session: Session, admin1: StaffUser) -> None:
    user = _user(session, "suzuki", ["viewer"])
    updated = _update(session, user, roles=["reviewer", "viewer"], departments=[OTHER_DEPT, OWN_DEPT],
                      may_reveal_my_number=True, client_cert_sha256=FP, display_name="鈴木 花子")
    changes = updated.changes
    assert changes == ["display_name", "roles=viewer→viewer,reviewer",
                       f"departments={OWN_DEPT}→{OWN_DEPT},{OTHER_DEPT}"]
    assert [f.kind for f in updated.requests] == [ChangeKind.GRANT_REVEAL, ChangeKind.BIND_IC_CARD]
    session.commit()
    assert (user.roles, user.departments, user.may_reveal_my_number, user.client_cert_sha256, user.display_name) == (
        ["reviewer", "viewer"], [OWN_DEPT, OTHER_DEPT], False, None, "鈴木 花子")
    for filed in updated.requests:
        _approve(session, filed.request_id)
    session.commit()
    assert (user.may_reveal_my_number, user.client_cert_sha256) == (True, FP)
    rows = _rows(session)
    assert [r.action for r in rows] == ["admin.user.update", "admin.request.grant_reveal",
                                        "admin.request.bind_ic_card", "admin.request.approve",
                                        "admin.request.approve"]
    assert rows[0].reason == f"体制変更 [{'; '.join(changes)}]"
    assert [r.staff_id for r in rows] == ["admin1"] * 3 + ["admin2"] * 2
    assert all(FP not in (r.reason or "") for r in rows)
    assert _update(session, user, client_cert_sha256="").changes == ["ic_card=removed"]
    with pytest.raises(NoChange):
        _update(session, user)


def test_a_stale_department_may_stay_but_not_be_added(session: Session, admin1: StaffUser) -> None:
    user = _user(session, "old-dept", ["viewer"], departments=[OWN_DEPT, "closed-dept"])
    _update(session, user, display_name="改名")  # keeps "closed-dept"
    assert user.departments == sorted([OWN_DEPT, "closed-dept"])
    other = _user(session, "other", ["viewer"])
    with pytest.raises(InvalidDepartments):
        _update(session, other, departments=[OWN_DEPT, "closed-dept"])


# --- guards -----------------------------------------------------------------------------------------


def test_the_last_active_admin_can_be_neither_deactivated_nor_demoted(session: Session, admin1: StaffUser) -> None:
    # Another admin acting (whose own account went away meanwhile): the rule holds on its own.
    ghost = principal(Role.SYSTEM_ADMIN, login="ghost")
    with pytest.raises(AdminGuard) as caught:
        admin.deactivate(session, ghost, admin1.id, reason="退職", at=NOW)
    assert caught.value.rule == "last_admin"
    with pytest.raises(AdminGuard) as caught:
        _update(session, admin1, who=ghost, roles=["auditor"])
    assert caught.value.rule == "last_admin"
    # An inactive admin does not count.
    second = _user(session, "admin2", ["system_admin"])
    second.active = False
    with pytest.raises(AdminGuard) as caught:
        admin.deactivate(session, ghost, admin1.id, reason="退職", at=NOW)
    assert caught.value.rule == "last_admin"
    second.active = True
    admin.deactivate(session, ghost, admin1.id, reason="退職", at=NOW)
    assert admin1.active is False
    # Now admin2 is the last one.
    with pytest.raises(AdminGuard) as caught:
        _update(session, second, who=ghost, roles=["reviewer"])
    assert caught.value.rule == "last_admin"


def test_an_admin_cannot_deactivate_or_demote_themselves(session: Session, admin1: StaffUser) -> None:
    _user(session, "admin2", ["system_admin"])
    with pytest.raises(AdminGuard) as caught:
        admin.deactivate(session, ADMIN, admin1.id, reason="r", at=NOW)
    assert caught.value.rule == "self_deactivate"
    with pytest.raises(AdminGuard) as caught:
        _update(session, admin1, roles=["reviewer"])
    assert caught.value.rule == "self_demote"
    # Nor widen their own access (separation of duties): another admin must do it.
    for change in ({"roles": ["system_admin", "reviewer"]}, {"may_reveal_my_number": True},
                   {"departments": [OWN_DEPT, OTHER_DEPT]}):
        with pytest.raises(AdminGuard) as caught:
            _update(session, admin1, **change)
        assert caught.value.rule == "self_privilege"
    assert admin1.roles == ["system_admin"]
    assert admin1.may_reveal_my_number is False
    # Their own display name is theirs to fix.
    assert _update(session, admin1, display_name="管理 二郎").changes == ["display_name"]


def test_another_admin_can_be_demoted_while_one_remains(session: Session, admin1: StaffUser) -> None:
    second = _user(session, "admin2", ["system_admin"])
    _update(session, second, roles=["auditor"])
    assert second.roles == ["auditor"]


# --- state ------------------------------------------------------------------------------------------


def _session_of(session: Session, login: str) -> str:
    user = session.scalar(select(StaffUser).where(StaffUser.login == login))
    assert user is not None
    secret = totp_secret_of(user, SEALER)
    assert secret is not None
    token, _ = login_with_password(session, login=login, password=PASSWORD, totp_code=pyotp.TOTP(secret).at(NOW),
                                   terminal="ip:127.0.0.1", at=NOW, settings=UI, sealer=SEALER)
    user.totp_last_step = None  # let the same code open a second session in this test
    return token


def test_deactivation_ends_live_sessions_and_reactivation_does_not_revive_them(
        session: Session, admin1: StaffUser) -> None:
    user = _user(session, "suzuki", ["reviewer"])
    tokens = [_session_of(session, "suzuki"), _session_of(session, "suzuki")]
    session.commit()
    assert admin.deactivate(session, ADMIN, user.id, reason="退職", at=NOW + timedelta(minutes=1)) == 2
    session.commit()
    ended = session.scalars(select(StaffSession).where(StaffSession.user_id == user.id)).all()
    assert {(s.end_reason, s.ended_at) for s in ended} == {("deactivated", NOW + timedelta(minutes=1))}
    with pytest.raises(AccountStateConflict) as caught:
        admin.deactivate(session, ADMIN, user.id, reason="退職", at=NOW)
    assert caught.value.state == "already_inactive"
    admin.reactivate(session, ADMIN, user.id, reason="復職", at=NOW + timedelta(minutes=2))
    session.commit()
    with pytest.raises(AccountStateConflict):
        admin.reactivate(session, ADMIN, user.id, reason="復職", at=NOW)
    for token in tokens:
        with pytest.raises(Exception, match="no valid session"):
            resume_session(session, token=token, at=NOW + timedelta(minutes=3), settings=UI)
    assert [(r.action, r.reason) for r in _rows(session)] == [
        ("admin.user.deactivate", "退職 [sessions_ended=2]"), ("admin.user.reactivate", "復職")]


def test_unlock_only_a_locked_account(session: Session, admin1: StaffUser) -> None:
    user = _user(session, "suzuki", ["reviewer"])
    with pytest.raises(AccountStateConflict):
        admin.unlock(session, ADMIN, user.id, reason="本人確認済み", at=NOW)
    user.locked_until, user.failed_logins = NOW + timedelta(minutes=15), 0
    session.flush()
    with pytest.raises(ReasonRequired):
        admin.unlock(session, ADMIN, user.id, reason=" ", at=NOW)
    admin.unlock(session, ADMIN, user.id, reason="本人確認済み", at=NOW + timedelta(minutes=1))
    assert user.locked_until is None
    user.locked_until = NOW  # expired: nothing to unlock
    with pytest.raises(AccountStateConflict):
        admin.unlock(session, ADMIN, user.id, reason="r", at=NOW + timedelta(seconds=1))


def test_totp_reset_replaces_the_secret_and_ends_sessions(session: Session, admin1: StaffUser) -> None:
    user = _user(session, "suzuki", ["reviewer"])
    old = totp_secret_of(user, SEALER)
    token = _session_of(session, "suzuki")
    filed = admin.reset_totp(session, ADMIN, user.id, reason="端末紛失", at=NOW, sealer=SEALER, issuer="i")
    assert isinstance(filed, Filed)  # another's account: a request, nothing changed yet
    session.commit()
    assert totp_secret_of(user, SEALER) == old
    resume_session(session, token=token, at=NOW, settings=UI)
    fresh = _approve(session, filed.request_id).totp
    session.commit()
    assert fresh is not None
    assert fresh.secret != old
    assert totp_secret_of(user, SEALER) == fresh.secret
    with pytest.raises(Exception, match="no valid session"):
        resume_session(session, token=token, at=NOW, settings=UI)
    cert_only = _user(session, "ic-only", ["viewer"], password=None, cert=FP)
    with pytest.raises(AccountStateConflict) as caught:
        admin.reset_totp(session, ADMIN, cert_only.id, reason="r", at=NOW, sealer=SEALER, issuer="i")
    assert caught.value.state == "no_password"


def test_set_password_gives_an_ic_card_account_its_first_totp(session: Session, admin1: StaffUser) -> None:
    cert_only = _user(session, "ic-only", ["viewer"], password=None, cert=FP)
    with pytest.raises(WeakPassword):
        admin.set_password(session, ADMIN, cert_only.id, password="short", password_confirm="short", reason="r",  # noqa: S106
                           at=NOW, sealer=SEALER, issuer="i")
    filed = admin.set_password(session, ADMIN, cert_only.id, password=PASSWORD, password_confirm=PASSWORD,
                               reason="窓口端末の追加", at=NOW, sealer=SEALER, issuer="i")
    assert isinstance(filed, Filed)
    assert (cert_only.password_hash, cert_only.totp_secret) == (None, None)
    totp = _approve(session, filed.request_id).totp  # the TOTP secret is shown to the approver
    assert totp is not None
    assert totp_secret_of(cert_only, SEALER) == totp.secret
    assert (cert_only.password_set_by, cert_only.totp_set_by) == ("admin1", "admin2")
    again = admin.set_password(session, ADMIN, cert_only.id, password=PASSWORD + "2", password_confirm=PASSWORD + "2",
                               reason="再設定", at=NOW, sealer=SEALER, issuer="i")
    assert isinstance(again, Filed)
    assert _approve(session, again.request_id).totp is None
    assert totp_secret_of(cert_only, SEALER) == totp.secret
    for row in _rows(session):
        assert PASSWORD not in (row.reason or "")
        assert totp.secret not in (row.reason or "")


# --- the configuration overview ---------------------------------------------------------------------


def test_every_staff_role_has_a_label_and_a_column() -> None:
    assert set(ROLE_LABELS) == STAFF_ROLES
    assert set(ROLE_ORDER) == STAFF_ROLES
    assert all(c.roles <= STAFF_ROLES and c.roles for c in overview.CAPABILITIES)


def test_role_matrix_counts_active_users(session: Session, admin1: StaffUser) -> None:
    _user(session, "r1", ["reviewer", "viewer"])
    _user(session, "r2", ["reviewer"]).active = False
    matrix = overview.role_matrix(session, ADMIN)
    assert dict(matrix.active_users) == {Role.VIEWER: 1, Role.REVIEWER: 1, Role.DEPARTMENT_ADMIN: 0,
                                         Role.AUDITOR: 0, Role.SYSTEM_ADMIN: 1}
    admin_row = next(c for c in matrix.capabilities if "職員アカウント" in c.label)
    assert admin_row.roles == {Role.SYSTEM_ADMIN}


def test_department_overview(session: Session, admin1: StaffUser) -> None:
    _user(session, "k1", ["viewer"], departments=[OTHER_DEPT, "closed-dept"])
    rows = {r.id: r for r in overview.department_overview(session, ADMIN, CATALOGUE)}
    assert [p.id for p in rows[OWN_DEPT].procedures] == [OWN_PROCEDURE]
    assert (rows[OWN_DEPT].active_users, rows[OTHER_DEPT].active_users) == (1, 1)
    assert rows["closed-dept"].known is False
    assert rows[UNASSIGNED].procedures == ()


def test_procedure_and_route_overview_never_show_url_paths(tmp_path: Path) -> None:
    routes = (
        Route("kodomo-system", frozenset({OWN_PROCEDURE, "GONE-PROC"}), "http",
              "http://user-free.example:8080/in/TOKEN123?key=SECRET456", my_number_entitled=True),
        Route("archive", frozenset({"*"}), "file", str(tmp_path / "drop"), format="xml"),
    )
    procs = {r.procedure.id: r for r in overview.procedure_overview(ADMIN, CATALOGUE, routes)}
    assert procs[OWN_PROCEDURE].routes == ("kodomo-system", "archive")
    assert procs[OWN_PROCEDURE].my_numbers_sent is True
    assert (procs[OTHER_PROCEDURE].routes, procs[OTHER_PROCEDURE].my_numbers_sent) == (("archive",), False)
    rows = overview.route_overview(ADMIN, routes, CATALOGUE)
    assert rows[0].destination == "http://user-free.example:8080"
    assert rows[0].procedures == (("GONE-PROC", None), (OWN_PROCEDURE, "児童手当 認定請求"))
    assert (rows[1].destination, rows[1].every_procedure, rows[1].procedures) == (str(tmp_path / "drop"), True, ())
