"""Admission: every value the intake would store from a verified package, range-checked where it is
read — so a hostile or broken field is a refusal with a reason code, never a database error or a 500.

A signature covers the bytes, not their sense: a portal-signed 到達日時 of ``0001-01-01`` verifies and
then overflows a date conversion; a 2 000-character procedure id verifies and then fails a column.
The limits below are the columns' (intake/models.py) and the format's (docs/package-format.md,
"Values the intake stores"); what a resident legitimately writes long is stored whole, not refused. A
package that breaks one is refused with 422 ``PACKAGE_VALUE_OUT_OF_RANGE`` — a documented package
refusal (``handover.PACKAGE_REFUSALS``): the relay records it as refused and tells the portal, and
nothing of it is stored. The message names the field, never its value.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from intake.deliveries.errors import DeliveryRefused
from signature.identity import SEX_CODES
from signature.report import VerificationReport

__all__ = ["EARLIEST", "OUT_OF_RANGE", "check_values"]

OUT_OF_RANGE = "PACKAGE_VALUE_OUT_OF_RANGE"
#: No 到達日時, certificate date or birth date the intake stores lies before this (or past LATEST).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
KINDS = frozenset({"新規申請", "再申請", "補正", "取下げ"})
SEXES = frozenset(SEX_CODES)
_RECEIPT = re.compile(r"[0-9]{8}-[0-9]{10}")
_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
MAX_FILES = 1000
MAX_APPLICANT_FIELDS = 100
MAX_APPLICANT_VALUE = 2000


def _refuse(field: str, why: str) -> DeliveryRefused:
    return DeliveryRefused(422, OUT_OF_RANGE, f"{field}: {why}")


def _text(field: str, value: str | None, limit: int | None, *, required: bool = True) -> None:
    """``limit``: the column's length (``None``: a ``TEXT`` column, stored whole however long)."""
    if value is None or value == "":
        if required:
            raise _refuse(field, "missing")
        return
    if limit is not None and len(value) > limit:
        raise _refuse(field, f"longer than {limit} characters")
    if any(ord(c) < 0x20 and c not in "\t\n\r" for c in value):
        raise _refuse(field, "control characters")


def _moment(field: str, value: datetime, *, latest: datetime = LATEST) -> None:
    if value.tzinfo is None:
        raise _refuse(field, "no UTC offset")
    try:
        in_utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _refuse(field, "not representable") from None
    if not EARLIEST <= in_utc <= latest:
        raise _refuse(field, "out of range")


def _day(field: str, value: date, latest: date) -> None:
    if not EARLIEST.date() <= value <= latest:
        raise _refuse(field, "out of range")


def check_values(report: VerificationReport, *, at: datetime) -> None:
    """:class:`DeliveryRefused` (422 ``PACKAGE_VALUE_OUT_OF_RANGE``) if a value to be stored is out of
    range; otherwise nothing. ``at`` is the intake's clock (no birth date after it)."""
    if len(report.files) > MAX_FILES:
        raise _refuse("files", f"more than {MAX_FILES}")
    for f in report.files:
        # A resident's file name is stored whole (``attachments.name`` is TEXT): the format sets no
        # length and the name is what they signed. The form's name is the portal's (申請書ファイル名称,
        # bounded below); the media type is one of signature.media's six.
        _text("file name", f.name, None)
        _text("file media type", f.media_type, 64)
    arrival = report.arrival
    if arrival is not None:
        if not _RECEIPT.fullmatch(arrival.receipt_number):
            raise _refuse("受付番号", "not YYYYMMDD-NNNNNNNNNN")
        # Representable and sane; whether it is plausible (not after our clock) is the verifier's
        # call (ARRIVAL_TIME_IN_FUTURE): such a package is stored as FAILED for staff, not refused.
        _moment("到達日時", arrival.arrived_at)
        _text("手続ID (arrival)", arrival.procedure_id, 128)
        if arrival.user_cert_serial and not _SERIAL.fullmatch(arrival.user_cert_serial):
            raise _refuse("利用者証明用電子証明書シリアル番号", "not 1-64 hex digits")
    manifest = report.manifest
    if manifest is not None:
        _text("手続ID", manifest.procedure_id, 128)
        _text("手続名称", manifest.procedure_name, 256)
        if manifest.application_kind not in KINDS:
            raise _refuse("申請種別", "not 新規申請, 再申請, 補正 or 取下げ")
        if manifest.first_receipt_number is not None and not _RECEIPT.fullmatch(manifest.first_receipt_number):
            raise _refuse("初回受付番号", "not YYYYMMDD-NNNNNNNNNN")
        _text("申請書ファイル名称", manifest.form_file, 255)
        if len(manifest.applicant) > MAX_APPLICANT_FIELDS:
            raise _refuse("申請者情報", f"more than {MAX_APPLICANT_FIELDS} fields")
        for key, value in manifest.applicant:
            _text("申請者情報 (name)", key, 64)
            _text("申請者情報 (value)", value, MAX_APPLICANT_VALUE, required=False)
    signer = report.signer
    if signer is not None:
        _text("氏名", signer.name, 256)
        _text("氏名代替文字", signer.name_alt, 256, required=False)
        if signer.sex not in SEXES:
            raise _refuse("性別", "not a JPKI sex code")
        _day("生年月日", signer.birth_date, at.astimezone(UTC).date())
        _text("住所", signer.address, 512)
        _text("住所代替文字", signer.address_alt, 512, required=False)
        _text("certificate serial", signer.cert_serial, 64)
        _text("certificate issuer", signer.issuer, 512)
        _moment("certificate notBefore", signer.not_before)
        _moment("certificate notAfter", signer.not_after)
