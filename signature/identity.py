"""The signer's 基本4情報 read from the JPKI signing certificate (package-format.md §4).

The municipality identifies an applicant by the 氏名, 性別, 生年月日 and 住所 that J-LIS put into the
subjectAltName of the 署名用電子証明書, never by what the applicant typed into the form. This module is
the single place where those otherName values are decoded, so that the rules live in one spot:

* every value must be a DER UTF8String (the inner value of the otherName's ``[0] EXPLICIT``); a
  PrintableString, BMPString, a BER-only length or invalid UTF-8 is refused rather than "repaired" —
  a certificate that does not follow the profile is not evidence of who signed;
* 生年月日 is an era digit followed by the Gregorian ``YYYYMMDD``; the digit is redundant, so it is
  checked against the era boundaries instead of ignored (a mismatch means the value was not produced
  by a conforming issuer);
* a field that occurs twice is refused: there is no sound way to choose which one is the person.

Every refusal is a :class:`~signature.errors.VerificationFailure` with
:attr:`~signature.report.ReasonCode.BAD_IDENTITY`. Its detail names the field and the kind of problem
only: the values are personal data and must not reach logs or other zones through an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from signature.errors import VerificationFailure
from signature.report import Indication, ReasonCode, SignerIdentity, SubIndication

__all__ = [
    "ERAS",
    "OID_ADDRESS",
    "OID_ADDRESS_ALT",
    "OID_BIRTH_DATE",
    "OID_NAME",
    "OID_NAME_ALT",
    "OID_SEX",
    "SEX_CODES",
    "Era",
    "encode_era_date",
    "era_date",
    "signer_identity",
]

#: 氏名 (name), required.
OID_NAME = ObjectIdentifier("1.2.392.200149.8.5.5.1")
#: 氏名代替文字 (name with substitute characters), optional.
OID_NAME_ALT = ObjectIdentifier("1.2.392.200149.8.5.5.2")
#: 性別 (sex code), required.
OID_SEX = ObjectIdentifier("1.2.392.200149.8.5.5.3")
#: 生年月日 (era digit + Gregorian YYYYMMDD), required.
OID_BIRTH_DATE = ObjectIdentifier("1.2.392.200149.8.5.5.4")
#: 住所 (address), required.
OID_ADDRESS = ObjectIdentifier("1.2.392.200149.8.5.5.5")
#: 住所代替文字 (address with substitute characters), optional.
OID_ADDRESS_ALT = ObjectIdentifier("1.2.392.200149.8.5.5.6")

#: 性別 codes: 1 男, 2 女, 3 不明. The code string is what :class:`SignerIdentity` carries.
SEX_CODES: Mapping[str, str] = {"1": "男", "2": "女", "3": "不明"}

# Field labels used in error details: which field failed, never its value.
_FIELD_LABELS: Mapping[ObjectIdentifier, str] = {
    OID_NAME: "name (氏名)",
    OID_NAME_ALT: "name_alt (氏名代替文字)",
    OID_SEX: "sex (性別)",
    OID_BIRTH_DATE: "birth_date (生年月日)",
    OID_ADDRESS: "address (住所)",
    OID_ADDRESS_ALT: "address_alt (住所代替文字)",
}
_REQUIRED = (OID_NAME, OID_SEX, OID_BIRTH_DATE, OID_ADDRESS)

_UTF8STRING_TAG = 0x0C
# str.isdigit() would accept full-width and other Unicode digits; the profile allows ASCII only.
_ERA_DATE_RE = re.compile(r"[1-5][0-9]{8}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Era:
    """One Japanese era as used by the 生年月日 encoding: its digit, name and first/last day."""

    code: str
    name: str
    first: date | None
    last: date | None

    def contains(self, d: date) -> bool:
        return (self.first is None or d >= self.first) and (self.last is None or d <= self.last)


#: Eras in order. 明治 has no lower bound here: the encoding only needs to tell the eras apart.
ERAS: tuple[Era, ...] = (
    Era("1", "明治", None, date(1912, 7, 29)),
    Era("2", "大正", date(1912, 7, 30), date(1926, 12, 24)),
    Era("3", "昭和", date(1926, 12, 25), date(1989, 1, 7)),
    Era("4", "平成", date(1989, 1, 8), date(2019, 4, 30)),
    Era("5", "令和", date(2019, 5, 1), None),
)
_ERA_BY_CODE: Mapping[str, Era] = {e.code: e for e in ERAS}


# The refusals below are raised outside ``except`` blocks on purpose: the original exception (a
# UnicodeDecodeError holds the raw bytes of, say, the name) must not ride along as ``__context__``
# into logs or error trackers.


def _calendar_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _strict_utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return None


def _bad(detail: str) -> VerificationFailure:
    return VerificationFailure(
        ReasonCode.BAD_IDENTITY,
        detail,
        indication=Indication.FAILED,
        sub_indication=SubIndication.FORMAT_FAILURE,
    )


def era_date(code: str) -> date:
    """Decode a 生年月日 value (``"419900123"`` → ``date(1990, 1, 23)``).

    The value is one era digit (1 明治 … 5 令和) and the Gregorian ``YYYYMMDD``. The era digit must
    agree with the date. Raises :class:`VerificationFailure` (BAD_IDENTITY); the message never
    contains the value.
    """
    if not _ERA_DATE_RE.fullmatch(code):
        raise _bad("birth_date (生年月日): not an era digit followed by YYYYMMDD")
    d = _calendar_date(int(code[1:5]), int(code[5:7]), int(code[7:9]))
    if d is None:
        raise _bad("birth_date (生年月日): not a valid calendar date")
    if not _ERA_BY_CODE[code[0]].contains(d):
        raise _bad("birth_date (生年月日): era digit does not match the date")
    return d


def encode_era_date(d: date) -> str:
    """Encode a Gregorian date as a 生年月日 value (``date(1990, 1, 23)`` → ``"419900123"``)."""
    for era in ERAS:
        if era.contains(d):
            return f"{era.code}{d.year:04d}{d.month:02d}{d.day:02d}"
    raise AssertionError("unreachable: the eras cover every date")  # pragma: no cover


def _der_utf8string(der: bytes, label: str) -> str:
    """Decode one DER UTF8String TLV, refusing other types, BER lengths and trailing bytes.

    Hand-written rather than asn1crypto's loader because that one also accepts BER (non-minimal
    lengths, constructed indefinite-length strings), which the DER profile does not allow.
    """
    if len(der) < 2 or der[0] != _UTF8STRING_TAG:
        raise _bad(f"{label}: value is not a UTF8String")
    first = der[1]
    if first < 0x80:
        length, header = first, 2
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(der) < 2 + n:
            raise _bad(f"{label}: UTF8String has an invalid length")
        length_bytes = der[2 : 2 + n]
        length = int.from_bytes(length_bytes, "big")
        if length_bytes[0] == 0 or length < 0x80:
            raise _bad(f"{label}: UTF8String length is not DER")
        header = 2 + n
    if len(der) != header + length:
        raise _bad(f"{label}: UTF8String length does not match its content")
    text = _strict_utf8(der[header:])
    if text is None:
        raise _bad(f"{label}: UTF8String is not valid UTF-8")
    return text


def _subject_alt_name(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _other_names(cert: x509.Certificate) -> dict[ObjectIdentifier, str]:
    try:
        san, parsed = _subject_alt_name(cert), True
    except ValueError:
        # cryptography parses extensions lazily; a malformed or duplicated extension surfaces here.
        san, parsed = None, False
    if not parsed:
        raise _bad("certificate extensions cannot be parsed")
    if san is None:
        raise _bad("certificate has no subjectAltName")
    values: dict[ObjectIdentifier, str] = {}
    for other in san.get_values_for_type(x509.OtherName):
        label = _FIELD_LABELS.get(other.type_id)
        if label is None:
            continue  # Not part of the 基本4情報; other profiles' otherNames are not our business.
        if other.type_id in values:
            raise _bad(f"{label}: occurs more than once")
        values[other.type_id] = _der_utf8string(other.value, label)
    return values


def signer_identity(cert: x509.Certificate) -> SignerIdentity:
    """The 基本4情報 of the JPKI signing certificate ``cert``.

    This only decodes: it does not establish that ``cert`` is trustworthy, which is the chain and
    revocation checks' job. Raises :class:`VerificationFailure` (BAD_IDENTITY, FAILED /
    FORMAT_FAILURE) when a required field is missing or empty, or any field is malformed.
    """
    values = _other_names(cert)
    for oid in _REQUIRED:
        if oid not in values:
            raise _bad(f"{_FIELD_LABELS[oid]}: missing")
        if not values[oid]:
            raise _bad(f"{_FIELD_LABELS[oid]}: empty")
    sex = values[OID_SEX]
    if sex not in SEX_CODES:
        raise _bad(f"{_FIELD_LABELS[OID_SEX]}: not one of the codes 1, 2, 3")
    return SignerIdentity(
        name=values[OID_NAME],
        name_alt=values.get(OID_NAME_ALT),
        sex=sex,
        birth_date=era_date(values[OID_BIRTH_DATE]),
        address=values[OID_ADDRESS],
        address_alt=values.get(OID_ADDRESS_ALT),
        cert_serial=format(cert.serial_number, "X"),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
