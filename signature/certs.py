"""Certificate paths: trust anchors from configuration, path validation by pyhanko-certvalidator.

pyhanko-certvalidator builds and validates the path (several JPKI root generations share one
name; it tries every candidate issuer and keeps the one whose signature verifies). It is run with
revocation checking *off*: revocation comes from :mod:`signature.revocation`'s indexed store,
because certvalidator re-processes every CRL on every validation and, in its soft-fail mode,
accepts a revoked certificate that has no CRL distribution point (pitfalls.md).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors

from signature.errors import TrustConfigError, VerificationFailure
from signature.report import Indication, ReasonCode, SubIndication

__all__ = ["load_certificates", "validate_path"]

_T = TypeVar("_T")
_CERT_SUFFIXES = {".pem", ".crt", ".cer", ".der"}


def load_certificates(sources: Iterable[Path]) -> tuple[x509.Certificate, ...]:
    """Certificates from PEM (one or more per file) or DER files, or directories of them."""
    certs: list[x509.Certificate] = []
    for source in sources:
        if source.is_dir():
            files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in _CERT_SUFFIXES)
        elif source.is_file():
            files = [source]
        else:
            raise TrustConfigError(f"certificate source {source} does not exist")
        for path in files:
            data = path.read_bytes()
            try:
                if b"-----BEGIN CERTIFICATE-----" in data:
                    certs.extend(x509.load_pem_x509_certificates(data))
                else:
                    certs.append(x509.load_der_x509_certificate(data))
            except ValueError as exc:
                raise TrustConfigError(f"{path} does not hold a certificate") from exc
    return tuple(certs)


_loops = threading.local()


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run certvalidator's coroutine API synchronously (fetching is off, so nothing waits on I/O).

    One event loop per thread, reused: verification is CPU-bound and called from worker threads;
    calling it from inside a running event loop's thread is a programming error.
    """
    loop = getattr(_loops, "loop", None)
    if loop is None:
        loop = _loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def validate_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    roots: Sequence[x509.Certificate],
    at: datetime,
    key_usage: frozenset[str],
    untrusted: ReasonCode = ReasonCode.UNTRUSTED_CHAIN,
) -> tuple[x509.Certificate, ...]:
    """Validate ``leaf`` at ``at`` up to one of ``roots``; return the path, root first.

    ``key_usage`` uses certvalidator's names (``digital_signature``, ``non_repudiation``).
    Failures raise :class:`VerificationFailure` classified as in ETSI EN 319 102-1.
    """
    if not roots:
        raise TrustConfigError("no trust anchors configured")
    context = ValidationContext(
        trust_roots=[_asn1(r) for r in roots],
        moment=at,
        allow_fetching=False,
        revocation_mode="soft-fail",  # revocation is checked from the indexed store instead
        weak_hash_algos={"md2", "md5", "sha1"},
    )
    validator = CertificateValidator(
        _asn1(leaf), intermediate_certs=[_asn1(c) for c in intermediates], validation_context=context
    )
    try:
        path = _run(validator.async_validate_usage(set(key_usage)))  # type: ignore[no-untyped-call]
    except cv_errors.ExpiredError as exc:
        raise VerificationFailure(
            ReasonCode.CERT_EXPIRED, "a certificate of the path had expired at the validation time",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.OUT_OF_BOUNDS_NO_POE,
        ) from exc
    except cv_errors.NotYetValidError as exc:
        raise VerificationFailure(
            ReasonCode.CERT_NOT_YET_VALID, "a certificate of the path was not yet valid at the validation time",
            indication=Indication.FAILED, sub_indication=SubIndication.NOT_YET_VALID,
        ) from exc
    except cv_errors.DisallowedAlgorithmError as exc:
        raise VerificationFailure(
            ReasonCode.WEAK_ALGORITHM, "a certificate of the path uses a weak algorithm",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
        ) from exc
    except cv_errors.InvalidCertificateError as exc:
        raise VerificationFailure(
            ReasonCode.CERT_USAGE, "the certificate is not valid for signing (key usage)",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.CHAIN_CONSTRAINTS_FAILURE,
        ) from exc
    except (cv_errors.PathBuildingError, cv_errors.PathValidationError) as exc:
        raise VerificationFailure(
            untrusted, "no valid certificate path to a configured trust anchor",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
        ) from exc
    return tuple(x509.load_der_x509_certificate(c.dump()) for c in path)
