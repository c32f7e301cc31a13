"""The generated data directory: packages verify, defects fail for their reason, the stream is coherent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict

import pytest
from lxml import etree

from portal_sim.attachments import EICAR
from portal_sim.datadir import (
    JST,
    MUNICIPALITY_CODE,
    RECEIPT_NUMBER_RE,
    ApplicationKind,
    ApplicationRecord,
    DataDir,
    Defect,
    ResidentRecord,
)
from portal_sim.procedures import PROCEDURES
from signature.mynumber import is_valid_my_number
from signature.report import FileRole, Indication, ReasonCode, SubIndication, VerificationReport
from tests.portal_sim.generated_support import OPTIONS, zip_entries


def by_defect(data: DataDir, defect: Defect | None) -> list[ApplicationRecord]:
    return [a for a in data.applications() if a.defect is defect]


def residents_by_id(data: DataDir) -> dict[str, ResidentRecord]:
    return {r.resident_id: r for r in data.residents()}


def signed_files(report: VerificationReport, role: FileRole) -> list[bytes]:
    return [f.data for f in report.files if f.role is role]


# -- sound packages -----------------------------------------------------------------------------------


def test_every_sound_package_verifies_passed_at_its_arrival(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    sound = by_defect(generated, None)
    assert len(sound) > 50
    for app in sound:
        report = reports[app.receipt_number]
        assert report.indication is Indication.PASSED, (app.receipt_number, report.reason_en)
        assert report.revocation_checked
        assert report.arrival is not None
        assert report.manifest is not None
        assert report.arrival.receipt_number == app.receipt_number
        assert report.arrival.arrived_at == app.arrived_at
        assert report.manifest.procedure_id == app.procedure_id
        assert report.manifest.procedure_name == app.procedure_name
        assert report.manifest.application_kind == app.kind.value
        assert report.manifest.first_receipt_number == app.first_receipt_number
        assert report.manifest.organisation_code == MUNICIPALITY_CODE


def test_a_package_verifies_with_the_signature_command_line(generated: DataDir) -> None:
    app = next(a for a in by_defect(generated, None) if a.kind is ApplicationKind.NEW)
    result = subprocess.run(
        [sys.executable, "-m", "signature", "verify", str(generated.package_path(app.receipt_number)),
         "--jpki-roots", str(generated.jpki_roots_dir), "--portal-roots", str(generated.portal_roots_dir),
         "--crl", str(generated.crl_dir), "--at", app.arrived_at.isoformat(), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["indication"] == "PASSED"
    assert out["receipt_number"] == app.receipt_number


def test_the_signer_is_the_resident_and_the_serials_are_theirs(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    residents = residents_by_id(generated)
    for app in by_defect(generated, None):
        report, resident = reports[app.receipt_number], residents[app.resident_id]
        assert report.signer is not None
        assert report.arrival is not None
        assert (report.signer.name, report.signer.birth_date, report.signer.sex, report.signer.address) == (
            resident.name, resident.birth_date, resident.sex, resident.address)
        assert report.signer.name_alt == resident.name_alt
        assert report.signer.address_alt == resident.address_alt
        # The signing certificate and the user certificate of 到達情報 belong to the same card generation.
        generation = resident.signing_cert_serials.index(report.signer.cert_serial)
        user_cert = resident.user_certs[generation]
        assert report.arrival.user_cert_serial == user_cert.serial
        assert user_cert.valid_from <= app.arrived_at.date() <= user_cert.valid_to
        assert user_cert.revoked_at is None or app.arrived_at < user_cert.revoked_at


def test_applications_are_signed_with_the_card_valid_at_their_arrival(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    """A resident whose card was renewed during the period signs with the old card before the
    renewal and with the new one after it."""
    residents = residents_by_id(generated)
    renewed = {r.resident_id: r for r in residents.values()
               if len(r.user_certs) == 2 and r.user_certs[0].revoked_at is not None
               and r.user_certs[0].revoked_at >= OPTIONS.period_start}
    assert renewed
    used: dict[str, set[int]] = defaultdict(set)
    for app in by_defect(generated, None):
        if app.resident_id in renewed:
            resident = renewed[app.resident_id]
            serial = reports[app.receipt_number].arrival.user_cert_serial  # type: ignore[union-attr]
            renewal = resident.user_certs[0].revoked_at
            assert renewal is not None
            expected = 0 if app.arrived_at < renewal else 1
            assert serial == resident.user_certs[expected].serial
            used[app.resident_id].add(expected)
    assert any(len(generations) for generations in used.values())


# -- defects ------------------------------------------------------------------------------------------

FAILED, INDETERMINATE = Indication.FAILED, Indication.INDETERMINATE
#: A certificate revoked before the portal-signed 到達日時 is INDETERMINATE / REVOKED_NO_POE: the arrival
#: record proves the signature existed then, not that it was made after the revocation (ETSI EN 319 102-1).
EXPECTED_FAILURES = {
    Defect.BAD_SIGNATURE: {(FAILED, SubIndication.HASH_FAILURE, ReasonCode.DIGEST_MISMATCH),
                           (FAILED, SubIndication.SIG_CRYPTO_FAILURE, ReasonCode.SIGNATURE_INVALID)},
    Defect.REVOKED_CERTIFICATE: {(INDETERMINATE, SubIndication.REVOKED_NO_POE, ReasonCode.CERT_REVOKED)},
    Defect.MALFORMED_ZIP: {(FAILED, SubIndication.FORMAT_FAILURE, ReasonCode.ZIP_CORRUPT),
                           (FAILED, SubIndication.FORMAT_FAILURE, ReasonCode.NOT_A_ZIP)},
}


@pytest.mark.parametrize("defect", list(EXPECTED_FAILURES), ids=lambda d: d.value)
def test_defective_packages_fail_for_their_intended_reason(
    generated: DataDir, reports: dict[str, VerificationReport], defect: Defect
) -> None:
    spoiled = by_defect(generated, defect)
    assert spoiled, f"no {defect.value} package generated"
    for app in spoiled:
        report = reports[app.receipt_number]
        assert (report.indication, report.sub_indication, report.reason_code) in EXPECTED_FAILURES[defect], \
            (app.receipt_number, report.reason_en)


def test_bad_signatures_come_in_both_variants(generated: DataDir, reports: dict[str, VerificationReport]) -> None:
    subs = {reports[a.receipt_number].sub_indication for a in by_defect(generated, Defect.BAD_SIGNATURE)}
    assert subs == {SubIndication.HASH_FAILURE, SubIndication.SIG_CRYPTO_FAILURE}


def test_bad_signature_packages_still_carry_a_verified_arrival_record(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    """Only the applicant's signature is broken: the portal's 到達情報 still tells which application it was."""
    for app in by_defect(generated, Defect.BAD_SIGNATURE):
        arrival = reports[app.receipt_number].arrival
        assert arrival is not None
        assert arrival.receipt_number == app.receipt_number


def test_eicar_packages_pass_the_signature_checks_and_carry_the_test_file(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    spoiled = by_defect(generated, Defect.EICAR_ATTACHMENT)
    assert spoiled
    for app in spoiled:
        report = reports[app.receipt_number]
        assert report.indication is Indication.PASSED, report.reason_en  # the malware scan must catch it
        assert EICAR in signed_files(report, FileRole.ATTACHMENT)
        assert len(EICAR) == 68


def test_revoked_certificate_packages_are_signed_after_the_listed_revocation(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    residents = residents_by_id(generated)
    for app in by_defect(generated, Defect.REVOKED_CERTIFICATE):
        signer = reports[app.receipt_number].signer
        assert signer is not None
        resident = residents[app.resident_id]
        generation = resident.signing_cert_serials.index(signer.cert_serial)
        revoked_at = resident.user_certs[generation].revoked_at
        assert revoked_at is not None
        assert revoked_at < app.arrived_at


def test_the_defect_share_is_as_asked_and_each_kind_occurs(generated: DataDir) -> None:
    spoiled = [a for a in generated.applications() if a.defect is not None]
    assert len(spoiled) == round(OPTIONS.defect_rate * OPTIONS.applications)
    assert {a.defect for a in spoiled} == set(Defect)
    assert generated.manifest.counts.defective == len(spoiled)


# -- the stream ---------------------------------------------------------------------------------------


def test_receipt_numbers_are_unique_well_formed_and_in_arrival_order(generated: DataDir) -> None:
    apps = generated.applications()
    assert len(apps) == OPTIONS.applications
    assert len({a.receipt_number for a in apps}) == len(apps)
    assert apps == sorted(apps, key=lambda a: (a.arrived_at, a.receipt_number))
    for app in apps:
        assert RECEIPT_NUMBER_RE.fullmatch(app.receipt_number)
        assert app.receipt_number[:8] == app.arrived_at.astimezone(JST).strftime("%Y%m%d")
        assert OPTIONS.period_start <= app.arrived_at < OPTIONS.period_end
        assert app.arrived_at.utcoffset() == JST.utcoffset(None)
    sequence = [int(a.receipt_number[9:]) for a in apps]
    assert sequence == sorted(sequence)


def test_follow_ups_refer_to_an_earlier_application_of_the_same_resident_and_procedure(
    generated: DataDir,
) -> None:
    apps = generated.applications()
    by_number = {a.receipt_number: a for a in apps}
    follow_ups = [a for a in apps if a.kind is not ApplicationKind.NEW]
    assert {a.kind for a in follow_ups} == {ApplicationKind.CORRECTION, ApplicationKind.REAPPLICATION,
                                            ApplicationKind.WITHDRAWAL}
    for app in follow_ups:
        assert app.first_receipt_number is not None
        first = by_number[app.first_receipt_number]
        assert first.kind is ApplicationKind.NEW
        assert first.defect is None
        assert (first.resident_id, first.procedure_id) == (app.resident_id, app.procedure_id)
        assert first.arrived_at < app.arrived_at
    for app in apps:
        if app.kind is ApplicationKind.NEW:
            assert app.first_receipt_number is None


def test_nothing_follows_a_withdrawal(generated: DataDir) -> None:
    withdrawn: dict[str, ApplicationRecord] = {}
    for app in generated.applications():
        if app.first_receipt_number in withdrawn:
            pytest.fail(f"{app.receipt_number} continues a withdrawn chain")
        if app.kind is ApplicationKind.WITHDRAWAL:
            assert app.first_receipt_number is not None
            withdrawn[app.first_receipt_number] = app


def test_every_procedure_is_applied_for(generated: DataDir) -> None:
    catalogue = {p.procedure_id: p for p in PROCEDURES}
    seen = {a.procedure_id for a in generated.applications()}
    assert seen == set(catalogue)
    for app in generated.applications():
        assert app.department == catalogue[app.procedure_id].department
        assert app.procedure_name == catalogue[app.procedure_id].procedure_name


# -- package contents ---------------------------------------------------------------------------------


def test_every_my_number_in_every_form_has_a_valid_check_digit(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    numbers = []
    for app in generated.applications():
        report = reports[app.receipt_number]
        for form in signed_files(report, FileRole.FORM):
            root = etree.fromstring(form)
            numbers += [el.text for el in root.iter("個人番号") if el.text]
    assert len(numbers) > 40
    assert all(is_valid_my_number(n) for n in numbers)


def test_forms_are_e_gov_style(generated: DataDir, reports: dict[str, VerificationReport]) -> None:
    form_ids = set()
    for app in by_defect(generated, None):
        (form,) = signed_files(reports[app.receipt_number], FileRole.FORM)
        root = etree.fromstring(form)
        assert root.tag == "DataRoot"
        assert [child.tag for child in root[:2]] == ["様式ID", "様式バージョン"]
        form_ids.add(root[0].text)
        for group in root.iter("生年月日", "届出年月日", "請求年月日", "申込年月日"):
            assert [c.tag for c in group] == ["年号", "年", "月", "日"]
        assert any(len(el) == 0 and not el.text for el in root.iter()), "no unanswered (empty) field"
    assert form_ids == {p.form_id for p in PROCEDURES} | {"TORISAGE-01"}


def test_attachments_are_real_pdf_jpeg_and_png_files_with_japanese_names(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    media: set[str] = set()
    for app in by_defect(generated, None):
        for f in reports[app.receipt_number].files:
            if f.role is FileRole.ATTACHMENT:
                media.add(f.media_type)
                assert not f.name.isascii()
    assert {"application/pdf", "image/jpeg", "image/png"} <= media


def test_cp932_named_packages_exist_and_verify(generated: DataDir, reports: dict[str, VerificationReport]) -> None:
    cp932 = []
    for app in by_defect(generated, None):
        infos = zip_entries(generated.package_bytes(app.receipt_number))
        japanese = [i for i in infos if not i.orig_filename.isascii() or not i.filename.isascii()]
        if japanese and all(not i.flag_bits & 0x800 for i in japanese):
            cp932.append(app)
            assert reports[app.receipt_number].indication is Indication.PASSED
    assert cp932


def test_some_packages_have_a_top_level_folder_and_verify(
    generated: DataDir, reports: dict[str, VerificationReport]
) -> None:
    foldered = [a for a in by_defect(generated, None)
                if all("/" in i.filename for i in zip_entries(generated.package_bytes(a.receipt_number)))]
    assert foldered
    assert all(reports[a.receipt_number].indication is Indication.PASSED for a in foldered)


# -- records, residents, manifest --------------------------------------------------------------------


def test_records_describe_their_package_bytes(generated: DataDir) -> None:
    import hashlib

    for app in generated.applications():
        data = (generated.path / app.package).read_bytes()
        assert app.package == f"packages/{app.receipt_number}.zip"
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (app.sha256, app.size)
        assert generated.package_bytes(app.receipt_number) == data


def test_residents_cover_every_card_history_and_substitute_characters(generated: DataDir) -> None:
    residents = generated.residents()
    assert len(residents) == OPTIONS.residents
    assert any(r.name_alt for r in residents)
    assert any(r.address_alt for r in residents)
    renewed = [r for r in residents if len(r.user_certs) == 2]
    assert any(r.user_certs[0].revoked_at is None for r in renewed), "no renewal after expiry"
    assert any(r.user_certs[0].revoked_at is not None and r.user_certs[0].revoked_at < OPTIONS.period_start
               for r in renewed), "no card revoked before the period"
    assert any(r.user_certs[0].revoked_at is not None and r.user_certs[0].revoked_at >= OPTIONS.period_start
               for r in renewed), "no renewal during the period"
    for r in residents:
        assert re.fullmatch(r"[0-9]{10}", r.atena_number)
        assert is_valid_my_number(r.my_number)
        assert len(r.user_certs) == len(r.signing_cert_serials)
        assert all(re.fullmatch(r"[0-9A-F]+", s) for s in (*r.signing_cert_serials, *(c.serial for c in r.user_certs)))
        assert all(is_valid_my_number(m.my_number) for m in r.household)
    numbers = [r.my_number for r in residents] + [m.my_number for r in residents for m in r.household]
    assert len(set(numbers)) == len(numbers)


def test_the_crl_lists_exactly_the_revoked_signing_certificates(generated: DataDir) -> None:
    from cryptography import x509

    listed = set()
    for path in sorted(generated.crl_dir.glob("*.crl")):
        crl = x509.load_der_x509_crl(path.read_bytes())
        assert crl.last_update_utc < OPTIONS.period_start
        assert crl.next_update_utc is not None
        assert crl.next_update_utc > OPTIONS.period_end
        listed |= {format(rc.serial_number, "X") for rc in crl}
    revoked = {r.signing_cert_serials[i] for r in generated.residents()
               for i, c in enumerate(r.user_certs) if c.revoked_at is not None}
    assert revoked
    assert listed == revoked
    assert generated.manifest.counts.revoked_signing_certificates == len(revoked)


def test_the_manifest_describes_the_generation(generated: DataDir) -> None:
    m = generated.manifest
    assert (m.format, m.seed, m.municipality_code) == (1, OPTIONS.seed, "131032")
    assert re.fullmatch(r"[0-9a-f]{32}", m.api_key)
    assert m.generated_for == OPTIONS.period_start
    assert m.period_end == OPTIONS.period_end
    assert m.counts.applications == len(generated.applications())
    assert m.counts.residents == len(generated.residents())
    assert sum(m.counts.by_kind.values()) == m.counts.applications
    assert {p.procedure_id for p in m.procedures} == {p.procedure_id for p in PROCEDURES}
    raw = json.loads((generated.path / "manifest.json").read_text("utf-8"))
    assert raw["generated_for"] == "2026-11-01T00:00:00+09:00"
