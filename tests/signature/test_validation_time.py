"""Validation time vectors: the applicant is judged at the portal-signed 到達日時, the portal at ``at``.

package-format.md §4: the arrival record proves the applicant's signature existed at 到達日時, so
the signing certificate's path and revocation are judged then — the relay and the intake, which
process the same bytes at different moments, reach the same answer. A revocation dated after
到達日時 does not fail the signature, and the report says when it happened. The portal's own
certificate is validated at the time of processing. An 到達日時 after the time of processing (beyond
the allowed skew) or before 2000 is refused, never an exception.

Every vector asserts the outcome and which time the report says was used. Time is pinned: the
session's NOW, 到達日時 = NOW - 30 min (tests/conftest.py).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from signature.report import Indication, ReasonCode, SubIndication, TimeSource, VerificationReport
from signature.testing.builder import ApplicationSpec, build_package
from signature.testing.pki import Issued
from signature.verify import TrustConfig, verify_package
from tests.conftest import NOW, World

PASSED, FAILED, INDETERMINATE = Indication.PASSED, Indication.FAILED, Indication.INDETERMINATE
S, R = SubIndication, ReasonCode
ARRIVAL = NOW - timedelta(minutes=30)
Expected = tuple[Indication, SubIndication | None, ReasonCode | None]


@dataclass(frozen=True)
class Signers:
    revoked_later: Issued  # revoked 10 minutes after 到達日時, before processing
    revoked_at_arrival: Issued  # revoked at exactly 到達日時
    expired_after_arrival: Issued  # valid at 到達日時, expired 10 minutes before processing
    valid_only_after_arrival: Issued  # notBefore 10 minutes after 到達日時


@dataclass(frozen=True)
class Ctx:
    world: World
    spec: ApplicationSpec
    trust: TrustConfig  # the session's CRLs (thisUpdate NOW-6h, nextUpdate NOW+1d)
    late_trust: TrustConfig  # plus a root CRL issued after 到達日時 that lists the revocations above
    portal_revoked_trust: TrustConfig  # plus a portal-root CRL listing the portal certificate
    signers: Signers

    def build(self, *, signer: Issued | None = None, arrived_at: datetime | None = None) -> bytes:
        spec = self.spec if arrived_at is None else replace(self.spec, arrived_at=arrived_at)
        return build_package(spec, signer=signer or self.world.signer, portal=self.world.pki.portal_server)


def _copy_crls(world: World, target: Path) -> Path:
    target.mkdir()
    for source in world.crl_dir.iterdir():
        shutil.copy(source, target / source.name)
    return target


@pytest.fixture(scope="module")
def signers(world: World) -> Signers:
    serials = random.Random(5701)
    resident, key = world.residents[0], world.signer.rsa_key

    def issue(**kw: datetime) -> Issued:
        return world.pki.issue_signer(resident, key=key, serial=serials.randrange(1 << 62, 1 << 63), **kw)

    return Signers(
        revoked_later=issue(),
        revoked_at_arrival=issue(),
        expired_after_arrival=issue(not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(minutes=10)),
        valid_only_after_arrival=issue(not_before=ARRIVAL + timedelta(minutes=10), not_after=NOW + timedelta(days=400)),
    )


@pytest.fixture(scope="module")
def trusts(world: World, signers: Signers, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrustConfig, TrustConfig]:
    pki = world.pki
    late = _copy_crls(world, tmp_path_factory.mktemp("late") / "crl")
    listed = [(world.revoked_signer.cert.serial_number, NOW - timedelta(days=3)),
              (signers.revoked_later.cert.serial_number, ARRIVAL + timedelta(minutes=10)),
              (signers.revoked_at_arrival.cert.serial_number, ARRIVAL)]
    (late / "jpki-g2-after-arrival.crl").write_bytes(pki.issue_crl(
        pki.jpki_roots[1], listed, this_update=NOW - timedelta(minutes=5), next_update=NOW + timedelta(days=1)))
    portal = _copy_crls(world, tmp_path_factory.mktemp("portal") / "crl")
    (portal / "portal-root.crl").write_bytes(pki.issue_crl(
        pki.portal_root, [(pki.portal_server.cert.serial_number, ARRIVAL + timedelta(minutes=20))],
        this_update=NOW - timedelta(minutes=5), next_update=NOW + timedelta(days=1)))

    def load(crls: Path) -> TrustConfig:
        return TrustConfig.load(jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots], crls=[crls])

    return load(late), load(portal)


@pytest.fixture
def ctx(world: World, spec: ApplicationSpec, trust: TrustConfig, trusts: tuple[TrustConfig, TrustConfig],
        signers: Signers) -> Ctx:
    assert spec.arrived_at == ARRIVAL
    return Ctx(world, spec, trust, *trusts, signers)


@dataclass(frozen=True)
class Vector:
    make: Callable[[Ctx], bytes]
    expected: Expected
    at: datetime = NOW
    trust: Callable[[Ctx], TrustConfig] = lambda c: c.trust
    #: what the report must say the applicant was judged at, and by which clock
    validation_time: datetime = ARRIVAL
    source: TimeSource = TimeSource.ARRIVAL
    revoked_at: datetime | None = None
    #: the arrival record verified, so its 受付番号 is reported (even if its time is refused)
    arrival_trusted: bool = True


def late(c: Ctx) -> TrustConfig:
    return c.late_trust


VECTORS = {
    # The CRL that was current at 到達日時 decides, however late the package is processed.
    "processed-two-days-after-arrival-every-crl-expired-since": Vector(
        lambda c: c.build(), (PASSED, None, None), at=NOW + timedelta(days=2)),
    "processed-two-minutes-before-arrival-within-skew": Vector(
        lambda c: c.build(), (PASSED, None, None), at=ARRIVAL - timedelta(minutes=2)),
    # Revocation: at or before 到達日時 it counts; after, the signature stands and the report says when.
    "revoked-between-arrival-and-processing": Vector(
        lambda c: c.build(signer=c.signers.revoked_later), (PASSED, None, None), trust=late,
        revoked_at=ARRIVAL + timedelta(minutes=10)),
    "revoked-exactly-at-arrival": Vector(
        lambda c: c.build(signer=c.signers.revoked_at_arrival), (INDETERMINATE, S.REVOKED_NO_POE, R.CERT_REVOKED),
        trust=late, revoked_at=ARRIVAL),
    "revoked-before-arrival": Vector(
        lambda c: c.build(signer=c.world.revoked_signer), (INDETERMINATE, S.REVOKED_NO_POE, R.CERT_REVOKED),
        trust=late, revoked_at=NOW - timedelta(days=3)),
    "revoked-after-arrival-but-only-the-crl-current-at-arrival-is-loaded": Vector(
        lambda c: c.build(signer=c.signers.revoked_later), (PASSED, None, None)),
    # The certificate's validity is judged at 到達日時 too.
    "signer-expired-after-arrival-before-processing": Vector(
        lambda c: c.build(signer=c.signers.expired_after_arrival), (PASSED, None, None)),
    "signer-valid-only-from-after-arrival": Vector(
        lambda c: c.build(signer=c.signers.valid_only_after_arrival),
        (FAILED, S.NOT_YET_VALID, R.CERT_NOT_YET_VALID)),
    # No CRL speaks for 到達日時: stale, try later.
    "arrival-after-every-crl-next-update": Vector(
        lambda c: c.build(arrived_at=NOW + timedelta(days=2)), (INDETERMINATE, S.TRY_LATER, R.REVOCATION_UNKNOWN),
        at=NOW + timedelta(days=2, hours=1), validation_time=NOW + timedelta(days=2)),
    "arrival-before-every-crl-this-update-and-no-later-crl": Vector(
        lambda c: c.build(arrived_at=NOW - timedelta(hours=7)), (PASSED, None, None),
        validation_time=NOW - timedelta(hours=7)),  # a CRL issued after 到達日時 speaks for it
    # The portal is judged at the time of processing: revoked after it signed, still untrusted now.
    "portal-certificate-revoked-after-arrival": Vector(
        lambda c: c.build(), (INDETERMINATE, S.NO_CERTIFICATE_CHAIN_FOUND, R.ARRIVAL_UNTRUSTED),
        trust=lambda c: c.portal_revoked_trust, validation_time=NOW, source=TimeSource.PROCESSING,
        arrival_trusted=False),
    # Guards on 到達日時 itself.
    "arrival-six-minutes-after-processing": Vector(
        lambda c: c.build(), (FAILED, S.FORMAT_FAILURE, R.ARRIVAL_TIME_IN_FUTURE),
        at=ARRIVAL - timedelta(minutes=6), validation_time=ARRIVAL - timedelta(minutes=6),
        source=TimeSource.PROCESSING),
    "arrival-in-year-9999": Vector(
        lambda c: c.build(arrived_at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12)))),
        (FAILED, S.FORMAT_FAILURE, R.ARRIVAL_TIME_IN_FUTURE), validation_time=NOW, source=TimeSource.PROCESSING),
    "arrival-in-year-0001": Vector(
        lambda c: c.build(arrived_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=9)))),
        (FAILED, S.FORMAT_FAILURE, R.ARRIVAL_TIME_IMPLAUSIBLE), validation_time=NOW, source=TimeSource.PROCESSING),
    "arrival-in-1999": Vector(
        lambda c: c.build(arrived_at=datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=9)))),
        (FAILED, S.FORMAT_FAILURE, R.ARRIVAL_TIME_IMPLAUSIBLE), validation_time=NOW, source=TimeSource.PROCESSING),
}


@pytest.mark.parametrize("v", [pytest.param(v, id=name) for name, v in VECTORS.items()])
def test_validation_time(ctx: Ctx, v: Vector) -> None:
    report = verify_package(v.make(ctx), v.trust(ctx), at=v.at)
    assert (report.indication, report.sub_indication, report.reason_code) == v.expected, report.reason_en
    assert (report.validation_time, report.validation_time_source) == (v.validation_time, v.source)
    assert report.processing_time == v.at
    assert report.signer_revoked_at == v.revoked_at
    assert report.revoked_after_validation_time is (v.revoked_at is not None and v.revoked_at > v.validation_time)
    assert report.readable is True
    assert (report.arrival is not None) is v.arrival_trusted
    if v.expected[0] is PASSED:
        assert report.revocation_checked is True
        assert report.signer is not None


def test_revoked_later_is_in_the_report_text_and_json(ctx: Ctx) -> None:
    report = verify_package(ctx.build(signer=ctx.signers.revoked_later), ctx.late_trust, at=NOW)
    assert report.passed
    when = (ARRIVAL + timedelta(minutes=10)).isoformat()
    out = report.to_json()
    assert datetime.fromisoformat(out["signer_revoked_at"]) == ARRIVAL + timedelta(minutes=10)
    assert out["revoked_after_validation_time"] is True
    assert (out["validation_time_source"], out["processing_time"]) == ("arrival", NOW.isoformat())
    assert "revoked after the arrival time" in report.reason_en
    assert datetime.fromisoformat(when).astimezone(ARRIVAL.tzinfo) == ARRIVAL + timedelta(minutes=10)
    assert "失効" in report.reason_ja


def _outcome(report: VerificationReport) -> tuple[object, ...]:
    return (report.indication, report.sub_indication, report.reason_code, report.validation_time,
            report.signer_revoked_at, report.checks, report.package_sha256)


@pytest.mark.parametrize("signer", ["genuine", "revoked-later", "revoked-before"])
def test_same_bytes_same_answer_whenever_processed_after_arrival(ctx: Ctx, signer: str) -> None:
    """The relay (minutes after 到達日時) and the intake (hours or days later, after the CRL it saw
    was replaced by newer ones) give the same answer for the same bytes and trust material."""
    chosen = {"genuine": ctx.world.signer, "revoked-later": ctx.signers.revoked_later,
              "revoked-before": ctx.world.revoked_signer}[signer]
    package = ctx.build(signer=chosen)
    reports = [verify_package(package, ctx.late_trust, at=at)
               for at in (ARRIVAL, ARRIVAL + timedelta(minutes=1), NOW, NOW + timedelta(days=1),
                          NOW + timedelta(days=30))]
    assert len({_outcome(r) for r in reports}) == 1, [r.reason_en for r in reports]
    assert [r.processing_time for r in reports] == [ARRIVAL, ARRIVAL + timedelta(minutes=1), NOW,
                                                     NOW + timedelta(days=1), NOW + timedelta(days=30)]
