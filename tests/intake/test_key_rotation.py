"""Issue 17 §4: ``intake keys rotate`` re-seals every blob under the new keys in resumable batches
while the intake serves, shows its progress, survives being killed half-way, and ``keys
retire-check`` says "no" until no blob is left under the old key — and "yes" only then.

Real processes on SQLite and PostgreSQL: ``intake serve`` stores packages with the first keys; the
keys file gains new keys (made active) and the service is restarted; ``keys rotate --batch 1`` is
SIGKILLed after its first re-sealed batches while the service keeps storing; everything still opens;
a second run finishes; with the old keys removed, every blob opens with the new ones alone and holds
the same bytes as before.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlalchemy import Engine, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, undefer

from intake.crypto import Sealer
from intake.db import make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.keys import TABLES, key_counts, rotate
from intake.models import Attachment, Delivery, MyNumberRow, StaffUser
from intake.sealing import open_attachment, open_my_number, open_package, open_totp, seal_totp
from signature.testing.samples import sample_spec
from tests.conftest import NOW, PackageFactory, World
from tests.intake.conftest import intake_process

Keys = tuple[dict[str, str], str, dict[str, str], str]

_OPEN: dict[type, Callable[[Sealer, object, bytes], bytes]] = {
    Delivery: lambda s, r, b: open_package(s, r.id, b),  # type: ignore[attr-defined]
    Attachment: lambda s, r, b: open_attachment(s, r.id, b),  # type: ignore[attr-defined]
    MyNumberRow: lambda s, r, b: open_my_number(s, r.version_id, r.position, b).encode(),  # type: ignore[attr-defined]
    StaffUser: lambda s, r, b: open_totp(s, r.id, b).encode(),  # type: ignore[attr-defined]
}


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _with_keys(env: dict[str, str], keys: Keys) -> dict[str, str]:
    my, my_active, pkg, pkg_active = keys
    return {**env, "SHINSEI_INTAKE_MY_NUMBER_KEYS": json.dumps(my), "SHINSEI_INTAKE_MY_NUMBER_ACTIVE_KEY": my_active,
            "SHINSEI_INTAKE_PACKAGE_KEYS": json.dumps(pkg), "SHINSEI_INTAKE_PACKAGE_ACTIVE_KEY": pkg_active}


def _plaintexts(url: str, keys: Keys) -> dict[tuple[str, int], bytes]:
    """Every sealed blob, opened with exactly these keys (CryptoError if one does not open)."""
    my, my_active, pkg, pkg_active = keys
    sealers = {"my_number": Sealer(my, my_active), "package": Sealer(pkg, pkg_active)}
    engine = make_engine(url)
    found = {}
    try:
        with make_session_factory(engine)() as session:
            for table in TABLES:
                column = getattr(table.model, table.column)
                for row in session.scalars(select(table.model).options(undefer(column))):
                    blob = getattr(row, table.column)
                    if blob:
                        found[(table.name, row.id)] = _OPEN[table.model](sealers[table.purpose], row, blob)
    finally:
        engine.dispose()
    return found


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False, input=stdin)


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/deliveries", content=body, timeout=60,
                      headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})


def test_rotation_is_resumable_while_serving_and_retire_check_tells_the_truth(
        env: dict[str, str], database_url: str, world: World, make_package: PackageFactory) -> None:
    old: Keys = ({"m1": _key()}, "m1", {"p1": _key()}, "p1")
    both: Keys = ({"m1": old[0]["m1"], "m2": _key()}, "m2", {"p1": old[2]["p1"], "p2": _key()}, "p2")
    new: Keys = ({"m2": both[0]["m2"]}, "m2", {"p2": both[2]["p2"]}, "p2")
    rng = random.Random(17)

    def package(n: int) -> bytes:
        spec = sample_spec(world.residents[n % 2], rng, receipt_number=f"20261125-{n:010d}",
                           arrived_at=NOW - timedelta(minutes=60 - n), user_cert_serial=f"1A2B{n:04d}")
        return make_package(spec=spec)

    bodies = [package(n) for n in range(1, 7)]
    with intake_process(_with_keys(env, old)) as (url, _proc):
        for body in bodies:
            assert _post(url, body).status_code == 201
    added = _cli(_with_keys(env, old), "staff", "add", "kanri", "--name", "管理 一郎", "--role", "system_admin",
                 "--department", "all", "--password-stdin", stdin="rotation-test-password\n")
    assert added.returncode == 0, added.stderr
    before = _plaintexts(database_url, old)
    assert {t for t, _ in before} == {"my_numbers", "deliveries", "attachments", "staff_users.totp"}

    rotating_env = _with_keys(env, both)
    with intake_process(rotating_env) as (url, _proc):  # serving with the new keys active
        rotation = subprocess.Popen([sys.executable, "-m", "intake", "keys", "rotate", "--batch", "1"],
                                    env=rotating_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert rotation.stdout is not None
        progress = []
        for line in rotation.stdout:
            progress.append(line)
            done = re.search(r"re-sealed (\d+)", line)
            if done and int(done.group(1)) >= 3:
                rotation.send_signal(signal.SIGKILL)  # interrupted half-way, as a crash would
                break
        rotation.stdout.close()
        assert rotation.wait(30) == -signal.SIGKILL
        assert re.fullmatch(r"my_numbers: examined \d+ of \d+, re-sealed \d+\n", progress[0])  # with progress

        extra = package(7)
        assert _post(url, extra).status_code == 201  # the service keeps storing meanwhile
        engine = make_engine(database_url)
        try:
            half = key_counts(make_session_factory(engine))
        finally:
            engine.dispose()
        assert half["my_numbers"].get("m1"), half  # half done
        assert half["my_numbers"].get("m2"), half
        assert half["deliveries"].get("p2"), half  # the new delivery is sealed with the active key
        retire = _cli(rotating_env, "keys", "retire-check", "m1")
        assert retire.returncode == 1
        assert "still sealed with m1" in retire.stdout
        assert _cli(rotating_env, "keys", "retire-check", "m2").returncode == 1  # an active key: never
        middle = _plaintexts(database_url, both)  # every blob opens, half under each key
        assert {k: v for k, v in middle.items() if k in before} == before

        resumed = _cli(rotating_env, "keys", "rotate", "--batch", "4")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        left = sum(per.get("m1", 0) + per.get("p1", 0) for per in half.values())
        assert f"OK  re-sealed {left} blob(s)" in resumed.stdout  # exactly what was left under the old keys
        assert "0 blob(s) not under the active keys" in resumed.stdout
        for kid in ("m1", "p1"):
            retire = _cli(rotating_env, "keys", "retire-check", kid)
            assert retire.returncode == 0, retire.stdout
        assert _post(url, bodies[0]).status_code == 200  # idempotency still answers from the re-sealed rows

    after = _plaintexts(database_url, new)  # the old keys are gone from the configuration
    assert {k: v for k, v in after.items() if k in before} == before
    assert len(after) > len(before)  # the delivery stored during the rotation is there too
    status = _cli(_with_keys(env, new), "keys", "status")
    assert status.returncode == 0
    assert "m1" not in status.stdout
    assert "p1" not in status.stdout


def test_a_change_made_during_rotation_is_never_overwritten(engine: Engine) -> None:
    """A staff member's TOTP secret is reset (sealed with the new active key) after the rotation has
    loaded the old blob and before it writes the re-sealed one: the reset stands. On PostgreSQL the
    reset waits for the rotation's row lock; on SQLite it commits first and the rotation's
    ``UPDATE … WHERE blob = old`` finds nothing to change."""
    first, second = _key(), _key()
    old = Sealer({"p1": first}, "p1")
    keys = {"my_number": Sealer({"m1": _key()}, "m1"), "package": Sealer({"p1": first, "p2": second}, "p2")}
    sessions = make_session_factory(engine)
    with sessions() as session:
        users = [StaffUser(login=f"u{n}", display_name="試験 職員", roles=["viewer"], departments=["0101"],
                           created_at=NOW) for n in range(3)]
        session.add_all(users)
        session.flush()
        for user in users:
            user.totp_secret = seal_totp(old, user.id, f"OLDSECRET{user.id}")
        session.commit()
        target = users[0].id

    def reset() -> None:  # what the service does on 「TOTP再発行」: a new secret under the active key
        with sessions() as other:
            user = other.get(StaffUser, target)
            assert user is not None
            user.totp_secret = seal_totp(keys["package"], target, "NEWSECRET")
            other.commit()

    changer = threading.Thread(target=reset)
    rotating = make_session_factory(engine)

    @event.listens_for(rotating, "do_orm_execute")
    def _between_load_and_write(state: ORMExecuteState) -> None:
        # rows are written in id order: the first UPDATE of staff_users is the target's
        if not state.is_update or state.bind_mapper is not inspect(StaffUser) or changer.ident is not None:
            return
        changer.start()
        for _ in range(600):  # bounded: the reset has committed, or it waits on the rotation's row lock
            if not changer.is_alive() or _waiting_on_a_lock(engine):
                return
            changer.join(0.05)
        raise AssertionError("the concurrent reset neither finished nor waited on a lock")

    steps = list(rotate(rotating, keys, batch=10))
    changer.join(30)
    assert not changer.is_alive()
    assert changer.ident is not None  # the change really happened between load and write
    assert steps

    with sessions() as session:
        found = {u.id: u.totp_secret for u in session.scalars(select(StaffUser))}
    assert open_totp(keys["package"], target, found[target]) == "NEWSECRET"  # the reset stands
    for user_id, blob in found.items():
        assert blob is not None
        assert Sealer.key_id_of(blob) == "p2"  # and every other blob was re-sealed
        if user_id != target:
            assert open_totp(Sealer({"p2": second}, "p2"), user_id, blob) == f"OLDSECRET{user_id}"


def _waiting_on_a_lock(engine: Engine) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).scalar())


def test_limit_stops_after_that_many_blobs_and_the_next_run_finishes(engine: Engine) -> None:
    first = _key()
    old = Sealer({"p1": first}, "p1")
    keys = {"my_number": Sealer({"m1": _key()}, "m1"), "package": Sealer({"p1": first, "p2": _key()}, "p2")}
    sessions = make_session_factory(engine)
    with sessions() as session:
        users = [StaffUser(login=f"l{n}", display_name="試験 職員", roles=["viewer"], departments=["0101"],
                           created_at=NOW) for n in range(5)]
        session.add_all(users)
        session.flush()
        for user in users:
            user.totp_secret = seal_totp(old, user.id, f"SECRET{user.id}")
        session.commit()

    steps = list(rotate(sessions, keys, limit=2, batch=10))
    assert [(s.table, s.examined, s.resealed) for s in steps] == [("staff_users.totp", 2, 2)]
    assert key_counts(sessions)["staff_users.totp"] == {"p1": 3, "p2": 2}
    steps = list(rotate(sessions, keys, batch=2))  # running totals after each batch of two rows
    assert [(s.examined, s.resealed) for s in steps] == [(2, 0), (4, 2), (5, 3)]  # what was done is skipped
    assert key_counts(sessions)["staff_users.totp"] == {"p2": 5}
