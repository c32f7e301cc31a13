"""A throw-away PKI shaped like JPKI, for tests, the demo and the portal simulator.

Production packages are signed with a 署名用電子証明書 that J-LIS issues directly under its signing
root, and J-LIS has rolled that root over several times **without changing its name**. The verifier
must therefore pick issuers by key and signature, never by name (pitfalls.md "Certificates and
CRLs"); this PKI reproduces that trap on purpose: two root generations with one subject, different
keys and overlapping validity. It also has an intermediate CA (the "through an intermediate" case of
package-format.md §4) and a separate portal hierarchy for the 到達情報 signature. :meth:`TestPKI.issue_ca`
grows further CAs on demand — a signing CA that reaches the verifier only inside packages
(``KeyInfo/X509Data``), in several key generations under one name (:data:`JPKI_SIGNING_CA_SUBJECT`).

Everything the verifier's decisions depend on is an input: the moment (``now``, timezone-aware),
the serial numbers (drawn from a seeded :class:`random.Random`) and every knob a negative test needs
(key usage, policy, CDP, validity, signature hash, foreign keys, hand-made subjectAltNames). By
default only the key material is really random, because cryptography's RSA key generation offers
no seed: two PKIs generated with the same seed have the same names, serials and residents but
different keys. A caller that needs byte-identical certificates (the portal simulator) passes a
``key_source`` that derives each CA key from its own seed, and ``key=`` to :meth:`TestPKI.issue_signer`.

The certificates are built with cryptography's builders, never the ``openssl`` command line, which
silently double-encodes UTF8String values without ``FORMAT:UTF8`` (pitfalls.md).

This module is for tests and simulations only: keys are written unencrypted.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID, ObjectIdentifier

from signature.identity import (
    OID_ADDRESS,
    OID_ADDRESS_ALT,
    OID_BIRTH_DATE,
    OID_NAME,
    OID_NAME_ALT,
    OID_SEX,
    encode_era_date,
)
from signature.policy import JPKI_SIGNING_POLICY_OID

__all__ = [
    "CRL_BASE_URL",
    "JPKI_INTERMEDIATE_SUBJECT",
    "JPKI_ROOT_SUBJECT",
    "JPKI_SIGNING_CA_SUBJECT",
    "JPKI_SIGNING_POLICY_OID",
    "KEY_PURPOSES",
    "MANIFEST_NAME",
    "PORTAL_ROOT_SUBJECT",
    "PORTAL_SERVER_SUBJECT",
    "Issued",
    "Resident",
    "TestPKI",
    "generate_cli",
    "resident_other_names",
    "sample_residents",
    "utf8_other_name",
]

#: Subject shared by every JPKI-TEST root generation (production: ``O=JPKI``).
JPKI_ROOT_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
        x509.NameAttribute(
            NameOID.ORGANIZATIONAL_UNIT_NAME, "Japan Agency for Local Authority Information Systems"
        ),
    ]
)
JPKI_INTERMEDIATE_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
        x509.NameAttribute(NameOID.COMMON_NAME, "JPKI-TEST signing CA G2"),
    ]
)
#: A signing CA under the current root that is configured nowhere: it reaches the verifier only in
#: the packages' ``KeyInfo/X509Data``. Tests issue several key generations of it under this one name.
JPKI_SIGNING_CA_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
        x509.NameAttribute(NameOID.COMMON_NAME, "JPKI-TEST signing CA G3"),
    ]
)
PORTAL_ROOT_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PORTAL-TEST"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Portal Test Root CA"),
    ]
)
PORTAL_SERVER_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PORTAL-TEST"),
        x509.NameAttribute(NameOID.COMMON_NAME, "portal-sim.test"),
    ]
)
#: CRL distribution points are ``CRL_BASE_URL + <issuer label> + ".crl"`` (see :meth:`TestPKI.crl_url`).
#: ``.invalid`` (RFC 2606) guarantees that nothing ever fetches them from the network.
CRL_BASE_URL = "http://crl.jpki-test.invalid/"
#: What :meth:`TestPKI.generate` asks a ``key_source`` for, in this order.
KEY_PURPOSES = ("jpki-root-g1", "jpki-root-g2", "jpki-intermediate", "portal-root", "portal-server")
#: The manifest written by :meth:`TestPKI.save`.
MANIFEST_NAME = "testpki.json"
_MANIFEST_FORMAT = "shinsei-testpki/1"

_SHA256 = hashes.SHA256()
_JST = timezone(timedelta(hours=9), "JST")
_YEAR = timedelta(days=365)
# The key classes a saved test PKI may hold (:meth:`TestPKI.save` writes RSA keys only). DSA stays
# out: its classes are deprecated in cryptography >= 51, and touching them at import time warns.
_SIGNING_KEY_CLASSES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _aware_utc(moment: datetime, what: str) -> datetime:
    """``moment`` in UTC, whole seconds (X.509 times have no fractions); naive datetimes refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _new_serial(rng: random.Random) -> int:
    # 63 bits with the top bit set: positive, fixed width (16 hex digits), well under RFC 5280's 20 octets.
    return rng.randrange(1 << 62, 1 << 63)


def _rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes = field(repr=False)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def rsa_key(self) -> rsa.RSAPrivateKey:
        """The key, typed as RSA (every key this PKI generates itself is RSA)."""
        if not isinstance(self.key, rsa.RSAPrivateKey):
            raise TypeError(f"not an RSA key: {type(self.key).__name__}")
        return self.key

    @property
    def serial_hex(self) -> str:
        """The serial number as the verifier reports it: uppercase hex, no leading zeros."""
        return format(self.cert.serial_number, "X")


@dataclass(frozen=True)
class Resident:
    """A (fictitious) person: the 基本4情報 as J-LIS would put them into the certificate.

    ``sex`` is the code string ("1" 男, "2" 女, "3" 不明). ``name_kana`` is not in the certificate;
    it is what the applicant types into forms. ``name_alt``/``address_alt`` are the 代替文字 versions,
    set only when the name/address has characters outside the JIS range.
    """

    name: str
    name_kana: str
    sex: str
    birth_date: date
    address: str
    name_alt: str | None = None
    address_alt: str | None = None


def utf8_other_name(oid: str | ObjectIdentifier, value: str) -> x509.OtherName:
    """An otherName whose value is a DER UTF8String.

    cryptography's ``OtherName.value`` is the DER of the *inner* value (here the UTF8String TLV);
    cryptography adds the ``[0] EXPLICIT`` wrapper itself when encoding.
    """
    encoded = value.encode("utf-8")
    n = len(encoded)
    if n < 0x80:
        length = bytes([n])
    else:
        body = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(body)]) + body
    type_id = oid if isinstance(oid, ObjectIdentifier) else ObjectIdentifier(oid)
    return x509.OtherName(type_id, b"\x0c" + length + encoded)


def resident_other_names(resident: Resident) -> list[x509.GeneralName]:
    """The subjectAltName entries J-LIS would issue for ``resident`` (package-format.md §4)."""
    names: list[x509.GeneralName] = [utf8_other_name(OID_NAME, resident.name)]
    if resident.name_alt is not None:
        names.append(utf8_other_name(OID_NAME_ALT, resident.name_alt))
    names.append(utf8_other_name(OID_SEX, resident.sex))
    names.append(utf8_other_name(OID_BIRTH_DATE, encode_era_date(resident.birth_date)))
    names.append(utf8_other_name(OID_ADDRESS, resident.address))
    if resident.address_alt is not None:
        names.append(utf8_other_name(OID_ADDRESS_ALT, resident.address_alt))
    return names


def _birthday(year: int, birth: date) -> date:
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def _fifth_birthday_after(issued: date, birth: date) -> date:
    first = _birthday(issued.year, birth)
    if first <= issued:
        first = _birthday(issued.year + 1, birth)
    return _birthday(first.year + 4, birth)


def _key_usage(names: Sequence[str]) -> x509.KeyUsage:
    unknown = set(names) - set(_KEY_USAGE_FLAGS)
    if unknown:
        raise ValueError(f"unknown key usage: {sorted(unknown)}; choose from {_KEY_USAGE_FLAGS}")
    flags = {flag: flag in names for flag in _KEY_USAGE_FLAGS}
    return x509.KeyUsage(**flags)


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(issuer))


def _raw_sign(
    key: CertificateIssuerPrivateKeyTypes, data: bytes, hash_alg: hashes.HashAlgorithm | None
) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey) and hash_alg is not None:
        return key.sign(data, padding.PKCS1v15(), hash_alg)
    if isinstance(key, ec.EllipticCurvePrivateKey) and hash_alg is not None:
        return key.sign(data, ec.ECDSA(hash_alg))
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.sign(data)
    # Last, so that only DSA material (made by the tests that prove its refusal) touches the
    # deprecated class.
    if isinstance(key, dsa.DSAPrivateKey) and hash_alg is not None:
        return key.sign(data, hash_alg)
    raise TypeError(f"cannot re-sign with {type(key).__name__}")


# Hashes cryptography's builders refuse to sign with (cryptography 50: 'Hash algorithm "sha1" not
# supported for signatures'). Weak-algorithm tests still need certificates and CRLs signed with them,
# so those are signed by the builder with SHA-256 and then re-signed by hand (:func:`_resign`).
_LEGACY_HASHES = frozenset({"sha1", "md5"})


def _is_legacy(hash_alg: hashes.HashAlgorithm | None) -> bool:
    return hash_alg is not None and hash_alg.name in _LEGACY_HASHES


def _builder_hash(hash_alg: hashes.HashAlgorithm | None) -> hashes.HashAlgorithm | None:
    """The hash to give cryptography's builder: SHA-256 as a placeholder for a legacy hash."""
    return _SHA256 if _is_legacy(hash_alg) else hash_alg


def _signature_algorithm(key: CertificateIssuerPrivateKeyTypes, hash_alg: hashes.HashAlgorithm) -> Any:
    kind = (
        "rsa" if isinstance(key, rsa.RSAPrivateKey)
        else "ecdsa" if isinstance(key, ec.EllipticCurvePrivateKey)
        else "dsa" if isinstance(key, dsa.DSAPrivateKey)
        else None
    )
    if kind is None:
        raise TypeError(f"no {hash_alg.name} signature algorithm for {type(key).__name__}")
    # RFC 3279: RSA algorithm identifiers carry NULL parameters, (EC)DSA ones none.
    return asn1_algos.SignedDigestAlgorithm(
        {"algorithm": f"{hash_alg.name}_{kind}", "parameters": asn1_core.Null() if kind == "rsa" else None}
    )


def _resign(
    der: bytes,
    key: CertificateIssuerPrivateKeyTypes,
    hash_alg: hashes.HashAlgorithm | None,
    *,
    crl: bool,
    drop_next_update: bool = False,
) -> bytes:
    """Do to a signed certificate or CRL what cryptography's builders refuse to, and re-sign it.

    That is: sign with a legacy hash (SHA-1, MD5), and omit a CRL's nextUpdate, which RFC 5280
    allows but the builder refuses; such a CRL is never "current", exactly what a verifier must not
    accept as revocation data.
    """
    # asn1crypto names the fields differently in the two structures.
    outer_cls, tbs_field, signature_field = (
        (asn1_crl.CertificateList, "tbs_cert_list", "signature") if crl
        else (asn1_x509.Certificate, "tbs_certificate", "signature_value")
    )
    outer = outer_cls.load(der)
    tbs = outer[tbs_field]
    algorithm = outer["signature_algorithm"]
    if hash_alg is not None and _is_legacy(hash_alg):
        algorithm = _signature_algorithm(key, hash_alg)
        tbs["signature"] = algorithm
    if drop_next_update:
        tbs["next_update"] = None
    tbs_der = bytes(tbs.dump(force=True))
    signed = outer_cls(
        {
            tbs_field: type(tbs).load(tbs_der),
            "signature_algorithm": algorithm,
            signature_field: _raw_sign(key, tbs_der, hash_alg),
        }
    )
    return bytes(signed.dump())


def _fingerprint(issued: Issued) -> str:
    return hashlib.sha256(issued.cert_der()).hexdigest()


@dataclass
class TestPKI:
    """The JPKI-TEST and PORTAL-TEST hierarchies, plus a seeded serial-number source.

    Mutable only in ``rng``: every certificate issued advances it, so a sequence of calls after
    :meth:`generate` (or :meth:`load`) is reproducible.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    jpki_roots: list[Issued]
    jpki_intermediate: Issued
    portal_root: Issued
    portal_server: Issued
    now: datetime
    seed: int
    key_bits: int
    rng: random.Random = field(repr=False, compare=False)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        *,
        now: datetime,
        seed: int = 0,
        key_bits: int = 2048,
        key_source: Callable[[str], rsa.RSAPrivateKey] | None = None,
    ) -> TestPKI:
        """Create both hierarchies valid at ``now``.

        Root generation 1 is valid from ``now - 9y`` to ``now + 1y``, generation 2 from ``now - 2y``
        to ``now + 10y``: both are valid at ``now`` and share :data:`JPKI_ROOT_SUBJECT`.

        ``key_source(purpose)`` supplies the CA and portal keys instead of fresh random ones; the
        purposes are :data:`KEY_PURPOSES` (``"jpki-root-g1"`` … ``"portal-server"``), each asked for
        once. With a deterministic source, the same ``now`` and ``seed`` give byte-identical
        certificates (RSA PKCS#1 v1.5 signatures are deterministic).
        """
        now = _aware_utc(now, "now")
        rng = random.Random(seed)

        def new_key(purpose: str) -> rsa.RSAPrivateKey:
            return _rsa_key(key_bits) if key_source is None else key_source(purpose)

        root_g1 = cls._self_signed(
            JPKI_ROOT_SUBJECT, now - 9 * _YEAR, now + 1 * _YEAR, rng, new_key("jpki-root-g1")
        )
        root_g2 = cls._self_signed(
            JPKI_ROOT_SUBJECT, now - 2 * _YEAR, now + 10 * _YEAR, rng, new_key("jpki-root-g2")
        )
        intermediate = cls._issue_ca(
            root_g2,
            JPKI_INTERMEDIATE_SUBJECT,
            now - 1 * _YEAR,
            now + 8 * _YEAR,
            rng,
            new_key("jpki-intermediate"),
            path_length=0,
            policy_oid=JPKI_SIGNING_POLICY_OID,
            cdp=f"{CRL_BASE_URL}jpki-root-g2.crl",
        )
        portal_root = cls._self_signed(
            PORTAL_ROOT_SUBJECT, now - 5 * _YEAR, now + 10 * _YEAR, rng, new_key("portal-root")
        )
        portal_key = new_key("portal-server")
        portal_cert = (
            x509.CertificateBuilder()
            .subject_name(PORTAL_SERVER_SUBJECT)
            .issuer_name(portal_root.cert.subject)
            .public_key(portal_key.public_key())
            .serial_number(_new_serial(rng))
            .not_valid_before(now - timedelta(days=90))
            .not_valid_after(now + 2 * _YEAR)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(("digital_signature",)), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("portal-sim.test")]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(portal_key.public_key()), critical=False)
            .add_extension(_aki(portal_root.cert), critical=False)
            .sign(portal_root.key, _SHA256)
        )
        return cls(
            jpki_roots=[root_g1, root_g2],
            jpki_intermediate=intermediate,
            portal_root=portal_root,
            portal_server=Issued(portal_cert, portal_key),
            now=now,
            seed=seed,
            key_bits=key_bits,
            rng=rng,
        )

    @staticmethod
    def _self_signed(
        subject: x509.Name, not_before: datetime, not_after: datetime, rng: random.Random, key: rsa.RSAPrivateKey
    ) -> Issued:
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(_new_serial(rng))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(("key_cert_sign", "crl_sign")), critical=True)
            .add_extension(ski, critical=False)
            # Self-referencing AKI: with several same-named roots, the key id is what tells them apart.
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(key, _SHA256)
        )
        return Issued(cert, key)

    @staticmethod
    def _issue_ca(
        issuer: Issued,
        subject: x509.Name,
        not_before: datetime,
        not_after: datetime,
        rng: random.Random,
        key: rsa.RSAPrivateKey,
        *,
        path_length: int | None,
        policy_oid: str | None,
        cdp: str | None,
        serial: int | None = None,
    ) -> Issued:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(_new_serial(rng) if serial is None else serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_key_usage(("key_cert_sign", "crl_sign")), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(_aki(issuer.cert), critical=False)
        )
        if policy_oid is not None:
            builder = builder.add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier(policy_oid), None)]),
                critical=False,
            )
        if cdp is not None:
            builder = builder.add_extension(_cdp(cdp), critical=False)
        return Issued(builder.sign(issuer.key, _SHA256), key)

    # -- issuing -----------------------------------------------------------------------------

    def issue_ca(
        self,
        subject: x509.Name = JPKI_SIGNING_CA_SUBJECT,
        *,
        issuer: Issued | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key: rsa.RSAPrivateKey | None = None,
        path_length: int | None = 0,
        policy_oid: str | None = JPKI_SIGNING_POLICY_OID,
        with_cdp: bool = True,
        serial: int | None = None,
    ) -> Issued:
        """A CA certificate under ``issuer`` (default: the current root, ``jpki_roots[1]``).

        Defaults: valid from ``now - 1 year`` to ``now + 8 years`` (capped at the issuer's expiry),
        keyUsage keyCertSign + cRLSign, pathLength 0, the JPKI signing policy, a CRL distribution
        point of the issuer. Calling it twice with the same ``subject`` gives two key generations
        of one CA name — the trap a verifier must handle by key, not by name. ``serial`` None
        draws one from :attr:`rng`.
        """
        issuer = self.jpki_roots[1] if issuer is None else issuer
        nb = _aware_utc(not_before, "not_before") if not_before is not None else self.now - _YEAR
        na = _aware_utc(not_after, "not_after") if not_after is not None else self.now + 8 * _YEAR
        na = min(na, issuer.cert.not_valid_after_utc)
        return self._issue_ca(
            issuer, subject, nb, na, self.rng, _rsa_key(self.key_bits) if key is None else key,
            path_length=path_length, policy_oid=policy_oid,
            cdp=self.crl_url(issuer) if with_cdp else None, serial=serial,
        )

    def issuer_label(self, issuer: Issued) -> str:
        """A stable file/URL name for one of this PKI's CAs (``jpki-root-g2``, ``jpki-intermediate`` …)."""
        for i, root in enumerate(self.jpki_roots, start=1):
            if issuer.cert == root.cert:
                return f"jpki-root-g{i}"
        if issuer.cert == self.jpki_intermediate.cert:
            return "jpki-intermediate"
        if issuer.cert == self.portal_root.cert:
            return "portal-root"
        return "ca-" + _ski(issuer.cert).digest.hex()[:16]

    def crl_url(self, issuer: Issued) -> str:
        """The CRL distribution point put into certificates issued by ``issuer``."""
        return f"{CRL_BASE_URL}{self.issuer_label(issuer)}.crl"

    def issue_signer(
        self,
        resident: Resident,
        *,
        issuer: Issued | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key_bits: int = 2048,
        key_usage: tuple[str, ...] = ("digital_signature", "content_commitment"),
        policy_oid: str | None = JPKI_SIGNING_POLICY_OID,
        policy_critical: bool = False,
        with_cdp: bool = True,
        serial: int | None = None,
        key: CertificateIssuerPrivateKeyTypes | None = None,
        hash_alg: hashes.HashAlgorithm | None = _SHA256,
        other_names: Sequence[x509.GeneralName] | None = None,
        extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    ) -> Issued:
        """A 署名用電子証明書 for ``resident``.

        Defaults follow package-format.md §4: issued directly by ``jpki_roots[1]`` (as in
        production), valid from ``now - 1 day`` until the end (JST) of the 5th birthday after
        issue, capped at the issuer's expiry; keyUsage digitalSignature + nonRepudiation (critical);
        the JPKI signing policy; a CRL distribution point :meth:`crl_url`.

        Knobs for negative tests: ``key_usage=()`` omits keyUsage, ``policy_oid=None`` omits
        certificatePolicies, ``key`` supplies any signing key (DSA, EC, a small RSA key …),
        ``hash_alg`` is the issuer's signature hash (SHA-1 and MD5 work too; None only for
        Ed25519/Ed448 issuers), ``other_names`` replaces the subjectAltName entries (empty: no
        subjectAltName at all), ``extra_extensions`` adds ``(extension, critical)`` pairs.
        """
        usage = _key_usage(key_usage) if key_usage else None  # refuse typos before generating a key
        issuer = self.jpki_roots[1] if issuer is None else issuer
        nb = _aware_utc(not_before, "not_before") if not_before is not None else self.now - timedelta(days=1)
        if not_after is not None:
            na = _aware_utc(not_after, "not_after")
        else:
            last_day = _fifth_birthday_after(self.now.astimezone(_JST).date(), resident.birth_date)
            na = datetime.combine(last_day, time(23, 59, 59), _JST).astimezone(UTC)
            na = min(na, issuer.cert.not_valid_after_utc)
        subject_key = _rsa_key(key_bits) if key is None else key
        public_key = subject_key.public_key()
        serial_number = _new_serial(self.rng) if serial is None else serial
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "Tokyo"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "Minato-ku"),
                # Like production, the subject carries an identifier, never the person's name.
                x509.NameAttribute(NameOID.COMMON_NAME, f"JPKI-TEST-{serial_number:X}"),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(public_key)
            .serial_number(serial_number)
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(_aki(issuer.cert), critical=False)
        )
        if usage is not None:
            builder = builder.add_extension(usage, critical=True)
        if policy_oid is not None:
            builder = builder.add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier(policy_oid), None)]),
                critical=policy_critical,
            )
        names = resident_other_names(resident) if other_names is None else list(other_names)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if with_cdp:
            builder = builder.add_extension(_cdp(self.crl_url(issuer)), critical=False)
        for extension, critical in extra_extensions:
            builder = builder.add_extension(extension, critical=critical)
        # cryptography types the hash as a private union of its own hash classes; every
        # HashAlgorithm it can sign with works at run time.
        cert = builder.sign(issuer.key, _builder_hash(hash_alg))  # type: ignore[arg-type]
        if _is_legacy(hash_alg):
            cert = x509.load_der_x509_certificate(
                _resign(cert.public_bytes(serialization.Encoding.DER), issuer.key, hash_alg, crl=False)
            )
        return Issued(cert, subject_key)

    def issue_crl(
        self,
        issuer: Issued,
        revoked: Sequence[tuple[int, datetime]],
        *,
        this_update: datetime,
        next_update: datetime | None,
        hash_alg: hashes.HashAlgorithm | None = _SHA256,
        crl_number: int | None = None,
    ) -> bytes:
        """A DER CRL signed by ``issuer`` listing ``(serial, revocation time)`` pairs.

        ``next_update=None`` produces a CRL without nextUpdate (never "current"). The CRL carries
        the issuer's key identifier (AKI), which is how a verifier must match it to one of several
        same-named roots, and a CRL number (default: ``this_update`` as a Unix timestamp, so that
        later CRLs have larger numbers).
        """
        tu = _aware_utc(this_update, "this_update")
        nu = _aware_utc(next_update, "next_update") if next_update is not None else None
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(tu)
            .next_update(nu if nu is not None else tu)  # placeholder, removed below
            .add_extension(_aki(issuer.cert), critical=False)
            .add_extension(
                x509.CRLNumber(int(tu.timestamp()) if crl_number is None else crl_number), critical=False
            )
        )
        for serial, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_aware_utc(when, "revocation time"))
                .build()
            )
        signed = builder.sign(issuer.key, _builder_hash(hash_alg))  # type: ignore[arg-type]  # see issue_signer()
        der = signed.public_bytes(serialization.Encoding.DER)
        if nu is None or _is_legacy(hash_alg):
            der = _resign(der, issuer.key, hash_alg, crl=True, drop_next_update=nu is None)
        return der

    # -- persistence -------------------------------------------------------------------------

    def _layout(self) -> list[tuple[str, Issued, str, str]]:
        """(manifest role, issued, certificate path, key path), relative to the save directory.

        CA certificates sit alone in ``jpki-roots/`` and ``portal-roots/`` so those directories can
        be handed to a verifier as trust stores; CA keys live apart in ``ca-keys/``.
        """
        rows = [
            (f"jpki_roots[{i}]", root, f"jpki-roots/jpki-root-g{i + 1}.pem",
             f"ca-keys/jpki-root-g{i + 1}.key.pem")
            for i, root in enumerate(self.jpki_roots)
        ]
        rows += [
            ("jpki_intermediate", self.jpki_intermediate, "jpki-intermediate.pem",
             "ca-keys/jpki-intermediate.key.pem"),
            ("portal_root", self.portal_root, "portal-roots/portal-root.pem", "ca-keys/portal-root.key.pem"),
            ("portal_server", self.portal_server, "portal-server.pem", "portal-server.key.pem"),
        ]
        return rows

    def save(self, directory: Path) -> None:
        """Write certificates (PEM), keys (unencrypted PKCS#8 PEM, mode 0600) and a manifest JSON.

        The manifest records the seed, ``now``, and the serial-number generator's state, so that
        :meth:`load` continues the same serial sequence.
        """
        directory = Path(directory)
        entries: dict[str, Any] = {}
        for role, issued, cert_path, key_path in self._layout():
            _write(directory / cert_path, issued.cert_pem(), private=False)
            _write(directory / key_path, issued.key_pem(), private=True)
            entries[role] = {
                "cert": cert_path,
                "key": key_path,
                "subject": issued.cert.subject.rfc4514_string(),
                "serial": issued.serial_hex,
                "sha256": _fingerprint(issued),
                "not_before": issued.cert.not_valid_before_utc.isoformat(),
                "not_after": issued.cert.not_valid_after_utc.isoformat(),
            }
        version, internal, gauss = self.rng.getstate()
        manifest = {
            "format": _MANIFEST_FORMAT,
            "seed": self.seed,
            "now": self.now.isoformat(),
            "key_bits": self.key_bits,
            "jpki_root_generations": len(self.jpki_roots),
            "crl_base_url": CRL_BASE_URL,
            "certificates": entries,
            "rng_state": [version, list(internal), gauss],
        }
        _write(
            directory / MANIFEST_NAME,
            (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"),
            private=False,
        )

    @classmethod
    def load(cls, directory: Path, *, seed: int | None = None) -> TestPKI:
        """Read what :meth:`save` wrote, checking every key against its certificate.

        Serial numbers continue from the saved generator state. Processes that each load the same
        directory and issue certificates would then draw the *same* serials; give each a distinct
        ``seed`` (a fresh generator) when their certificates meet the same CRL.
        """
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest.get("format") != _MANIFEST_FORMAT:
            raise ValueError(f"{directory / MANIFEST_NAME}: not a {_MANIFEST_FORMAT} manifest")
        entries = manifest["certificates"]

        def read(role: str) -> Issued:
            entry = entries[role]
            cert = x509.load_pem_x509_certificate((directory / entry["cert"]).read_bytes())
            # The expensive RSA consistency checks (primality of p and q) are skipped: these are test
            # keys written by save(), and the comparison with the certificate below still catches a
            # key file that does not belong. It makes loading ~100x faster.
            key = serialization.load_pem_private_key(
                (directory / entry["key"]).read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
            )
            if not isinstance(key, _SIGNING_KEY_CLASSES):
                raise ValueError(f"{entry['key']}: unsupported key type {type(key).__name__}")
            spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
                raise ValueError(f"{entry['key']} does not belong to {entry['cert']}")
            return Issued(cert, key)

        if seed is None:
            version, internal, gauss = manifest["rng_state"]
            rng = random.Random()
            rng.setstate((version, tuple(internal), gauss))
        else:
            rng = random.Random(seed)
        return cls(
            jpki_roots=[read(f"jpki_roots[{i}]") for i in range(manifest["jpki_root_generations"])],
            jpki_intermediate=read("jpki_intermediate"),
            portal_root=read("portal_root"),
            portal_server=read("portal_server"),
            now=datetime.fromisoformat(manifest["now"]),
            seed=manifest["seed"] if seed is None else seed,
            key_bits=manifest["key_bits"],
            rng=rng,
        )


def _cdp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        # Created 0600 from the start rather than chmod-ed after the key is already on disk.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


# -- sample residents -----------------------------------------------------------------------------

# (氏, フリガナ).
_FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"),
    ("伊藤", "イトウ"), ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"),
    ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山田", "ヤマダ"),
    ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"), ("井上", "イノウエ"),
    ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
)
# (氏, 代替文字, フリガナ). The variant forms (髙, 𠮷, 﨑, 濵) are outside JIS X 0208, which is why J-LIS
# also issues the 代替文字 field carrying the common substitute.
_VARIANT_FAMILY_NAMES: tuple[tuple[str, str, str], ...] = (
    ("髙橋", "高橋", "タカハシ"), ("𠮷田", "吉田", "ヨシダ"),
    ("山﨑", "山崎", "ヤマザキ"), ("濵田", "浜田", "ハマダ"),
)
_GIVEN_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "1": (
        ("太郎", "タロウ"), ("一郎", "イチロウ"), ("健太", "ケンタ"), ("翔太", "ショウタ"),
        ("大輔", "ダイスケ"), ("拓也", "タクヤ"), ("蓮", "レン"), ("陽翔", "ハルト"),
        ("悠真", "ユウマ"), ("浩", "ヒロシ"), ("誠", "マコト"), ("隆", "タカシ"),
    ),
    "2": (
        ("花子", "ハナコ"), ("陽子", "ヨウコ"), ("恵子", "ケイコ"), ("美咲", "ミサキ"),
        ("結衣", "ユイ"), ("陽菜", "ヒナ"), ("葵", "アオイ"), ("さくら", "サクラ"),
        ("由美", "ユミ"), ("真由美", "マユミ"), ("凛", "リン"), ("芽依", "メイ"),
    ),
}
# 港区 towns with their number of 丁目 (住居表示: 〇丁目〇番〇号).
_MINATO_TOWNS: tuple[tuple[str, int], ...] = (
    ("芝公園", 4), ("芝", 5), ("海岸", 3), ("東新橋", 2), ("新橋", 6), ("虎ノ門", 5), ("赤坂", 9),
    ("六本木", 7), ("麻布十番", 4), ("元麻布", 3), ("西麻布", 4), ("南麻布", 5), ("白金", 6),
    ("白金台", 5), ("高輪", 4), ("三田", 5), ("港南", 4), ("台場", 2), ("南青山", 7), ("北青山", 3),
    ("浜松町", 2), ("芝浦", 4),
)
_BUILDINGS: tuple[str, ...] = (
    "港南ハイツ", "芝浦レジデンス", "グランドメゾン三田", "青山コート", "パークハウス白金",
)
_VARIANT_BUILDINGS: tuple[tuple[str, str], ...] = (
    ("髙輪レジデンス", "高輪レジデンス"), ("𠮷野ハイツ", "吉野ハイツ"),
    ("﨑山マンション", "崎山マンション"),
)
_KANJI_DIGITS = ("", "一", "二", "三", "四", "五", "六", "七", "八", "九")
_BIRTH_RANGES: dict[str, tuple[date, date]] = {
    "昭和": (date(1935, 1, 1), date(1989, 1, 7)),
    "平成": (date(1989, 1, 8), date(2019, 4, 30)),
    "令和": (date(2019, 5, 1), date(2023, 12, 31)),
}
# Fixed pattern rather than a random draw so that any n ≥ 7 covers every era and both 代替文字 kinds.
_ERA_CYCLE = ("昭和", "平成", "昭和", "平成", "令和", "昭和", "平成")


def sample_residents(rng: random.Random, n: int) -> list[Resident]:
    """``n`` fictitious residents of 港区; deterministic given ``rng``'s state.

    Birth dates cycle through 昭和, 平成 and 令和; every 6th resident (from the 3rd) has a variant
    character in the 氏 with ``name_alt`` set, every 7th (from the 6th) lives in a building whose name
    needs ``address_alt``. Any ``n ≥ 7`` includes all of these.
    """
    residents = []
    for i in range(n):
        sex = rng.choice(("1", "2"))
        given, given_kana = rng.choice(_GIVEN_NAMES[sex])
        if i % 6 == 2:
            family, family_alt, family_kana = rng.choice(_VARIANT_FAMILY_NAMES)
            name_alt: str | None = f"{family_alt}　{given}"
        else:
            family, family_kana = rng.choice(_FAMILY_NAMES)
            name_alt = None
        town, chome_max = rng.choice(_MINATO_TOWNS)
        street = (
            f"東京都港区{town}{_KANJI_DIGITS[rng.randint(1, chome_max)]}丁目"
            f"{rng.randint(1, 30)}番{rng.randint(1, 40)}号"
        )
        address_alt: str | None = None
        if i % 7 == 5:
            building, building_alt = rng.choice(_VARIANT_BUILDINGS)
            room = f"{rng.randint(1, 12)}{rng.randint(1, 9):02d}"
            address = f"{street}　{building}{room}"
            address_alt = f"{street}　{building_alt}{room}"
        elif rng.random() < 0.4:
            address = f"{street}　{rng.choice(_BUILDINGS)}{rng.randint(1, 12)}{rng.randint(1, 9):02d}"
        else:
            address = street
        first, last = _BIRTH_RANGES[_ERA_CYCLE[i % len(_ERA_CYCLE)]]
        birth = date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))
        residents.append(
            Resident(
                name=f"{family}　{given}",
                name_kana=f"{family_kana}　{given_kana}",
                sex=sex,
                birth_date=birth,
                address=address,
                name_alt=name_alt,
                address_alt=address_alt,
            )
        )
    return residents


def generate_cli(out_dir: Path, now: datetime, seed: int) -> TestPKI:
    """Generate a PKI valid at ``now`` and save it to ``out_dir`` (``python -m signature testpki``)."""
    pki = TestPKI.generate(now=now, seed=seed)
    pki.save(Path(out_dir))
    return pki
