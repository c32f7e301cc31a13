"""``python -m portal_sim generate``: population, PKI, CRLs, stream and packages into a data directory.

Order of work, and why:

1. plan the population and the stream (cheap, seeded: :mod:`portal_sim.population`,
   :mod:`portal_sim.stream`);
2. derive every RSA key from the seed (slow; cached and parallel: :mod:`portal_sim.keys`);
3. build the JPKI-TEST and PORTAL-TEST hierarchies with those keys, issue each card's signing
   certificate and one CRL per root generation;
4. build the packages (parallel, each a pure function of its plan) and write everything through
   :class:`~portal_sim.datadir.DataDirWriter`, which renames the finished tree into place.

The output depends only on the options (and the versions of the libraries): never on the wall
clock, the key cache, the number of worker processes or dict/set ordering.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time as _time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tqdm import tqdm  # type: ignore[import-untyped]  # tqdm ships no type information

from portal_sim.datadir import (
    FORMAT_VERSION,
    JST,
    MUNICIPALITY_CODE,
    ApplicationRecord,
    Counts,
    DataDir,
    DataDirWriter,
    Manifest,
    ResidentRecord,
    UserCert,
)
from portal_sim.errors import PortalSimError
from portal_sim.keys import KeyDeriver
from portal_sim.packaging import PackageJob, build_package_bytes
from portal_sim.population import Person, make_population
from portal_sim.procedures import PROCEDURES, procedure
from portal_sim.seeds import rng_for
from portal_sim.stream import PlannedApplication, plan_stream
from signature.testing.pki import KEY_PURPOSES, Issued, TestPKI

__all__ = ["CRL_GRACE", "GenerateOptions", "InvalidOptions", "api_key_for", "generate"]

_log = logging.getLogger(__name__)

#: How long after the period the CRLs stay current (nextUpdate = end of period + this).
CRL_GRACE = timedelta(days=7)
#: The longest period: certificates of the previous root generation must outlive it.
MAX_DAYS = 363
_PARALLEL_THRESHOLD = 200  # fewer packages than this are built in-process


class InvalidOptions(PortalSimError):
    """Generation options out of range."""


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    """What to generate. The period starts at 00:00 JST on ``start`` and lasts ``days`` days."""

    start: date
    residents: int = 300
    applications: int = 1000
    seed: int = 0
    days: int = 30
    defect_rate: float = 0.05

    def __post_init__(self) -> None:
        if self.residents < 1:
            raise InvalidOptions("--residents must be at least 1")
        if self.applications < 0:
            raise InvalidOptions("--applications must not be negative")
        if not 1 <= self.days <= MAX_DAYS:
            raise InvalidOptions(f"--days must be between 1 and {MAX_DAYS}")
        if not 0.0 <= self.defect_rate <= 1.0:
            raise InvalidOptions("--defect-rate must be between 0 and 1")

    @property
    def period_start(self) -> datetime:
        return datetime.combine(self.start, time(0, 0), JST)

    @property
    def period_end(self) -> datetime:
        return self.period_start + timedelta(days=self.days)


def api_key_for(seed: int) -> str:
    """The portal API key of a data directory: 32 hex digits derived from the seed."""
    return hashlib.sha256(f"portal_sim/api-key/{seed}".encode()).hexdigest()[:32]


def _bar(total: int, desc: str, enabled: bool) -> Any:
    return tqdm(total=total, desc=desc, unit="", file=sys.stderr, disable=not enabled, leave=False,
                dynamic_ncols=True)


def generate(
    out: Path,
    options: GenerateOptions,
    *,
    key_cache: Path | None = None,
    jobs: int = 1,
    progress: bool = False,
    timings: dict[str, float] | None = None,
) -> DataDir:
    """Generate a complete data directory at ``out`` (which must not exist or be empty).

    ``timings``, when given, receives the duration in seconds of each phase (``plan``, ``keys``,
    ``pki``, ``packages``, ``finish``), measured with a monotonic clock that never reaches the output.
    """
    clock = _Phases(timings)
    start, end = options.period_start, options.period_end
    # Root generation 1 ends 365 days after the PKI's "now" (= start); its certificates end a day before.
    g1_last_day = start.date() + timedelta(days=364)
    people = make_population(rng_for(options.seed, "population"), options.residents,
                             start=start, end=end, g1_expiry=g1_last_day)
    plan = plan_stream(rng_for(options.seed, "stream"), people, count=options.applications, start=start,
                       days=options.days, defect_rate=options.defect_rate)
    clock.done("plan")

    deriver = KeyDeriver(options.seed, cache_dir=key_cache, jobs=jobs)
    labels = [f"ca/{purpose}" for purpose in KEY_PURPOSES] + [c.key_label for p in people for c in p.cards]
    with _bar(len(labels), "RSA keys", progress) as bar:
        derived = deriver.derive_all(labels, progress=bar.update)
    _log.info("keys: %d needed, %d derived, %d from the cache", len(labels), derived, len(labels) - derived)
    clock.done("keys")

    pki = TestPKI.generate(now=start, seed=options.seed, key_source=lambda purpose: deriver.key(f"ca/{purpose}"))
    signers: dict[str, Issued] = {}
    for person in people:
        for card in person.cards:
            signers[card.key_label] = pki.issue_signer(
                person.identity, issuer=pki.jpki_roots[card.issuer_generation - 1], not_before=card.issued_at,
                not_after=card.expires_at, key=deriver.key(card.key_label),
            )

    with DataDirWriter(out) as writer:
        revoked_total = 0
        for generation, root in enumerate(pki.jpki_roots, start=1):
            revoked = sorted(
                (signers[c.key_label].cert.serial_number, c.revoked_at)
                for p in people for c in p.cards
                if c.issuer_generation == generation and c.revoked_at is not None
            )
            revoked_total += len(revoked)
            # One CRL for the whole period. Each entry carries its real revocation date, so "revoked
            # at T?" is answered right for any T in the period (docs/portal-sim.md, "PKI and CRLs").
            der = pki.issue_crl(root, revoked, this_update=start - timedelta(days=1), next_update=end + CRL_GRACE)
            writer.write_crl(f"jpki-root-g{generation}.crl", der)
        clock.done("pki")

        records = []
        with _bar(len(plan), "packages", progress) as bar:
            for item, data in zip(plan, _build_all(plan, people, signers, pki.portal_server, jobs), strict=True):
                person = people[item.person_index]
                proc = procedure(item.procedure_id)
                records.append(ApplicationRecord(
                    receipt_number=item.receipt_number, arrived_at=item.arrived_at,
                    procedure_id=proc.procedure_id, procedure_name=proc.procedure_name,
                    department=proc.department, kind=item.kind, first_receipt_number=item.first_receipt_number,
                    defect=item.defect, package=writer.write_package(item.receipt_number, data),
                    sha256=hashlib.sha256(data).hexdigest(), size=len(data), resident_id=person.resident_id,
                ))
                bar.update(1)
        clock.done("packages")
        writer.write_applications(records)
        writer.write_residents(_resident_record(p, signers) for p in people)
        pki.save(writer.pki_dir)
        kinds = Counter(r.kind.value for r in records)
        defects = Counter(r.defect.value for r in records if r.defect is not None)
        manifest = Manifest(
            format=FORMAT_VERSION,
            seed=options.seed,
            municipality_code=MUNICIPALITY_CODE,
            api_key=api_key_for(options.seed),
            generated_for=start,
            counts=Counts(
                residents=len(people),
                applications=len(records),
                defective=sum(defects.values()),
                signing_certificates=len(signers),
                revoked_signing_certificates=revoked_total,
                by_kind={k: kinds[k] for k in sorted(kinds)},
                by_defect={k: defects[k] for k in sorted(defects)},
            ),
            days=options.days,
            defect_rate=options.defect_rate,
            procedures=tuple(p.entry() for p in PROCEDURES),
        )
        result = writer.commit(manifest)
    clock.done("finish")
    _log.info("generated %d applications (%d defective) for %d residents", len(records),
              manifest.counts.defective, len(people))
    return result


class _Phases:
    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self.mark = _time.perf_counter()

    def done(self, phase: str) -> None:
        now = _time.perf_counter()
        if self.sink is not None:
            self.sink[phase] = now - self.mark
        self.mark = now


def _resident_record(person: Person, signers: dict[str, Issued]) -> ResidentRecord:
    identity = person.identity
    return ResidentRecord(
        resident_id=person.resident_id,
        atena_number=person.atena_number,
        my_number=person.my_number,
        name=identity.name,
        name_kana=identity.name_kana,
        sex=identity.sex,
        birth_date=identity.birth_date,
        address=identity.address,
        name_alt=identity.name_alt,
        address_alt=identity.address_alt,
        user_certs=tuple(UserCert(c.user_serial, c.issued_at.date(), c.expires_on, c.revoked_at)
                         for c in person.cards),
        signing_cert_serials=tuple(signers[c.key_label].serial_hex for c in person.cards),
        household=person.household,
    )


# -- building packages, in-process or in worker processes -----------------------------------------

_Pem = tuple[bytes, bytes]  # (certificate DER, PKCS#8 key DER): how keys travel to worker processes
_worker: dict[str, Any] = {}


def _export(issued: Issued) -> _Pem:
    key = issued.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return issued.cert_der(), key


def _import(pair: _Pem) -> Issued:
    # Keys this module exported a moment ago: the expensive RSA consistency checks are skipped.
    key = serialization.load_der_private_key(pair[1], password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("not an RSA key")
    return Issued(x509.load_der_x509_certificate(pair[0]), key)


def _init_worker(people: list[Person], signers: dict[str, _Pem], portal: _Pem) -> None:
    _worker["people"] = people
    _worker["signers"] = {label: _import(pair) for label, pair in signers.items()}
    _worker["portal"] = _import(portal)


def _build_one(item: PlannedApplication, people: Sequence[Person], signers: dict[str, Issued], portal: Issued) -> bytes:
    person = people[item.person_index]
    job = PackageJob(item, person, person.cards[item.card_index].user_serial)
    return build_package_bytes(job, signer=signers[job.card_label], portal=portal)


def _build_in_worker(item: PlannedApplication) -> bytes:
    return _build_one(item, _worker["people"], _worker["signers"], _worker["portal"])


def _build_all(
    plan: Sequence[PlannedApplication], people: list[Person], signers: dict[str, Issued], portal: Issued, jobs: int,
) -> Iterator[bytes]:
    """The packages of ``plan``, in plan order."""
    if jobs <= 1 or len(plan) < _PARALLEL_THRESHOLD:
        for item in plan:
            yield _build_one(item, people, signers, portal)
        return
    exported = {label: _export(issued) for label, issued in signers.items()}
    # "spawn": the workers inherit no locks, threads or open files of the parent.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(people, exported, _export(portal))) as pool:
        yield from pool.map(_build_in_worker, plan, chunksize=64)
