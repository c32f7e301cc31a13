"""Issue 15 §4: the access log keyed with HMAC under a key the database does not hold, and its head
sealed outside the database (Ed25519 signature, RFC 3161 time stamp from a real local TSA).

The proof the issue asks for: `python -m intake audit verify` detects a rewrite of the whole tail of
the chain by someone who can write the database but does not hold the key — and a seal detects even
a rewrite by someone who holds the key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from intake.accesslog.checks import CHECK_EVENT
from intake.accesslog.seals import SealConfig, SealProblem, SealRefused, check_seals, seal_head
from intake.accesslog.service import GENESIS, ChainProblem, append_access, check_chain
from intake.auditkeys import AccessLogKeys
from intake.authz import Actor
from intake.db import make_engine, make_session_factory
from intake.migrate import upgrade
from intake.models import AccessLogRow, Event
from intake.settings import IntakeSettings
from tests.conftest import NOW
from tests.intake.accessrows import committed_ids
from tests.support.tsa import LocalTsa, local_tsa

ACTOR = Actor(staff_id="tanaka", department="kodomo", terminal="ip:127.0.0.1")
KEY = base64.b64encode(hashlib.sha256(b"test access-log key (not a real key)").digest()).decode()
GUESSED = base64.b64encode(hashlib.sha256(b"an attacker's guess").digest()).decode()
KEYS = AccessLogKeys.from_base64({"k1": KEY}, "k1")


def _rows(session: Session, n: int, start: int = 0) -> list[int]:
    for i in range(start, start + n):
        append_access(session, actor=ACTOR, at=NOW + timedelta(minutes=i), action="application.view",
                      subject=f"application:{i}", atena_number="1234567890", reason=f"閲覧 {i}")
    return committed_ids(session, n)


def _body(row: AccessLogRow) -> bytes:
    """What an attacker who read intake/accesslog/service.py would hash."""
    from datetime import UTC
    return json.dumps([row.at.astimezone(UTC).isoformat(), row.staff_id, row.department, row.terminal, row.action,
                       row.reason, row.atena_number, row.subject, row.prev_hash],
                      ensure_ascii=False, separators=(",", ":")).encode()


def rewrite_tail(session: Session, from_id: int, *, keys: AccessLogKeys | None, key_id: str | None) -> None:
    """Alter the row ``from_id`` and re-chain it and every row after it, as someone with database
    access does: with ``keys`` (HMAC under ``key_id``), or without any (plain SHA-256, key_id NULL)."""
    rows = session.scalars(select(AccessLogRow).where(AccessLogRow.id >= from_id).order_by(AccessLogRow.id)).all()
    prev = session.scalar(select(AccessLogRow.hash).where(AccessLogRow.id < from_id)
                          .order_by(AccessLogRow.id.desc()).limit(1)) or GENESIS
    rows[0].reason = "書き換え"
    for row in rows:
        row.prev_hash = prev
        row.key_id = key_id
        row.hash = (hashlib.sha256(_body(row)).hexdigest() if keys is None or key_id is None
                    else keys.mac(key_id, _body(row)))
        prev = row.hash
    session.commit()


# --- the chain under its key ------------------------------------------------------------------------


@pytest.fixture
def keyed(engine: Engine) -> Iterator[Session]:
    with make_session_factory(engine, access_log_keys=KEYS)() as s:
        yield s


def test_rows_are_keyed_and_verify_only_under_their_key(engine: Engine, keyed: Session) -> None:
    ids = _rows(keyed, 4)
    assert set(keyed.scalars(select(AccessLogRow.key_id))) == {"k1"}
    assert check_chain(keyed).intact
    other = AccessLogKeys.from_base64({"k1": GUESSED}, "k1")
    with make_session_factory(engine, access_log_keys=other)() as s:
        assert check_chain(s).broken == tuple(ids)  # every row: the same fields, another key
    with make_session_factory(engine, access_log_keys=AccessLogKeys.from_base64({"k2": GUESSED}, "k2"))() as s:
        check = check_chain(s)
        assert ChainProblem.UNKNOWN_KEY in check.problems
        assert check.broken == tuple(ids)


@pytest.mark.parametrize(("how", "key_id"), [("unkeyed", None), ("guessed key", "k1")])
def test_a_rewritten_tail_without_the_key_is_detected(keyed: Session, how: str, key_id: str | None) -> None:
    ids = _rows(keyed, 6)
    rewrite_tail(keyed, ids[2], keys=None if how == "unkeyed" else AccessLogKeys.from_base64({"k1": GUESSED}, "k1"),
                 key_id=key_id)
    check = check_chain(keyed)
    assert check.broken == tuple(ids[2:])
    assert (ChainProblem.UNKEYED_ROW in check.problems) is (how == "unkeyed")


def test_the_same_rewrite_with_the_key_passes_the_chain_check(keyed: Session) -> None:
    """The control: the rewrite above fails for want of the key alone — so the key's custody is
    what protects the log (docs/operations.md), and seals protect it even from the key's holder."""
    ids = _rows(keyed, 6)
    rewrite_tail(keyed, ids[2], keys=KEYS, key_id="k1")
    assert check_chain(keyed).intact


def test_unkeyed_rows_from_before_the_keys_verify_up_to_the_configured_id(engine: Engine) -> None:
    """An installation upgraded to keyed hashes: its old rows are plain SHA-256 and stay valid up to
    ``access_log_unkeyed_through`` (a setting, not a database value); beyond it they are a break."""
    with make_session_factory(engine, access_log_keys=KEYS)() as s:
        ids = _rows(s, 5)
        rewrite_tail(s, ids[0], keys=None, key_id=None)  # the five rows as the code before the keys wrote them
        assert check_chain(s).broken == tuple(ids)
    upgraded = AccessLogKeys.from_base64({"k1": KEY}, "k1", unkeyed_through=ids[-1])
    with make_session_factory(engine, access_log_keys=upgraded)() as s:
        assert check_chain(s).intact
        _rows(s, 2, start=10)  # new rows are keyed and chain on
        assert check_chain(s).intact
    partly = AccessLogKeys.from_base64({"k1": KEY}, "k1", unkeyed_through=ids[2])
    with make_session_factory(engine, access_log_keys=partly)() as s:
        check = check_chain(s)
        assert check.broken == tuple(ids[3:])
        assert ChainProblem.UNKEYED_ROW in check.problems


# --- the command line, as an operator runs it -------------------------------------------------------


def _intake(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path / "tsa") as served:
        yield served


def _seal_key(path: Path) -> Path:
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


@pytest.fixture
def env(empty_database: str, tmp_path: Path, tsa: LocalTsa) -> dict[str, str]:
    keys_file = tmp_path / "access-log-keys.json"
    keys_file.write_text(json.dumps({"keys": {"k1": KEY}, "active": "k1"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({
        "SHINSEI_INTAKE_ENVIRONMENT": "development", "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
        "SHINSEI_INTAKE_DATABASE_URL": empty_database,
        "SHINSEI_INTAKE_ACCESS_LOG_KEYS_FILE": str(keys_file),
        "SHINSEI_INTAKE_AUDIT_SEAL_DIR": str(tmp_path / "seals"),
        "SHINSEI_INTAKE_AUDIT_SEAL_KEY_FILE": str(_seal_key(tmp_path / "seal.key")),
        "SHINSEI_INTAKE_AUDIT_TSA_URL": tsa.url, "SHINSEI_INTAKE_AUDIT_TSA_CA_FILE": str(tsa.ca_file),
    })
    (tmp_path / "seals").mkdir()
    upgrade(empty_database)
    return env


def test_audit_verify_detects_a_rewrite_of_the_whole_tail_by_someone_without_the_key(
    env: dict[str, str], empty_database: str,
) -> None:
    engine = make_engine(empty_database)
    try:
        with make_session_factory(engine, access_log_keys=KEYS)() as s:
            ids = _rows(s, 8)
        ok = _intake(env, "audit", "verify")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        with make_session_factory(engine)() as s:  # the insider: database access, no key
            rewrite_tail(s, ids[3], keys=None, key_id=None)
        broken = _intake(env, "audit", "verify")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"broken at row id(s): {' '.join(map(str, ids[3:]))}" in broken.stdout
        assert "unkeyed_row" in broken.stdout
    finally:
        engine.dispose()


def test_seal_then_verify_and_a_rewrite_by_the_key_holder_shows_at_the_seal(
    env: dict[str, str], empty_database: str, tsa: LocalTsa, tmp_path: Path,
) -> None:
    engine = make_engine(empty_database)
    try:
        with make_session_factory(engine, access_log_keys=KEYS)() as s:
            ids = _rows(s, 5)
        sealed = _intake(env, "audit", "seal")
        assert sealed.returncode == 0, sealed.stdout + sealed.stderr
        assert f"sealed row id {ids[-1]}" in sealed.stdout
        assert tsa.issued == [1]
        names = sorted(p.name for p in (tmp_path / "seals").iterdir())
        assert [n.rsplit(".", 1)[1] for n in names] == ["json", "sig", "tsr"]
        with make_session_factory(engine, access_log_keys=KEYS)() as s:
            _rows(s, 2, start=10)  # rows after the seal
        ok = _intake(env, "audit", "verify")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "1 seal(s) checked" in ok.stdout
        with make_session_factory(engine, access_log_keys=KEYS)() as s:  # the key holder rewrites history
            s.execute(delete(Event).where(Event.kind == CHECK_EVENT))  # and the recorded checks with it
            rewrite_tail(s, ids[1], keys=KEYS, key_id="k1")
        found = _intake(env, "audit", "verify")
        assert found.returncode == 1, found.stdout
        assert "row_changed" in found.stdout
        assert "access log chain broken" not in found.stdout  # the chain itself verifies: only the seal tells
    finally:
        engine.dispose()


def test_audit_seal_refuses_a_broken_chain(env: dict[str, str], empty_database: str, tmp_path: Path) -> None:
    engine = make_engine(empty_database)
    try:
        with make_session_factory(engine, access_log_keys=KEYS)() as s:
            ids = _rows(s, 3)
            s.execute(update(AccessLogRow).where(AccessLogRow.id == ids[1]).values(reason="改ざん"))
            s.commit()
        refused = _intake(env, "audit", "seal")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert list((tmp_path / "seals").iterdir()) == []
    finally:
        engine.dispose()


# --- seals in process: every way a seal or its row can be wrong --------------------------------------


@pytest.fixture
def config(tmp_path: Path, tsa: LocalTsa) -> SealConfig:
    settings = IntakeSettings(
        environment="development", var_dir=tmp_path / "var", audit_seal_dir=tmp_path / "seals",
        audit_seal_key_file=_seal_key(tmp_path / "seal.key"), audit_tsa_url=tsa.url, audit_tsa_ca_file=tsa.ca_file)
    (tmp_path / "seals").mkdir()
    return SealConfig.from_settings(settings)


def test_seal_problems(keyed: Session, config: SealConfig, tmp_path: Path) -> None:
    ids = _rows(keyed, 4)
    seal = seal_head(keyed, config, at=NOW, key_id="k1")
    assert (seal.head_id, seal.rows, seal.unkeyed_through) == (ids[-1], 4, 0)
    assert check_seals(keyed, config, require=True).intact
    seals = tmp_path / "seals"

    # a forged seal file: neither its signature nor its time stamp matches the changed bytes
    body = json.loads((seals / f"{seal.name}.json").read_text())
    original = (seals / f"{seal.name}.json").read_bytes()
    body["head_hash"] = "0" * 64
    (seals / f"{seal.name}.json").write_text(json.dumps(body, sort_keys=True, separators=(",", ":")))
    problems = {p for _, p in check_seals(keyed, config, require=True).problems}
    assert problems == {SealProblem.SIGNATURE_INVALID, SealProblem.TIMESTAMP_INVALID, SealProblem.ROW_CHANGED}
    (seals / f"{seal.name}.json").write_bytes(original)

    # a seal without its signature or token
    (seals / f"{seal.name}.sig").rename(seals / "kept.sig")
    assert {p for _, p in check_seals(keyed, config, require=True).problems} == {SealProblem.SIGNATURE_MISSING}
    (seals / "kept.sig").rename(seals / f"{seal.name}.sig")
    assert check_seals(keyed, config, require=True).intact

    # the end of the log cut off, back to before the sealed head
    keyed.execute(AccessLogRow.__table__.delete().where(AccessLogRow.id >= ids[2]))
    keyed.commit()
    assert check_chain(keyed).intact  # a shorter chain is still a chain
    assert {p for _, p in check_seals(keyed, config, require=True).problems} == {SealProblem.HEAD_BEHIND}
    with pytest.raises(SealRefused):  # and no new seal vouches for the shortened log
        seal_head(keyed, config, at=NOW, key_id="k1")


def test_without_configuration_production_reports_it(keyed: Session, tmp_path: Path) -> None:
    none = SealConfig(directory=None)
    assert check_seals(keyed, none, require=False).intact
    assert [p for _, p in check_seals(keyed, none, require=True).problems] == [SealProblem.NO_CONFIGURATION]


# --- production refuses to run without a key of its own ---------------------------------------------


def test_production_needs_a_real_access_log_key(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from intake.auditkeys import development_access_log_key

    base = dict(environment="production", var_dir=tmp_path)
    with pytest.raises(ValidationError, match="access_log_keys is required"):
        IntakeSettings(**base)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"access_log_keys\[dev1\] is a public key"):
        IntakeSettings(**base, access_log_keys={"dev1": development_access_log_key()})  # type: ignore[arg-type]
    keys_file = tmp_path / "k.json"
    keys_file.write_text(json.dumps({"keys": {"a1": base64.b64encode(os.urandom(32)).decode()}, "active": "a1"}))
    with pytest.raises(ValidationError) as refused:
        IntakeSettings(**base, access_log_keys_file=keys_file)  # type: ignore[arg-type]
    assert "access_log" not in str(refused.value)  # the key from the file is accepted (other settings are not)
