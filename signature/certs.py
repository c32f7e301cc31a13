"""Certificate paths: trust anchors from configuration, path validation by cryptography's verifier.

Path building and validation use ``cryptography.x509.verification`` (the Rust verifier signxml
also relies on): it tries every candidate issuer and keeps the one whose signature verifies, so
several JPKI root generations with one name are handled by key and signature, not by name. It
takes ~0.1 ms per path where pyhanko-certvalidator took ~13 ms (docs/decisions.md).

Deliberate choices:

* end-entity extensions: anything is permitted *except unknown critical extensions*, which are
  refused (RFC 5280 §4.2). Key usage and the JPKI policy are checked by :mod:`signature.verify`
  with their own reason codes. If real JPKI certificates ever carry a critical extension we do
  not know, it must be added here knowingly, not waved through.
* CA certificates: the Web PKI CA profile (basicConstraints, keyUsage keyCertSign, …), which the
  JPKI and portal CA certificates satisfy.
* Revocation is not checked here: :mod:`signature.revocation` keeps an indexed store of verified
  CRLs (pyhanko-certvalidator's soft-fail accepts a revoked certificate without a CRL
  distribution point, and re-parses every CRL per validation: pitfalls.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

from signature.errors import TrustConfigError, VerificationFailure
from signature.report import Indication, ReasonCode, SubIndication

__all__ = ["PORTAL_PATH_CACHE_SIZE", "TrustStore", "load_certificates"]

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


_EE_POLICY = verification.ExtensionPolicy.permit_all()
_CA_POLICY = verification.ExtensionPolicy.webpki_defaults_ca()


#: Validated paths a trust store may keep when asked to (``path_cache_size``). Only the portal's
#: store asks (signature.verify.TrustConfig.load): the portal certificate is the same in every
#: package and names no person. A cached path holds its leaf certificate, and an applicant's signing
#: certificate carries the 基本4情報 — personal data that the relay must not keep once it has handed
#: a package over (mission P4) — so the JPKI store keeps nothing.
PORTAL_PATH_CACHE_SIZE = 8

_PathKey = tuple[x509.Certificate, tuple[x509.Certificate, ...]]


class TrustStore:
    """A set of trust anchors, prepared once for path validation."""

    def __init__(self, anchors: Sequence[x509.Certificate], *, path_cache_size: int = 0) -> None:
        if not anchors:
            raise TrustConfigError("no trust anchors configured")
        self.anchors = tuple(anchors)
        self._store = verification.Store(list(anchors))
        self._paths: OrderedDict[_PathKey, tuple[x509.Certificate, ...]] = OrderedDict()
        self._paths_size = path_cache_size
        self._lock = threading.Lock()

    def validate(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        *,
        at: datetime,
        untrusted: ReasonCode = ReasonCode.UNTRUSTED_CHAIN,
    ) -> tuple[x509.Certificate, ...]:
        """Validate ``leaf`` at ``at`` up to one of the anchors; return the path, root first.

        Failures raise :class:`VerificationFailure` classified as in ETSI EN 319 102-1.

        With a path cache (``path_cache_size`` > 0, off by default: see :data:`PORTAL_PATH_CACHE_SIZE`),
        a path found earlier for the same ``leaf`` and ``intermediates`` is reused when every one of
        its certificates is within its validity period at ``at``: everything else the verifier
        checks (signatures, names, constraints, key usages, extensions, depth, the anchors of this
        store) does not depend on the time, so that path is valid at ``at`` too and the verifier
        would accept. Anything else — no cached path, a certificate out of its period — goes to the
        verifier, and only its successes are cached, so refusals and their classification are the
        verifier's. (When several valid paths exist, which one is returned is not specified by the
        verifier either.) tests/signature/test_verify_passes.py shows the expired cases.
        """
        if self._paths_size <= 0:
            return self._verify(leaf, intermediates, at, untrusted)
        key: _PathKey = (leaf, tuple(intermediates))
        with self._lock:
            cached = self._paths.get(key)
            if cached is not None:
                self._paths.move_to_end(key)
        if cached is not None and all(c.not_valid_before_utc <= at <= c.not_valid_after_utc for c in cached):
            return cached
        path = self._verify(leaf, intermediates, at, untrusted)
        with self._lock:
            self._paths[key] = path
            self._paths.move_to_end(key)
            while len(self._paths) > self._paths_size:
                self._paths.popitem(last=False)
        return path

    def _verify(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], at: datetime, untrusted: ReasonCode
    ) -> tuple[x509.Certificate, ...]:
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(at)
            .max_chain_depth(4)
            .extension_policies(ee_policy=_EE_POLICY, ca_policy=_CA_POLICY)
            .build_client_verifier()
        )
        try:
            chain = verifier.verify(leaf, list(intermediates)).chain
        except verification.VerificationError as exc:
            raise _classify(leaf, at, untrusted) from exc
        return tuple(reversed(chain))


def _classify(leaf: x509.Certificate, at: datetime, untrusted: ReasonCode) -> VerificationFailure:
    # The verifier's message is not a stable interface (and names subjects); decide from the leaf.
    if at < leaf.not_valid_before_utc:
        return VerificationFailure(
            ReasonCode.CERT_NOT_YET_VALID, "the certificate was not yet valid at the validation time",
            indication=Indication.FAILED, sub_indication=SubIndication.NOT_YET_VALID,
        )
    if at > leaf.not_valid_after_utc:
        return VerificationFailure(
            ReasonCode.CERT_EXPIRED, "the certificate had expired at the validation time",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.OUT_OF_BOUNDS_NO_POE,
        )
    return VerificationFailure(
        untrusted, "no valid certificate path to a configured trust anchor",
        indication=Indication.INDETERMINATE, sub_indication=SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
