"""Every column a delivery fills from a package, at its limit and past it, on SQLite and PostgreSQL.

SQLite does not enforce ``VARCHAR(n)``; PostgreSQL raises ``StringDataRightTruncation``, which would
fail the whole delivery. So each value a resident (or the portal on their behalf) controls is either
stored whole however long it is (an attachment's file name: the column is ``TEXT``), kept as a bounded search
key beside the whole value (the フリガナ), or bounded by the package format and refused before
anything is written — 422 ``PACKAGE_VALUE_OUT_OF_RANGE``, a documented refusal
(:mod:`intake.deliveries.admission`) — while a value exactly at the limit is stored. Real signed
packages; the at-limit cases are what prove that the check and the column agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.applications.listing import ListFilters, list_applications
from intake.applications.service import download_attachment
from intake.deliveries.admission import OUT_OF_RANGE
from intake.deliveries.errors import DeliveryRefused
from intake.deliveries.service import expected_key, store_delivery
from intake.forwarding.payload import build_payload
from intake.forwarding.routes import parse_routes
from intake.kana import search_key
from intake.models import (
    ApplicantKey,
    Application,
    ApplicationVersion,
    Attachment,
    Delivery,
    Event,
    SignerIdentityRow,
)
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from signature.testing.builder import Attachment as SpecAttachment
from signature.testing.pki import Issued
from signature.testing.samples import sample_pdf
from status import Role
from tests.conftest import NOW, PackageFactory, World
from tests.intake.staffdata import principal

REVIEWER = principal(Role.REVIEWER, login="reviewer1")


def deliver(session: Session, runtime: Runtime, body: bytes) -> None:
    store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay-test", relay_report=None)
    session.commit()


def refused(session: Session, runtime: Runtime, body: bytes) -> DeliveryRefused:
    with pytest.raises(DeliveryRefused) as caught:
        deliver(session, runtime, body)
    session.rollback()
    return caught.value


def stored_count(session: Session) -> int:
    return sum(session.scalar(select(func.count()).select_from(model)) or 0
               for model in (Delivery, Application, ApplicationVersion, Attachment, SignerIdentityRow, Event))


# --- stored whole, however long ---------------------------------------------------------------

#: 300 characters: no file system the portal's users have writes such a name (255 at most), but
#: the format sets no limit, the portal may prefix what it stores, and the name is what was signed.
LONG_ATTACHMENT = "令和八年度児童手当認定請求書添付資料" * 16 + "_健康保険証の写し.pdf"


def test_a_long_attachment_name_is_stored_whole(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec, tmp_path: Path,
) -> None:
    """Stored, downloaded and forwarded under the name the resident signed."""
    assert len(LONG_ATTACHMENT) > 300
    long_spec = replace(spec, attachments=(*spec.attachments,
                                           SpecAttachment("健康保険証の写し", LONG_ATTACHMENT, sample_pdf("card"))))
    deliver(session, runtime, make_package(spec=long_spec))
    names = set(session.scalars(select(Attachment.name)))
    assert names == {"保険証.pdf", "口座確認.png", LONG_ATTACHMENT}
    attachment = session.scalars(select(Attachment).where(Attachment.name == LONG_ATTACHMENT)).one()
    download = download_attachment(session, REVIEWER, attachment.id, at=NOW, sealer=runtime.package_sealer)
    assert (download.name, download.data) == (LONG_ATTACHMENT, sample_pdf("card"))
    route = parse_routes({"routes": [{"name": "r", "procedures": ["*"], "kind": "file", "target": str(tmp_path),
                                      "format": "json"}]}, base_dir=tmp_path)[0]
    payload = build_payload(session, runtime, version_id=attachment.version_id, idempotency_key="k", route=route,
                            at=NOW)
    forwarded = [a["file_name"] for a in json.loads(payload.body)["attachments"]]
    assert LONG_ATTACHMENT in forwarded


def test_a_long_kana_name_is_kept_whole_and_searched_by_its_first_128_characters(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """A 300-character フリガナ is the applicant's: kept whole in 申請者情報; the search keys
    (``applicant_kana``, ``applicant_keys.key``, 128 characters each) are its prefix."""
    kana = " ".join(["じゅげむ じゅげむ ごこうのすりきれ かいじゃりすいぎょの すいぎょうまつ"] * 9)
    assert len(kana) > 300
    deliver(session, runtime, make_package(spec=replace(spec, applicant=replace(spec.applicant, name_kana=kana))))
    version = session.scalars(select(ApplicationVersion)).one()
    assert dict(map(tuple, version.applicant))["氏名フリガナ"] == kana  # type: ignore[arg-type]
    key = session.scalar(select(Application.applicant_kana))
    assert key is not None
    assert len(key) == 128
    assert search_key(kana).startswith(key)
    assert key.startswith("ジュゲムジュゲムゴコウノスリキレ")
    assert max(len(k) for k in session.scalars(select(ApplicantKey.key))) == 128
    for typed in (kana, kana[:20], kana.replace(" ", "")):  # what staff type: all of it, or its start
        page = list_applications(session, REVIEWER, ListFilters(kana=typed), page_size=20, at=NOW)
        assert [r.first_receipt_number for r in page.rows] == [spec.receipt_number]


# --- bounded by the format: at the limit stored, past it refused --------------------------------

SpecChange = Callable[[ApplicationSpec, int], ApplicationSpec]

#: (field, the column's limit, a package with a value of n characters)
BOUNDED: list[tuple[str, int, SpecChange]] = [
    ("手続ID", 128, lambda s, n: replace(s, procedure_id="P" * n)),
    ("手続名称", 256, lambda s, n: replace(s, procedure_name="名" * n)),
    ("申請者情報 (value)", 2000, lambda s, n: replace(s, applicant=replace(s.applicant, address="住" * n))),
    ("申請書ファイル名称", 255, lambda s, n: replace(s, form_file="F" * (n - 4) + ".xml")),
]


@pytest.mark.parametrize(("field", "limit", "change"), BOUNDED, ids=[b[0] for b in BOUNDED])
def test_a_bounded_manifest_value_is_stored_at_its_limit_and_refused_past_it(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
    field: str, limit: int, change: SpecChange,
) -> None:
    error = refused(session, runtime, make_package(spec=change(spec, limit + 1)))
    assert (error.status, error.code) == (422, OUT_OF_RANGE)
    assert str(error).startswith(field)
    assert stored_count(session) == 0  # nothing half-stored
    deliver(session, runtime, make_package(spec=change(spec, limit)))
    assert session.scalar(select(func.count()).select_from(ApplicationVersion)) == 1


#: (field, the package with a value of n characters, the verifier's reason code past 64)
RECEIPTS: list[tuple[str, SpecChange, str]] = [
    ("受付番号", lambda s, n: replace(s, receipt_number="R" * n), "ARRIVAL_MISMATCH"),
    ("初回受付番号", lambda s, n: replace(s, receipt_number="20261125-0000000002", kind="再申請",
                                    first_receipt_number="R" * n), "BAD_MANIFEST"),
]


@pytest.mark.parametrize(("field", "change", "reason"), RECEIPTS, ids=[r[0] for r in RECEIPTS])
def test_a_receipt_number_is_bounded_by_the_verifier_and_its_pattern_by_the_intake(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
    field: str, change: SpecChange, reason: str,
) -> None:
    """At most 64 characters (the columns' length) is the verifier's rule: a longer one is a FAILED
    package, kept for staff without a version. 64 characters that are not YYYYMMDD-NNNNNNNNNN are
    refused by the intake."""
    error = refused(session, runtime, make_package(spec=change(spec, 64)))
    assert (error.status, error.code, str(error)) == (422, OUT_OF_RANGE, f"{field}: not YYYYMMDD-NNNNNNNNNN")
    assert stored_count(session) == 0
    deliver(session, runtime, make_package(spec=change(spec, 65)))
    verification = session.scalars(select(Delivery)).one().verification
    assert (verification.indication, verification.reason_code) == ("FAILED", reason)
    assert session.scalar(select(func.count()).select_from(ApplicationVersion)) == 0


def test_a_certificate_serial_is_bounded_by_the_verifier(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """利用者証明用電子証明書シリアル番号: 64 hex digits are stored; 65 are the verifier's FAILED /
    ARRIVAL_MISMATCH (kept for staff, no version)."""
    deliver(session, runtime, make_package(spec=replace(spec, user_cert_serial="A" * 65)))
    verification = session.scalars(select(Delivery)).one().verification
    assert (verification.indication, verification.reason_code) == ("FAILED", "ARRIVAL_MISMATCH")
    assert session.scalar(select(func.count()).select_from(ApplicationVersion)) == 0
    deliver(session, runtime, make_package(spec=replace(spec, receipt_number="20261125-0000000002",
                                                         user_cert_serial="A" * 64)))
    assert session.scalar(select(ApplicationVersion.user_cert_serial)) == "A" * 64


def test_an_unknown_application_kind_is_a_failed_package_without_a_version(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """申請種別 (``application_versions.kind``, 8 characters) is one of four words: anything else is the
    verifier's FAILED / BAD_MANIFEST, stored for staff as a delivery without a version."""
    deliver(session, runtime, make_package(spec=replace(spec, kind="新規申請" * 20)))
    delivery = session.scalars(select(Delivery)).one()
    assert (delivery.verification.indication, delivery.verification.reason_code) == ("FAILED", "BAD_MANIFEST")
    assert session.scalar(select(func.count()).select_from(ApplicationVersion)) == 0


#: (field, the column's limit, a resident whose certificate carries a value of n characters)
CERTIFICATE: list[tuple[str, int, str]] = [("氏名", 256, "name"), ("住所", 512, "address")]


@pytest.mark.parametrize(("field", "limit", "attribute"), CERTIFICATE, ids=[c[0] for c in CERTIFICATE])
def test_a_certificate_value_is_stored_at_its_limit_and_refused_past_it(
    session: Session, runtime: Runtime, make_package: PackageFactory, world: World,
    field: str, limit: int, attribute: str,
) -> None:
    """The 基本4情報 come from a J-LIS certificate, not from the resident; a longer one than the
    columns hold is refused like any value out of range (the signer's name also feeds the search keys)."""
    def card(n: int) -> Issued:
        return world.pki.issue_signer(replace(world.residents[0], **{attribute: "長" * n}))

    error = refused(session, runtime, make_package(signer=card(limit + 1)))
    assert (error.status, error.code, str(error)) == (422, OUT_OF_RANGE, f"{field}: longer than {limit} characters")
    assert stored_count(session) == 0
    deliver(session, runtime, make_package(signer=card(limit)))
    signer = session.scalars(select(SignerIdentityRow)).one()
    assert len(getattr(signer, attribute)) == limit
