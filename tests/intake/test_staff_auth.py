"""Staff authentication services on SQLite and PostgreSQL: argon2 + TOTP, lockout, timeouts, logout."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.errors import InvalidRequest
from intake.models import AccessLogRow, StaffUser
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from intake.staff.errors import AccountLocked, LoginFailed, SessionEnded, UnknownRole
from intake.staff.service import (
    create_user,
    end_session,
    login_with_certificate,
    login_with_password,
    resume_session,
)
from tests.conftest import NOW

UI = StaffUISettings()
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account
WRONG = "wrong password!"
FP = "ab" * 32


@pytest.fixture
def secret(session: Session, runtime: Runtime) -> str:
    new = create_user(session, login="suzuki", display_name="鈴木 花子", roles=["reviewer"], departments=["kodomo"],
                      at=NOW, sealer=runtime.package_sealer, password=PASSWORD, client_cert_sha256=FP.upper())
    session.commit()
    assert new.totp_secret is not None
    assert new.user.password_hash is not None
    assert PASSWORD not in new.user.password_hash
    assert new.user.totp_secret is not None
    assert new.totp_secret.encode() not in new.user.totp_secret
    return new.totp_secret


def _login(session: Session, runtime: Runtime, secret: str, *, at: object = NOW, password: str = PASSWORD,
           code: str | None = None) -> str:
    token, _ = login_with_password(session, login="suzuki", password=password,
                                   totp_code=code or pyotp.TOTP(secret).at(at), terminal="ip:127.0.0.1",
                                   at=at, settings=UI, sealer=runtime.package_sealer)  # type: ignore[arg-type]
    session.commit()
    return token


def test_password_and_totp_open_a_session(session: Session, runtime: Runtime, secret: str) -> None:
    token = _login(session, runtime, secret)
    row, user = resume_session(session, token=token, at=NOW + timedelta(minutes=5), settings=UI)
    assert user.login == "suzuki"
    assert row.token_sha256 != token
    assert token not in row.token_sha256
    assert session.scalars(select(AccessLogRow.action)).all() == ["login.success"]


def test_a_totp_code_is_accepted_once(session: Session, runtime: Runtime, secret: str) -> None:
    code = pyotp.TOTP(secret).at(NOW)
    _login(session, runtime, secret, code=code)
    with pytest.raises(LoginFailed):
        _login(session, runtime, secret, code=code, at=NOW + timedelta(seconds=5))


@pytest.mark.parametrize(("password", "code"), [(PASSWORD, "000000"), (WRONG, None), (PASSWORD, "12ab56")],
                         ids=["bad-totp", "bad-password", "malformed-totp"])
def test_one_wrong_factor_fails(session: Session, runtime: Runtime, secret: str, password: str,
                                code: str | None) -> None:
    if code == "000000" and pyotp.TOTP(secret).at(NOW) == code:  # pragma: no cover - 1 in a million
        code = "000001"
    with pytest.raises(LoginFailed):
        _login(session, runtime, secret, password=password, code=code)


def test_lockout_after_repeated_failures_then_release(session: Session, runtime: Runtime, secret: str) -> None:
    for i in range(UI.max_failed_logins - 1):
        with pytest.raises(LoginFailed):
            _login(session, runtime, secret, password=WRONG, at=NOW + timedelta(seconds=i))
    with pytest.raises(AccountLocked) as info:
        _login(session, runtime, secret, password=WRONG, at=NOW + timedelta(seconds=10))
    session.commit()
    assert info.value.until == NOW + timedelta(seconds=10, minutes=UI.lockout_minutes)
    with pytest.raises(AccountLocked):  # the right password does not help while locked
        _login(session, runtime, secret, at=NOW + timedelta(minutes=1))
    _login(session, runtime, secret, at=NOW + timedelta(minutes=UI.lockout_minutes, seconds=11))
    actions = session.scalars(select(AccessLogRow.action)).all()
    assert actions.count("login.failed") == UI.max_failed_logins
    assert "login.locked" in actions
    assert "login.refused" in actions
    assert actions[-1] == "login.success"


def test_idle_and_absolute_timeouts_and_logout(session: Session, runtime: Runtime, secret: str) -> None:
    token = _login(session, runtime, secret)
    with pytest.raises(SessionEnded) as idle:
        resume_session(session, token=token, at=NOW + timedelta(minutes=UI.idle_timeout_minutes), settings=UI)
    assert idle.value.reason == "idle"
    token = _login(session, runtime, secret, at=NOW + timedelta(minutes=20))
    at = NOW + timedelta(minutes=20)
    while at < NOW + timedelta(minutes=20, hours=UI.absolute_timeout_hours) - timedelta(minutes=10):
        at += timedelta(minutes=10)  # active all day: the idle clock never runs out
        resume_session(session, token=token, at=at, settings=UI)
    with pytest.raises(SessionEnded) as absolute:
        resume_session(session, token=token, at=at + timedelta(minutes=10), settings=UI)
    assert absolute.value.reason == "absolute"
    later = at + timedelta(minutes=30)
    token = _login(session, runtime, secret, at=later)
    row, user = resume_session(session, token=token, at=later, settings=UI)
    end_session(session, row, user, at=later)
    session.commit()
    with pytest.raises(SessionEnded):
        resume_session(session, token=token, at=later + timedelta(seconds=1), settings=UI)


def test_certificate_login(session: Session, runtime: Runtime, secret: str) -> None:
    token, row = login_with_certificate(session, fingerprint=":".join(FP[i:i + 2] for i in range(0, 64, 2)),
                                        terminal="ip:127.0.0.1", at=NOW, settings=UI)
    assert row.method == "certificate"
    assert token
    with pytest.raises(LoginFailed):
        login_with_certificate(session, fingerprint="cd" * 32, terminal="ip:127.0.0.1", at=NOW, settings=UI)


def test_accounts_are_validated(session: Session, runtime: Runtime) -> None:
    common = {"display_name": "x", "departments": ["kodomo"], "at": NOW, "sealer": runtime.package_sealer}
    with pytest.raises(UnknownRole):
        create_user(session, login="a", roles=["system"], password=PASSWORD, **common)  # type: ignore[arg-type]
    with pytest.raises(UnknownRole):
        create_user(session, login="a", roles=["boss"], password=PASSWORD, **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        create_user(session, login="a", roles=["viewer"], password=WRONG[:5], **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        create_user(session, login="a", roles=["viewer"], **common)  # type: ignore[arg-type]
    assert session.scalars(select(StaffUser)).all() == []


def test_an_unknown_login_id_is_logged_as_a_keyed_fingerprint_never_as_typed(
        session: Session, runtime: Runtime, secret: str) -> None:
    """Issue 15 §5: what was typed into the login field may be a password in the wrong field."""
    typed = ["correct horse battery staple", "correct horse battery staple", "yamada.t"]
    for text in typed:
        with pytest.raises(LoginFailed):
            login_with_password(session, login=text, password=WRONG, totp_code="000000", terminal="ip:127.0.0.1",
                                at=NOW, settings=UI, sealer=runtime.package_sealer)
        session.commit()
    rows = session.scalars(select(AccessLogRow).where(AccessLogRow.action == "login.failed")
                           .order_by(AccessLogRow.id)).all()
    assert [(r.reason, r.terminal) for r in rows] == [("unknown login id", "ip:127.0.0.1")] * 3
    ids = [r.staff_id for r in rows]
    assert all(i.startswith("fp:") and len(i) == 19 for i in ids)
    assert ids[0] == ids[1] != ids[2]  # the same text, the same fingerprint: repeated guesses show
    for row in rows:
        for column in (row.staff_id, row.department, row.subject, row.reason or ""):
            assert all(text not in column for text in typed)
