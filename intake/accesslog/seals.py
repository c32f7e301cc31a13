"""Seals of the access log's head, kept outside the database (issue 15 §4).

The HMAC keys (:mod:`intake.auditkeys`) stop someone who can write the database but lacks the key
from forging rows. A seal stops the rest: every so often (``python -m intake audit seal`` from a
timer) the head of an intact chain — the newest row's id and hash, the row count, where the unkeyed
rows from before the keys end — is written as a small JSON file into a directory **outside the
database**, and vouched for by

* an **Ed25519 signature** with a key the database administrator does not hold
  (``audit_seal_key_file``; verified with ``audit_seal_public_key_file`` or the key's own public
  half), and/or
* an **RFC 3161 time-stamp token** from a configured TSA (``audit_tsa_url``, verified against
  ``audit_tsa_ca_file``): proof that the seal existed at that time, by a party outside the ward's
  database.

:func:`check_seals` (run by ``python -m intake audit verify``) checks each seal's signature and token
and that the row it names still has the hash it sealed: a rewrite, a removal or a truncation of
anything up to the newest seal shows, whatever else was changed in the database. Rows newer than the
newest seal are protected by the HMAC alone; the seal interval bounds that window.

Files: ``seal-<UTC time>-<head id>.json`` (the seal), ``.sig`` (base64 Ed25519 signature of the
JSON bytes), ``.tsr`` (the DER TimeStampResp over the JSON bytes). The JSON is written last, so a seal
whose JSON exists is complete.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from rfc3161_client import TimestampRequestBuilder, VerificationError, VerifierBuilder, decode_timestamp_response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.accesslog.service import check_chain, newest_retention
from intake.durable import publish_file
from intake.errors import IntakeError
from intake.jst import require_aware
from intake.models import AccessLogRow
from intake.settings import IntakeSettings

__all__ = [
    "SEAL_FORMAT",
    "HttpTimestamper",
    "Seal",
    "SealCheck",
    "SealConfig",
    "SealConfigError",
    "SealProblem",
    "SealRefused",
    "TimestampUnavailable",
    "Timestamper",
    "check_seals",
    "seal_head",
]

SEAL_FORMAT = "shinsei-access-log-seal/1"
_MODE = 0o640


class SealConfigError(IntakeError):
    """The seal settings cannot be used (a key or CA file unreadable, no seal directory)."""

    code = "SEAL_CONFIG"


class SealRefused(IntakeError):
    """The chain is not intact: a broken chain is never sealed (it would vouch for the break)."""

    code = "CHAIN_BROKEN"


class TimestampUnavailable(IntakeError):
    """The TSA did not answer with a token that verifies: nothing was sealed."""

    code = "TSA_UNAVAILABLE"


class Timestamper(Protocol):
    """Asks a time-stamping authority for a token over ``data``: the DER ``TimeStampResp``."""

    def stamp(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class HttpTimestamper:
    """RFC 3161 over HTTP (``application/timestamp-query``), with a timeout, no proxy from the
    environment, no redirects. The TSA is inside the My Number zone: the intake reaches nothing else."""

    url: str
    timeout: float = 30.0

    def stamp(self, data: bytes) -> bytes:
        request = TimestampRequestBuilder().data(data).cert_request(cert_request=True).build()
        try:
            answer = httpx.post(self.url, content=request.as_bytes(), timeout=self.timeout, trust_env=False,
                                headers={"Content-Type": "application/timestamp-query"})
        except httpx.HTTPError as exc:
            raise TimestampUnavailable(f"TSA not reachable ({type(exc).__name__})") from exc
        if answer.status_code != 200:
            raise TimestampUnavailable(f"TSA answered HTTP {answer.status_code}")
        return answer.content


@dataclass(frozen=True)
class SealConfig:
    """Where seals go and what vouches for them (built from the settings)."""

    directory: Path | None
    signing_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    public_key: Ed25519PublicKey | None = None
    timestamper: Timestamper | None = None
    tsa_roots: tuple[x509.Certificate, ...] = ()

    @property
    def configured(self) -> bool:
        """A directory and at least one way to vouch for a seal (signature or time stamp)."""
        return self.directory is not None and (self.signing_key is not None or self.timestamper is not None)

    @classmethod
    def from_settings(cls, settings: IntakeSettings) -> SealConfig:
        signing = _private_key(settings.audit_seal_key_file) if settings.audit_seal_key_file else None
        public = _public_key(settings.audit_seal_public_key_file) if settings.audit_seal_public_key_file else None
        if public is None and signing is not None:
            public = signing.public_key()
        roots: tuple[x509.Certificate, ...] = ()
        if settings.audit_tsa_ca_file is not None:
            try:
                roots = tuple(x509.load_pem_x509_certificates(settings.audit_tsa_ca_file.read_bytes()))
            except (OSError, ValueError) as exc:
                raise SealConfigError(f"audit_tsa_ca_file cannot be read ({type(exc).__name__})") from exc
        stamper = (HttpTimestamper(settings.audit_tsa_url, settings.audit_tsa_timeout)
                   if settings.audit_tsa_url else None)
        return cls(settings.audit_seal_dir, signing, public, stamper, roots)


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SealConfigError(f"audit_seal_key_file cannot be read ({type(exc).__name__})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SealConfigError("audit_seal_key_file must hold an Ed25519 private key "
                              "(openssl genpkey -algorithm ed25519)")
    return key


def _public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SealConfigError(f"audit_seal_public_key_file cannot be read ({type(exc).__name__})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SealConfigError("audit_seal_public_key_file must hold an Ed25519 public key")
    return key


@dataclass(frozen=True)
class Seal:
    """One seal as written (and read back)."""

    name: str
    sealed_at: datetime
    head_id: int
    head_hash: str
    rows: int
    #: the id of the last row from before the keys (``key_id`` NULL); 0: none
    unkeyed_through: int
    anchor_through_id: int | None
    key_id: str

    def to_json(self) -> dict[str, Any]:
        return {"format": SEAL_FORMAT, "sealed_at": self.sealed_at.astimezone(UTC).isoformat(),
                "head_id": self.head_id, "head_hash": self.head_hash, "rows": self.rows,
                "unkeyed_through": self.unkeyed_through, "anchor_through_id": self.anchor_through_id,
                "key_id": self.key_id}

    @classmethod
    def from_json(cls, name: str, data: Any) -> Seal:
        if not isinstance(data, dict) or data.get("format") != SEAL_FORMAT:
            raise ValueError("not a seal")
        anchor = data["anchor_through_id"]
        return cls(name, datetime.fromisoformat(str(data["sealed_at"])), int(data["head_id"]), str(data["head_hash"]),
                   int(data["rows"]), int(data["unkeyed_through"]), None if anchor is None else int(anchor),
                   str(data["key_id"]))


def _encode(seal: Seal) -> bytes:
    return json.dumps(seal.to_json(), sort_keys=True, separators=(",", ":")).encode()


def _unkeyed_through(session: Session) -> int:
    return session.scalar(select(func.max(AccessLogRow.id)).where(AccessLogRow.key_id.is_(None))) or 0


def seal_head(session: Session, config: SealConfig, *, at: datetime, key_id: str) -> Seal:
    """Check the whole chain and seal its head; :class:`SealRefused` if the chain is not intact,
    :class:`TimestampUnavailable` if the TSA fails (nothing is written then), :class:`SealConfigError`
    without a configuration. ``key_id``: the active access-log key (recorded, not secret)."""
    require_aware(at)
    if not config.configured or config.directory is None:
        raise SealConfigError("no seal configuration: audit_seal_dir and audit_seal_key_file or audit_tsa_url")
    newest = _newest(_read_all(config.directory))
    expected = (newest.head_id, newest.head_hash) if newest is not None else None
    check = check_chain(session, expected_head=expected)
    if not check.intact or check.last_id is None or check.last_hash is None:
        raise SealRefused("the access log's chain is not intact (or empty): run audit verify")
    seal = Seal(name=f"seal-{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{check.last_id}", sealed_at=at,
                head_id=check.last_id, head_hash=check.last_hash, rows=check.rows,
                unkeyed_through=_unkeyed_through(session), anchor_through_id=check.anchor_through_id, key_id=key_id)
    body = _encode(seal)
    token = None
    if config.timestamper is not None:
        token = config.timestamper.stamp(body)
        problem = _token_problem(token, body, config.tsa_roots)
        if problem is not None:
            raise TimestampUnavailable(f"the TSA's token does not verify ({problem})")
    directory = config.directory
    try:
        if config.signing_key is not None:
            publish_file(directory, seal.name + ".sig", base64.b64encode(config.signing_key.sign(body)), mode=_MODE)
        if token is not None:
            publish_file(directory, seal.name + ".tsr", token, mode=_MODE)
        publish_file(directory, seal.name + ".json", body, mode=_MODE)  # last: a seal with its JSON is complete
    except OSError as exc:
        raise SealConfigError(f"the seal cannot be written to audit_seal_dir ({type(exc).__name__})") from exc
    return seal


def _token_problem(token: bytes, body: bytes, roots: tuple[x509.Certificate, ...]) -> str | None:
    if not roots:
        return "no TSA CA configured"
    try:
        response = decode_timestamp_response(token)
        builder = VerifierBuilder()
        for root in roots:
            builder = builder.add_root_certificate(root)
        builder.build().verify_message(response, body)
    except (VerificationError, ValueError) as exc:
        return type(exc).__name__
    return None


# --- checking -------------------------------------------------------------------------------------


class SealProblem(enum.StrEnum):
    UNREADABLE = "unreadable"  # not a seal file of this format
    SIGNATURE_MISSING = "signature_missing"  # a verifying key is configured, the seal has no .sig
    SIGNATURE_INVALID = "signature_invalid"
    TIMESTAMP_MISSING = "timestamp_missing"  # a TSA CA is configured, the seal has no .tsr
    TIMESTAMP_INVALID = "timestamp_invalid"
    UNVOUCHED = "unvouched"  # neither a signature nor a time stamp could be checked
    ROW_MISSING = "row_missing"  # the sealed head row is gone (and was not purged)
    ROW_CHANGED = "row_changed"  # the sealed head row has another hash now
    HEAD_BEHIND = "head_behind"  # the log ends before the newest seal's head: its end was cut off
    UNKEYED_EXTENDED = "unkeyed_extended"  # unkeyed rows reach beyond where a seal said they end
    NO_CONFIGURATION = "no_configuration"  # nothing to check seals with


@dataclass(frozen=True)
class SealCheck:
    """What :func:`check_seals` found: ``(seal name, problem)`` pairs; clean when empty."""

    seals: int
    newest: Seal | None
    problems: tuple[tuple[str, SealProblem], ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def _read_all(directory: Path) -> list[Seal | tuple[str, SealProblem]]:
    found: list[Seal | tuple[str, SealProblem]] = []
    for path in sorted(directory.glob("seal-*.json")):
        name = path.name.removesuffix(".json")
        try:
            found.append(Seal.from_json(name, json.loads(path.read_bytes())))
        except (OSError, ValueError, KeyError, TypeError):
            found.append((name, SealProblem.UNREADABLE))
    return found


def _newest(items: list[Seal | tuple[str, SealProblem]]) -> Seal | None:
    seals = [s for s in items if isinstance(s, Seal)]
    return max(seals, key=lambda s: (s.head_id, s.sealed_at)) if seals else None


def check_seals(session: Session, config: SealConfig, *, require: bool) -> SealCheck:
    """Check every seal in the directory against its signature, its token and the database.
    ``require``: a missing configuration is itself a problem (production)."""
    if config.directory is None or (config.public_key is None and not config.tsa_roots):
        return SealCheck(0, None, (("-", SealProblem.NO_CONFIGURATION),) if require else ())
    items = _read_all(config.directory)
    problems: list[tuple[str, SealProblem]] = [i for i in items if not isinstance(i, Seal)]
    seals = [i for i in items if isinstance(i, Seal)]
    anchor = newest_retention(session)
    purged_through = anchor.purged_through_id if anchor is not None else 0
    db_head = session.scalar(select(func.max(AccessLogRow.id))) or 0
    unkeyed = _unkeyed_through(session)
    for seal in seals:
        problems.extend((seal.name, p) for p in _vouch(config, seal))
        if seal.head_id > purged_through:
            stored = session.scalar(select(AccessLogRow.hash).where(AccessLogRow.id == seal.head_id))
            if stored is None:
                problems.append((seal.name, SealProblem.ROW_MISSING if seal.head_id <= db_head
                                 else SealProblem.HEAD_BEHIND))
            elif stored != seal.head_hash:
                problems.append((seal.name, SealProblem.ROW_CHANGED))
        elif seal.head_id == purged_through and anchor is not None and anchor.last_hash != seal.head_hash:
            problems.append((seal.name, SealProblem.ROW_CHANGED))
        if unkeyed > max(seal.unkeyed_through, purged_through):
            problems.append((seal.name, SealProblem.UNKEYED_EXTENDED))
    return SealCheck(len(seals), _newest(items), tuple(problems))


def _vouch(config: SealConfig, seal: Seal) -> list[SealProblem]:
    assert config.directory is not None  # noqa: S101 - checked by the caller
    body_path = config.directory / (seal.name + ".json")
    body = body_path.read_bytes()
    problems: list[SealProblem] = []
    checked = False
    if config.public_key is not None:
        sig_path = config.directory / (seal.name + ".sig")
        if not sig_path.exists():
            problems.append(SealProblem.SIGNATURE_MISSING)
        else:
            try:
                config.public_key.verify(base64.b64decode(sig_path.read_bytes(), validate=True), body)
                checked = True
            except (InvalidSignature, binascii.Error, ValueError):
                problems.append(SealProblem.SIGNATURE_INVALID)
    if config.tsa_roots:
        tsr_path = config.directory / (seal.name + ".tsr")
        if not tsr_path.exists():
            problems.append(SealProblem.TIMESTAMP_MISSING)
        elif _token_problem(tsr_path.read_bytes(), body, config.tsa_roots) is not None:
            problems.append(SealProblem.TIMESTAMP_INVALID)
        else:
            checked = True
    if not checked and not problems:
        problems.append(SealProblem.UNVOUCHED)
    return problems

