"""Parallel wrong passwords get no more guesses than the lockout allows (a hostile-insider review).

Each login attempt checks the password (argon2, tens of milliseconds) between reading the account's
failure counter and writing it. On SQLite, whose driver starts a transaction only at the first write
and which ignores ``FOR UPDATE``, sixteen guesses sent at once were all checked, the counter ended
at 2 and the account was never locked (``max_failed_logins`` 3). PostgreSQL locked the row and held.
Now a login takes the account's write lock before it reads (intake/staff/service.py), on both engines.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, func, select

from intake.models import AccessLogRow, StaffUser
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from signature.testing.builder import ApplicationSpec
from tests.conftest import PackageFactory
from tests.intake.conftest import Clock
from tests.intake.ui.conftest import build_world, csrf_of

GUESSES = 16
ALLOWED = 3


def test_parallel_wrong_passwords_are_checked_no_more_often_than_the_lockout_allows(
    engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    world, server = build_world(engine, runtime, clock, make_package, spec,
                                StaffUISettings(max_failed_logins=ALLOWED))
    try:
        clients = [world.client() for _ in range(GUESSES)]
        tokens = [csrf_of(c.get("/staff/login").text) for c in clients]

        def guess(i: int) -> int:
            return clients[i].post("/staff/login", data={"csrf": tokens[i], "login": "viewer",
                                                         "password": f"wrong password {i:04d}",
                                                         "totp": "000000"}).status_code

        with ThreadPoolExecutor(GUESSES) as pool:
            answers = list(pool.map(guess, range(GUESSES)))
        for client in clients:
            client.close()
    finally:
        server.__exit__(None, None, None)
    assert all(400 <= code < 500 for code in answers), answers  # refused, every one (a login is a 303)
    with world.sessions() as s:
        checked = s.scalar(select(func.count()).select_from(AccessLogRow).where(
            AccessLogRow.staff_id == "viewer", AccessLogRow.action == "login.failed"))
        locks = s.scalar(select(func.count()).select_from(AccessLogRow).where(
            AccessLogRow.staff_id == "viewer", AccessLogRow.action == "login.locked"))
        user = s.scalar(select(StaffUser).where(StaffUser.login == "viewer"))
    assert user is not None
    assert checked == ALLOWED, f"{checked} passwords checked with max_failed_logins={ALLOWED}: {answers}"
    assert locks == 1
    assert user.locked_until is not None
