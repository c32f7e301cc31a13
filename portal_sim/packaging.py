"""Builds the package of one planned application (package-format.md), the way the portal hands it out.

A pure function of the plan, the applicant's data and two keys: the same inputs give the same
bytes (RSA PKCS#1 v1.5 signatures are deterministic, ZIP timestamps are fixed by the builder),
so packages can be built in worker processes in any order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from portal_sim.attachments import page_jpeg, sample_png, scanned_pdf
from portal_sim.datadir import MUNICIPALITY_CODE, ApplicationKind, Defect
from portal_sim.defects import (
    EICAR_ATTACHMENT,
    corrupt_signature_value,
    flip_byte,
    flip_text_digit,
    truncate_zip,
)
from portal_sim.forms import build_form, withdrawal_form
from portal_sim.population import Person
from portal_sim.procedures import WITHDRAWAL_FORM_FILE, WITHDRAWAL_FORM_ID, Media, Procedure, procedure
from portal_sim.seeds import rng_for
from portal_sim.stream import PlannedApplication
from signature.package import ARRIVAL_FILE, MANIFEST_FILE
from signature.testing.builder import (
    Applicant,
    ApplicationSpec,
    Attachment,
    arrival_document,
    manifest_document,
    sign_arrival,
    sign_manifest,
    zip_package,
)
from signature.testing.pki import Issued

__all__ = ["PackageJob", "build_package_bytes"]


@dataclass(frozen=True, slots=True)
class PackageJob:
    """One package to build: the plan, the applicant, and the 利用者証明用電子証明書 serial that the
    portal records in 到達情報."""

    plan: PlannedApplication
    person: Person
    user_cert_serial: str

    @property
    def card_label(self) -> str:
        return self.person.cards[self.plan.card_index].key_label


def _attachment_data(media: Media, label: str, rng: random.Random) -> bytes:
    if media is Media.PDF:
        return scanned_pdf(label)
    if media is Media.JPEG:
        return page_jpeg(rng, width_blocks=rng.randint(8, 14), height_blocks=rng.randint(10, 18))
    return sample_png(rng.randint(8, 32), rng.randint(8, 32))


def _content(job: PackageJob, proc: Procedure, rng: random.Random) -> tuple[str, str, bytes, list[Attachment]]:
    """(form ID, form file name, form XML, attachments)."""
    plan, person = job.plan, job.person
    if plan.kind is ApplicationKind.WITHDRAWAL:
        form = withdrawal_form(proc, person, plan.arrived_at, plan.first_receipt_number or "", rng)
        return WITHDRAWAL_FORM_ID, WITHDRAWAL_FORM_FILE, form, []
    form = build_form(proc, person, plan.arrived_at, rng)
    attachments = [
        Attachment(spec.title, spec.file_name,
                   _attachment_data(spec.media, f"{plan.receipt_number} {proc.form_id} #{i}", rng))
        for i, spec in enumerate(proc.attachments)
        if rng.random() < spec.share
    ]
    return proc.form_id, proc.form_file, form, attachments


def build_package_bytes(job: PackageJob, *, signer: Issued, portal: Issued) -> bytes:
    """The ZIP for ``job``, signed by ``signer`` (the applicant's card) and ``portal`` (到達情報)."""
    plan, person = job.plan, job.person
    rng = rng_for(plan.content_seed, "package")
    proc = procedure(plan.procedure_id)
    form_id, form_file, form_xml, attachments = _content(job, proc, rng)
    if plan.defect is Defect.EICAR_ATTACHMENT:
        attachments.append(EICAR_ATTACHMENT)
    identity = person.identity
    spec = ApplicationSpec(
        receipt_number=plan.receipt_number,
        arrived_at=plan.arrived_at,
        procedure_id=proc.procedure_id,
        procedure_name=proc.procedure_name,
        form_file=form_file,
        form_xml=form_xml,
        applicant=Applicant(name=identity.name, name_kana=identity.name_kana, postal_code=person.postal_code,
                            address=identity.address, phone=person.phone, email=person.email),
        user_cert_serial=job.user_cert_serial,
        attachments=tuple(attachments),
        kind=plan.kind.value,
        first_receipt_number=plan.first_receipt_number,
        organisation_code=MUNICIPALITY_CODE,
        form_id=form_id,
    )
    files = {form_file: form_xml, **{a.file_name: a.data for a in attachments}}
    kousei = sign_manifest(manifest_document(spec), files, signer)
    tamper_files = False
    if plan.defect is Defect.BAD_SIGNATURE:
        if plan.defect_variant == 1:
            kousei = corrupt_signature_value(kousei)  # before the portal: 到達情報 binds the bad kousei.xml
        else:
            tamper_files = True  # after the portal: 到達情報 still matches, the file digest does not
    arrival = sign_arrival(arrival_document(spec, kousei), portal)
    if tamper_files:
        if attachments:
            last = attachments[-1].file_name
            files[last] = flip_byte(files[last])
        else:
            files[form_file] = flip_text_digit(files[form_file])
    entries = [(MANIFEST_FILE, kousei), (ARRIVAL_FILE, arrival), *files.items()]
    data = zip_package(entries, folder=proc.folder_name if plan.in_folder else None, cp932_names=plan.cp932_names)
    if plan.defect is Defect.MALFORMED_ZIP:
        data = truncate_zip(data)
    return data
