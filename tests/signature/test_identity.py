"""signature.identity: the 基本4情報 from the JPKI signing certificate's subjectAltName."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from signature.errors import VerificationFailure
from signature.identity import (
    OID_ADDRESS,
    OID_ADDRESS_ALT,
    OID_BIRTH_DATE,
    OID_NAME,
    OID_NAME_ALT,
    OID_SEX,
    encode_era_date,
    era_date,
    signer_identity,
)
from signature.report import Indication, ReasonCode, SubIndication
from signature.testing import (
    Issued,
    Resident,
    TestPKI,
    resident_other_names,
    sample_residents,
    utf8_other_name,
)

NOW = datetime(2025, 6, 2, 1, 30, tzinfo=UTC)

TAKAHASHI = Resident(
    name="髙橋　一郎",
    name_kana="タカハシ　イチロウ",
    sex="1",
    birth_date=date(1990, 1, 23),
    address="東京都港区芝公園一丁目5番25号　𠮷野ハイツ301",
    name_alt="高橋　一郎",
    address_alt="東京都港区芝公園一丁目5番25号　吉野ハイツ301",
)
YAMADA = Resident(
    name="山田　花子",
    name_kana="ヤマダ　ハナコ",
    sex="2",
    birth_date=date(2019, 5, 1),
    address="東京都港区海岸一丁目2番3号",
)
# Over 127 bytes of UTF-8: the UTF8String needs the long length form.
LONG_ADDRESS = Resident(
    name="佐藤　葵",
    name_kana="サトウ　アオイ",
    sex="3",
    birth_date=date(1989, 1, 7),
    address="東京都港区南青山七丁目12番34号　グランドメゾン南青山ガーデンテラス棟　東館二十一階2101号室",
)


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.generate(now=NOW, seed=11)


@pytest.fixture(scope="module")
def subject_key() -> rsa.RSAPrivateKey:
    # One key for every certificate in this module: key generation dominates the run time.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IssueFn(Protocol):
    def __call__(self, resident: Resident, other_names: list[x509.GeneralName] | None = None) -> Issued: ...


@pytest.fixture
def issue(pki: TestPKI, subject_key: rsa.RSAPrivateKey) -> IssueFn:
    """Issue a signing certificate, optionally with hand-made subjectAltName entries."""

    def _issue(resident: Resident, other_names: list[x509.GeneralName] | None = None) -> Issued:
        return pki.issue_signer(resident, key=subject_key, other_names=other_names)

    return _issue


# -- round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resident",
    [
        pytest.param(TAKAHASHI, id="with-name-alt-and-address-alt"),
        pytest.param(YAMADA, id="without-alt-fields"),
        pytest.param(LONG_ADDRESS, id="long-form-der-length-sex-3"),
    ],
)
def test_round_trip_every_field(issue: IssueFn, resident: Resident) -> None:
    issued = issue(resident)
    ident = signer_identity(issued.cert)
    assert ident.name == resident.name
    assert ident.name_alt == resident.name_alt
    assert ident.sex == resident.sex
    assert ident.birth_date == resident.birth_date
    assert ident.address == resident.address
    assert ident.address_alt == resident.address_alt
    assert ident.cert_serial == format(issued.cert.serial_number, "X")
    assert ident.issuer == issued.cert.issuer.rfc4514_string()
    assert ident.not_before == issued.cert.not_valid_before_utc
    assert ident.not_after == issued.cert.not_valid_after_utc


def test_round_trip_sample_residents(issue: IssueFn) -> None:
    for r in sample_residents(random.Random(5), 8):
        ident = signer_identity(issue(r).cert)
        got = (ident.name, ident.name_alt, ident.sex, ident.birth_date, ident.address, ident.address_alt)
        assert got == (r.name, r.name_alt, r.sex, r.birth_date, r.address, r.address_alt)


def test_cert_serial_is_uppercase_hex_without_leading_zeros(
    pki: TestPKI, subject_key: rsa.RSAPrivateKey
) -> None:
    issued = pki.issue_signer(YAMADA, key=subject_key, serial=0x00AB_CDEF)
    assert signer_identity(issued.cert).cert_serial == "ABCDEF"


def test_times_are_aware_utc(issue: IssueFn) -> None:
    ident = signer_identity(issue(YAMADA).cert)
    assert ident.not_before == NOW - timedelta(days=1)
    assert ident.not_before.tzinfo is UTC
    assert ident.not_after.tzinfo is UTC


def test_issuer_is_rfc4514(issue: IssueFn) -> None:
    ident = signer_identity(issue(YAMADA).cert)
    assert ident.issuer == (
        "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,"
        "O=JPKI-TEST,C=JP"
    )


def test_other_name_value_is_the_inner_utf8string_tlv(issue: IssueFn) -> None:
    """cryptography's OtherName.value is the DER of the inner value, without the [0] EXPLICIT tag."""
    san = issue(YAMADA).cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    by_oid = {o.type_id: o.value for o in san.get_values_for_type(x509.OtherName)}
    assert by_oid[OID_NAME] == core.UTF8String("山田　花子").dump()
    assert by_oid[OID_NAME][0] == 0x0C


# -- 生年月日 -------------------------------------------------------------------------------------

ERA_VECTORS = [
    pytest.param("419900123", date(1990, 1, 23), id="heisei-2-01-23"),
    pytest.param("520190501", date(2019, 5, 1), id="reiwa-1-05-01-first-day"),
    pytest.param("420190430", date(2019, 4, 30), id="heisei-31-04-30-last-day"),
    pytest.param("419890108", date(1989, 1, 8), id="heisei-1-01-08-first-day"),
    pytest.param("319890107", date(1989, 1, 7), id="showa-64-01-07-last-day"),
    pytest.param("319261225", date(1926, 12, 25), id="showa-1-12-25-first-day"),
    pytest.param("219261224", date(1926, 12, 24), id="taisho-15-12-24-last-day"),
    pytest.param("219120730", date(1912, 7, 30), id="taisho-1-07-30-first-day"),
    pytest.param("119120729", date(1912, 7, 29), id="meiji-45-07-29-last-day"),
    pytest.param("119000101", date(1900, 1, 1), id="meiji-33"),
    pytest.param("420000229", date(2000, 2, 29), id="heisei-12-leap-day"),
]


@pytest.mark.parametrize(("code", "expected"), ERA_VECTORS)
def test_era_date(code: str, expected: date) -> None:
    assert era_date(code) == expected


@pytest.mark.parametrize(("code", "expected"), ERA_VECTORS)
def test_encode_era_date(code: str, expected: date) -> None:
    assert encode_era_date(expected) == code


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        pytest.param("319890108", "era digit", id="showa-digit-on-heisei-first-day"),
        pytest.param("419890107", "era digit", id="heisei-digit-on-showa-last-day"),
        pytest.param("420190501", "era digit", id="heisei-digit-on-reiwa-first-day"),
        pytest.param("520190430", "era digit", id="reiwa-digit-on-heisei-last-day"),
        pytest.param("219261225", "era digit", id="taisho-digit-on-showa-first-day"),
        pytest.param("119120730", "era digit", id="meiji-digit-on-taisho-first-day"),
        pytest.param("219120729", "era digit", id="taisho-digit-on-meiji-last-day"),
        pytest.param("519900123", "era digit", id="reiwa-digit-on-1990"),
        pytest.param("619900123", "not an era digit", id="era-digit-6"),
        pytest.param("019900123", "not an era digit", id="era-digit-0"),
        pytest.param("19900123", "not an era digit", id="no-era-digit"),
        pytest.param("4199001230", "not an era digit", id="too-long"),
        pytest.param("", "not an era digit", id="empty"),
        pytest.param("4１９９００１２３", "not an era digit", id="full-width-digits"),
        pytest.param("4H2.01.23", "not an era digit", id="wareki-abbreviation"),
        pytest.param("419900230", "not a valid calendar date", id="february-30"),
        pytest.param("419901301", "not a valid calendar date", id="month-13"),
        pytest.param("419900100", "not a valid calendar date", id="day-0"),
        pytest.param("419890229", "not a valid calendar date", id="february-29-common-year"),
    ],
)
def test_era_date_refused(code: str, problem: str) -> None:
    with pytest.raises(VerificationFailure) as excinfo:
        era_date(code)
    err = excinfo.value
    assert err.code is ReasonCode.BAD_IDENTITY
    assert problem in err.detail
    if len(code) > 1:
        assert code not in str(err)


# -- refusals -------------------------------------------------------------------------------------


MakeNames = Callable[[Resident], list[x509.GeneralName]]


def _without(resident: Resident, oid: x509.ObjectIdentifier) -> list[x509.GeneralName]:
    return [
        n for n in resident_other_names(resident)
        if not (isinstance(n, x509.OtherName) and n.type_id == oid)
    ]


def _replace(resident: Resident, oid: x509.ObjectIdentifier, value: bytes) -> list[x509.GeneralName]:
    return [
        x509.OtherName(oid, value) if isinstance(n, x509.OtherName) and n.type_id == oid else n
        for n in resident_other_names(resident)
    ]


def _add(resident: Resident, *extra: x509.GeneralName) -> list[x509.GeneralName]:
    return [*resident_other_names(resident), *extra]


REFUSALS = [
    pytest.param(lambda r: [], "no subjectAltName", id="missing-san"),
    pytest.param(lambda r: [x509.DNSName("example.test")], "name (氏名): missing",
                 id="san-without-othernames"),
    pytest.param(lambda r: _without(r, OID_NAME), "name (氏名): missing", id="missing-name"),
    pytest.param(lambda r: _without(r, OID_SEX), "sex (性別): missing", id="missing-sex"),
    pytest.param(lambda r: _without(r, OID_BIRTH_DATE), "birth_date (生年月日): missing",
                 id="missing-birth-date"),
    pytest.param(lambda r: _without(r, OID_ADDRESS), "address (住所): missing", id="missing-address"),
    pytest.param(
        lambda r: _replace(r, OID_NAME, core.PrintableString("Ichiro Takahashi").dump()),
        "name (氏名): value is not a UTF8String", id="name-printablestring",
    ),
    pytest.param(
        lambda r: _replace(r, OID_NAME, core.BMPString(r.name).dump()),
        "name (氏名): value is not a UTF8String", id="name-bmpstring",
    ),
    pytest.param(
        lambda r: _replace(r, OID_ADDRESS, core.OctetString(r.address.encode("utf-8")).dump()),
        "address (住所): value is not a UTF8String", id="address-octetstring",
    ),
    pytest.param(
        lambda r: _replace(r, OID_NAME_ALT, core.BMPString(r.name_alt).dump()),
        "name_alt (氏名代替文字): value is not a UTF8String", id="name-alt-bmpstring",
    ),
    pytest.param(
        lambda r: _replace(r, OID_ADDRESS_ALT, core.PrintableString("x").dump()),
        "address_alt (住所代替文字): value is not a UTF8String", id="address-alt-printablestring",
    ),
    pytest.param(
        lambda r: _replace(r, OID_NAME, b"\x0c\x04" + "高橋".encode("shift_jis")),
        "name (氏名): UTF8String is not valid UTF-8", id="name-shift-jis-bytes",
    ),
    pytest.param(
        lambda r: _replace(r, OID_BIRTH_DATE, core.PrintableString("419900123").dump()),
        "birth_date (生年月日): value is not a UTF8String", id="birth-date-printablestring",
    ),
    pytest.param(lambda r: _add(r, utf8_other_name(OID_NAME, "山田　太郎")),
                 "name (氏名): occurs more than once", id="name-twice"),
    pytest.param(lambda r: _replace(r, OID_NAME, core.UTF8String("").dump()), "name (氏名): empty",
                 id="name-empty"),
    pytest.param(lambda r: _replace(r, OID_SEX, core.UTF8String("M").dump()), "sex (性別): not one of",
                 id="sex-letter"),
    pytest.param(lambda r: _replace(r, OID_SEX, core.UTF8String("0").dump()), "sex (性別): not one of",
                 id="sex-0"),
    pytest.param(lambda r: _replace(r, OID_SEX, core.UTF8String("9").dump()), "sex (性別): not one of",
                 id="sex-9"),
    pytest.param(
        lambda r: _replace(r, OID_BIRTH_DATE, core.UTF8String("519900123").dump()),
        "birth_date (生年月日): era digit does not match", id="birth-date-wrong-era",
    ),
    pytest.param(
        lambda r: _replace(r, OID_BIRTH_DATE, core.UTF8String("平成2年1月23日").dump()),
        "birth_date (生年月日): not an era digit", id="birth-date-japanese-text",
    ),
    pytest.param(
        lambda r: _replace(r, OID_BIRTH_DATE, core.UTF8String("1990-01-23").dump()),
        "birth_date (生年月日): not an era digit", id="birth-date-iso",
    ),
]


def _personal_values(resident: Resident) -> list[str]:
    values = [resident.name, resident.address, encode_era_date(resident.birth_date),
              resident.birth_date.isoformat(), resident.birth_date.strftime("%Y%m%d")]
    values += [v for v in (resident.name_alt, resident.address_alt) if v is not None]
    # Parts too: the family name alone, the town, the year.
    values += [resident.name.split("　")[0], resident.name.split("　")[1], "芝公園", "1990"]
    return values


@pytest.mark.parametrize(("make_names", "detail"), REFUSALS)
def test_refused_without_leaking_personal_data(issue: IssueFn, make_names: MakeNames, detail: str) -> None:
    issued = issue(TAKAHASHI, other_names=make_names(TAKAHASHI))
    with pytest.raises(VerificationFailure) as excinfo:
        signer_identity(issued.cert)
    err = excinfo.value
    assert err.code is ReasonCode.BAD_IDENTITY
    assert err.indication is Indication.FAILED
    assert err.sub_indication is SubIndication.FORMAT_FAILURE
    assert detail in err.detail
    text = f"{err} {err!r} {err.detail} {err.args!r}"
    for value in _personal_values(TAKAHASHI):
        assert value not in text
    # No original exception (a UnicodeDecodeError would carry the raw bytes) rides along.
    assert err.__cause__ is None
    assert err.__context__ is None


def test_unparsable_extension_refused(issue: IssueFn) -> None:
    """A BER length inside the otherName: cryptography refuses to parse the extensions at all."""
    issued = issue(TAKAHASHI)
    good = utf8_other_name(OID_NAME, TAKAHASHI.name).value
    body = good[2:]
    ber = b"\x0c\x81" + bytes([len(body) - 1]) + body[:-1]  # same size, so no outer length changes
    assert len(ber) == len(good)
    cert = x509.load_der_x509_certificate(issued.cert_der().replace(good, ber))
    with pytest.raises(VerificationFailure) as excinfo:
        signer_identity(cert)
    assert excinfo.value.code is ReasonCode.BAD_IDENTITY
    assert "cannot be parsed" in excinfo.value.detail
    assert excinfo.value.__context__ is None


def test_unknown_other_names_are_ignored(issue: IssueFn) -> None:
    extra = utf8_other_name("1.2.392.200149.8.5.5.99", "something else")
    ident = signer_identity(issue(YAMADA, other_names=_add(YAMADA, extra, x509.DNSName("a.test"))).cert)
    assert ident.name == YAMADA.name
