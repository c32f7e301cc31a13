"""An indexed store of verified CRLs, answering "was this certificate revoked at time T?".

Why it exists: JPKI CRLs are large (10^5–10^6 entries) and pyhanko-certvalidator re-processes every
CRL on every validation (6.5 validations/s at 100 000 entries). Worse, in its "soft-fail" and
"hard-fail" modes it reports a revoked certificate that has *no* CRLDistributionPoints extension as
valid even when the CRL is supplied (docs/pitfalls.md, "Certificates and CRLs"). This store parses
and indexes each CRL once, verifies its signature once per issuer key, and answers from the index.

Trust decisions made here:

* A CRL is used for a certificate only if it was verifiably signed by the key of **the issuer
  certificate that path validation used** for that certificate: a configured anchor, a configured
  intermediate, or a CA certificate that reached the verifier only inside the package
  (``KeyInfo/X509Data``) and chains to an anchor. The caller passes that issuer to :meth:`check`.
  Candidates are the CRLs whose issuer name equals the certificate's subject and whose
  AuthorityKeyIdentifier (when both sides carry one) equals its SubjectKeyIdentifier; the signature
  decides. Several JPKI CA key generations share one name, so the key chooses, never the name.
* Verifying a 10^6-entry CRL's signature means hashing 43 MB. So each CRL's tbsCertList is hashed
  once when it is loaded, and the signature is later checked against that digest (``Prehashed``)
  for each issuer key that asks, once per key; the verdict is cached with the CRL. A CRL whose
  issuer is configured (or was seen before in a validated path) is verified when it is loaded: a
  forged or damaged one is refused then, with a logged warning. A CRL of an issuer not seen yet is
  indexed and verified the first time a validated path's issuer certificate names it; if its
  signature does not verify with that key it is ignored for it (warning logged, once per key).
* A CRL with an IssuingDistributionPoint covers only certificates whose CRLDistributionPoints name
  one of its distribution points; a CRL without one covers every certificate of its issuer,
  including certificates that have no CRLDistributionPoints extension at all.
* Delta CRLs, indirect CRLs, CRLs limited to some revocation reasons or to attribute certificates,
  CRLs with an unknown critical extension and CRLs signed with MD5/SHA-1 or DSA are refused (with a
  warning): using them could turn "unknown" into "good".
* Freshness (package-format.md §4): the status of a certificate at time T is known from a covering
  CRL that was current at T (thisUpdate <= T < nextUpdate) or was issued after T, the newest such
  CRL first (it knows the most) — but never from a CRL issued after the certificate's notAfter,
  because RFC 5280 §3.3 lets a CA drop the entries of expired certificates. A CRL without
  nextUpdate is refused. No such CRL: the status is UNKNOWN (a stale CRL is not evidence).
* A listed serial is revoked from its revocationDate: at or before T it is REVOKED; after T it is
  GOOD at T and the result says when it was revoked later (``revoked_later``).
* crlEntryExtensions are not read. Reading them costs about 2.6 s per 10^6 entries, and ignoring
  them can only over-report revocation: a listed serial is treated as revoked from its
  revocationDate (certificateHold included), and the only extension that changes whose entry it is
  (certificateIssuer) belongs to indirect CRLs, which are refused as a whole.

Loading (:meth:`RevocationStore.refresh` for files, :meth:`RevocationStore.replace` for bytes)
builds a new immutable index and swaps it in: lookups see the whole old or the whole new index.
A CRL refused by a load does not take its issuer's revocation data with it: the CRLs previously
accepted for the same issuer (name and key identifier), or from the same file or label when the
refused bytes did not even name an issuer, stay in use. :meth:`RevocationStore.status` is a frozen
summary for metrics and readiness; its ``generation`` changes exactly when the usable CRLs change.

:func:`inspect_crl` is for the services that install CRLs (the relay's fetcher, the intake's CRL
inbox): before candidate bytes replace an installed copy it applies the same acceptance rules (one
code path), verifies the signature when the issuer is among the given certificates, and refuses a
CRL older than the installed copy (thisUpdate or CRL number going backwards: a replay).

Log messages and details name files, labels, codes and key identifiers, never certificate subjects
or serial numbers.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from signature.errors import SignatureError, TrustConfigError

__all__ = [
    "CrlInspection",
    "CrlRefusal",
    "RevocationResult",
    "RevocationStatus",
    "RevocationStore",
    "RevocationStoreStatus",
    "inspect_crl",
]

_log = logging.getLogger(__name__)

#: File names picked up from a directory source (case-insensitive); directories are not recursed.
CRL_SUFFIXES = frozenset({".crl", ".pem", ".der"})

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----\r?\n.*?-----END X509 CRL-----", re.DOTALL)

# CRL extensions whose meaning this module knows (RFC 5280 §5.2). A CRL with any other *critical*
# extension must not be used to determine status (RFC 5280 §5.2, last paragraph of the intro).
_KNOWN_CRL_EXTENSIONS = frozenset({
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.CRL_NUMBER,
    ExtensionOID.ISSUING_DISTRIBUTION_POINT,
    ExtensionOID.DELTA_CRL_INDICATOR,
    ExtensionOID.ISSUER_ALTERNATIVE_NAME,
    ExtensionOID.FRESHEST_CRL,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
})

# Collision-prone digests: a forged CRL must not be accepted because its signature uses them.
_WEAK_HASHES = ("md5", "sha1")

# DSA is refused for CRLs as it is for signatures (docs/package-format.md). It is recognised by
# the CRL's signature algorithm, never by touching cryptography's DSA classes: those are deprecated
# (cryptography >= 51) and would warn at import time.
_DSA_SIGNATURES = frozenset({
    SignatureAlgorithmOID.DSA_WITH_SHA1, SignatureAlgorithmOID.DSA_WITH_SHA224,
    SignatureAlgorithmOID.DSA_WITH_SHA256, SignatureAlgorithmOID.DSA_WITH_SHA384,
    SignatureAlgorithmOID.DSA_WITH_SHA512,
})

# Bounds of the per-index caches of resolved issuers (a validated path's issuer certificate → the
# CRLs its key signed). Anchors and the few CA certificates of a hierarchy fit many times over;
# the bounds only keep hostile variety from growing memory.
_BY_OBJECT_CACHE = 64
_BY_DER_CACHE = 512
#: CA certificates remembered from validated paths (to verify their CRLs when they are loaded).
_LEARNED_ISSUERS = 256


class RevocationStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class CrlRefusal(enum.StrEnum):
    """Why a CRL was not used. Stable codes, safe for metrics and logs (no personal data)."""

    #: A CRL file could not be read (I/O error).
    UNREADABLE = "UNREADABLE"
    #: Not a parseable CRL (DER, or PEM with an ``X509 CRL`` block), or a malformed field in it.
    MALFORMED = "MALFORMED"
    #: A signature algorithm this verifier does not know.
    UNSUPPORTED_ALGORITHM = "UNSUPPORTED_ALGORITHM"
    #: Signed with MD5 or SHA-1, or with DSA.
    WEAK_ALGORITHM = "WEAK_ALGORITHM"
    UNKNOWN_CRITICAL_EXTENSION = "UNKNOWN_CRITICAL_EXTENSION"
    DELTA_CRL = "DELTA_CRL"
    INDIRECT_CRL = "INDIRECT_CRL"
    #: IssuingDistributionPoint limited to some revocation reasons (absence proves nothing).
    PARTIAL_REASONS = "PARTIAL_REASONS"
    ATTRIBUTE_CERTS_ONLY = "ATTRIBUTE_CERTS_ONLY"
    #: No nextUpdate: never current.
    NO_NEXT_UPDATE = "NO_NEXT_UPDATE"
    #: nextUpdate not after thisUpdate.
    BAD_VALIDITY = "BAD_VALIDITY"
    #: The issuer it names (name and key identifier) is known and did not sign it: forged or damaged.
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    #: The issuer it names is known but may not sign CRLs (keyUsage without cRLSign).
    ISSUER_NOT_CRL_SIGNER = "ISSUER_NOT_CRL_SIGNER"

    # Checks before a CRL replaces an installed copy (:func:`inspect_crl`) only:

    #: More than one CRL where one is expected (a distribution point publishes one CRL).
    NOT_ONE_CRL = "NOT_ONE_CRL"
    #: Its thisUpdate or CRL number is older than the installed copy's: a replayed old CRL.
    OLDER_THAN_INSTALLED = "OLDER_THAN_INSTALLED"
    #: It names another issuer than the installed copy it would replace.
    ISSUER_CHANGED = "ISSUER_CHANGED"
    #: thisUpdate lies ahead of the time of the check by more than the allowed clock skew.
    THIS_UPDATE_IN_FUTURE = "THIS_UPDATE_IN_FUTURE"
    #: An issuer certificate is required for this source and none of those given signed it.
    UNVERIFIED_ISSUER = "UNVERIFIED_ISSUER"


@dataclass(frozen=True, slots=True)
class RevocationResult:
    """The answer of :meth:`RevocationStore.check`. ``detail`` is English and free of personal data.

    ``revoked_at`` is set for REVOKED. ``revoked_later`` is set for GOOD when the CRL lists the
    certificate with a revocationDate after the time asked about (revoked, but only later).
    """

    status: RevocationStatus
    revoked_at: datetime | None
    crl_this_update: datetime | None
    crl_next_update: datetime | None
    detail: str
    revoked_later: datetime | None = None


@dataclass(frozen=True, slots=True)
class RevocationStoreStatus:
    """A frozen summary of the CRLs in use, for metrics and readiness (no personal data).

    * ``generation`` increases by one whenever a load changed the usable revocation data (a CRL
      added, replaced or dropped); a load that changed nothing keeps it. Deliveries that were
      INDETERMINATE / TRY_LATER are worth verifying again when it changed.
    * ``crl_count``: CRLs in use, of which ``awaiting_issuer`` have an issuer not seen yet in any
      validated path (they are verified the first time a package's path names their issuer).
    * ``earliest_next_update``: for each issuer key and scope (distribution point, user/CA
      certificates), the latest nextUpdate of its CRLs; the earliest of those. From this moment on
      some issuer's certificates are TRY_LATER until a newer CRL is loaded. None without CRLs.
    * ``loaded_at``: the ``at`` passed to the last successful load (None if it was not given).
    * ``refused``: (code, count) of the CRLs the last load refused, plus CRLs whose signature did
      not verify with the issuer certificate of a validated path (SIGNATURE_INVALID).
    * ``kept_previous``: previously accepted CRLs kept because what replaced them was refused.
    * ``digest``: hex SHA-256 over the identities of the CRLs in use (their bytes' SHA-256), sorted:
      two stores — two processes, the relay and the intake — holding the same CRLs have the same
      digest, whatever their load history. ``""`` without CRLs. A verification result remembers
      the digest it was made with, so the same revocation data is never asked twice.
    """

    generation: int
    crl_count: int
    awaiting_issuer: int
    earliest_next_update: datetime | None
    loaded_at: datetime | None
    refused: tuple[tuple[CrlRefusal, int], ...]
    kept_previous: int
    digest: str = ""

    @property
    def refused_total(self) -> int:
        return sum(n for _, n in self.refused)

    def freshness(self, at: datetime, *, margin: timedelta) -> str:
        """``"ok"``, or why the CRLs in use cannot be relied on for ``margin`` from ``at`` (readiness).

        Not ok: no CRL in use, the earliest nextUpdate has passed (some issuer's certificates are
        TRY_LATER now), or it comes within ``margin`` (they will be unless a newer CRL arrives).
        """
        left = self.seconds_until_earliest_next_update(at)
        if left is None or self.crl_count == 0:
            return "no CRL in use"
        if left <= 0:
            return f"expired: the earliest nextUpdate passed {-left / 3600:.1f} h ago"
        if left < margin.total_seconds():
            return (f"expiring: the earliest nextUpdate is in {left / 3600:.1f} h "
                    f"(margin {margin.total_seconds() / 3600:g} h)")
        return "ok"

    def seconds_until_earliest_next_update(self, at: datetime) -> float | None:
        """Seconds from the aware datetime ``at`` to :attr:`earliest_next_update` (negative: past)."""
        if at.utcoffset() is None:
            raise SignatureError("naive datetime")
        if self.earliest_next_update is None:
            return None
        return (self.earliest_next_update - at).total_seconds()


@dataclass(frozen=True, slots=True)
class CrlInspection:
    """What :func:`inspect_crl` found out about candidate CRL bytes (no personal data).

    ``refusal`` None means the candidate may replace the installed copy; ``unchanged`` means it is
    the installed CRL itself (nothing to write). ``der`` is the CRL's DER (what to write and send,
    whatever the candidate's encoding), empty when refused before parsing. ``signature_verified``
    says whether one of the given issuer certificates verified it; a CRL of an issuer that reaches
    the verifier only inside packages cannot be verified here, and the store verifies it against
    the issuer of a validated path when it is first used.
    """

    refusal: CrlRefusal | None
    detail: str
    sha256: str  # of ``der``; "" when refused before parsing
    der: bytes = field(repr=False)
    unchanged: bool = False
    signature_verified: bool = False
    #: hex AuthorityKeyIdentifier, to name the issuer in logs (never the subject)
    issuer_key_id: str | None = None
    this_update: datetime | None = None
    next_update: datetime | None = None
    crl_number: int | None = None

    @property
    def accepted(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True, slots=True)
class _Signature:
    """What verifying a CRL's signature needs later, kept instead of the (up to 43 MB) CRL itself."""

    value: bytes = field(repr=False)
    #: the tbsCertList's digest under ``hash_alg``; empty for EdDSA
    digest: bytes = field(repr=False)
    hash_alg: hashes.HashAlgorithm | None
    params: padding.PKCS1v15 | padding.PSS | ec.ECDSA | None
    #: the tbsCertList itself, only for Ed25519/Ed448 (they sign the message, not a digest)
    tbs: bytes | None = field(repr=False)
    oid: x509.ObjectIdentifier

    def verifies_with(self, key: object) -> bool:
        try:
            if isinstance(key, rsa.RSAPublicKey):
                if not isinstance(self.params, padding.PKCS1v15 | padding.PSS) or self.hash_alg is None:
                    return False
                key.verify(self.value, self.digest, self.params, utils.Prehashed(self.hash_alg))
            elif isinstance(key, ec.EllipticCurvePublicKey):
                if not isinstance(self.params, ec.ECDSA) or self.hash_alg is None:
                    return False
                key.verify(self.value, self.digest, ec.ECDSA(utils.Prehashed(self.hash_alg)))
            elif isinstance(key, ed25519.Ed25519PublicKey):
                if self.oid != SignatureAlgorithmOID.ED25519 or self.tbs is None:
                    return False
                key.verify(self.value, self.tbs)
            elif isinstance(key, ed448.Ed448PublicKey):
                if self.oid != SignatureAlgorithmOID.ED448 or self.tbs is None:
                    return False
                key.verify(self.value, self.tbs)
            else:
                return False  # X25519/X448 cannot sign; DSA is refused
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            return False
        return True


@dataclass(frozen=True, slots=True, eq=False)
class _Crl:
    """One complete CRL, reduced to what a lookup needs."""

    file: str  # file name or label, for details
    position: str  # "#n" within a PEM bundle of several CRLs, else ""
    source: str  # the full path or label it was loaded from (for carrying it over)
    identity: bytes  # SHA-256 of the source bytes + position: same bytes, same CRL
    issuer_name: bytes  # DER of the CRL's issuer name
    key_id: bytes | None  # AuthorityKeyIdentifier.keyIdentifier
    this_update: datetime
    next_update: datetime
    #: IssuingDistributionPoint names (full names, relative names resolved against the CRL issuer);
    #: None when the CRL is not partitioned by distribution point.
    dp_names: frozenset[x509.GeneralName] | None
    only_user_certs: bool
    only_ca_certs: bool
    signature: _Signature = field(repr=False)
    #: serial number → revocationDate as integer seconds since the epoch (UTC): ints are smaller
    #: than datetimes; 10^6 entries retain about 120 MB (bench/bench_revocation.py).
    revoked: dict[int, int] = field(repr=False)
    #: SHA-256 of an issuer's SubjectPublicKeyInfo → does this CRL's signature verify with it.
    #: Filled once per key, shared by every index that holds this CRL.
    verdicts: dict[bytes, bool] = field(default_factory=dict, repr=False)
    #: the answer for every certificate this CRL does not list; results are immutable, so one
    #: shared instance spares ~3 µs of dataclass construction per lookup
    good: RevocationResult = field(init=False, repr=False)

    def __post_init__(self) -> None:
        good = RevocationResult(RevocationStatus.GOOD, None, self.this_update, self.next_update,
                                f"not listed in CRL {self.origin}")
        object.__setattr__(self, "good", good)  # the documented way to set a frozen field

    @property
    def origin(self) -> str:
        return self.file + self.position

    def verdict(self, key_hash: bytes, key: object) -> bool:
        known = self.verdicts.get(key_hash)
        if known is None:
            known = self.verdicts[key_hash] = self.signature.verifies_with(key)
        return known


#: (issuer name DER, key identifier or None) a refusal is about; None when the bytes named no issuer.
_Slot = tuple[bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class _SourceState:
    stat_key: tuple[int, int, int] | None  # (size, mtime_ns, inode) for files; None for bytes
    sha256: bytes
    crls: tuple[_Crl, ...]
    refusals: tuple[tuple[CrlRefusal, _Slot | None], ...]
    #: a file path or a caller's label: a refusal without an issuer keeps what this source gave before
    named: bool


@dataclass(frozen=True, slots=True)
class _IssuerIndex:
    #: CRLs without a distribution point restriction, latest thisUpdate first
    unscoped: tuple[_Crl, ...]
    #: distribution point name → the CRLs of that partition, latest thisUpdate first
    by_dp: dict[x509.GeneralName, tuple[_Crl, ...]]


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A validated path's issuer certificate with the CRLs its key signed (None: none usable)."""

    cert: x509.Certificate
    ski: bytes | None
    entry: _IssuerIndex | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Index:
    """An immutable snapshot of the usable CRLs; every load builds a new one and swaps it in.

    ``by_object``, ``by_der`` and ``lazily_refused`` are caches filled by lookups (under the
    store's resolve lock); they belong to this snapshot and die with it.
    """

    sources: dict[str, _SourceState]
    crls: tuple[_Crl, ...]  # every usable CRL once, carried-over ones included
    carried: tuple[_Crl, ...]
    #: issuer name DER → key identifier (None: CRL without AKI) → CRLs
    slots: dict[bytes, dict[bytes | None, tuple[_Crl, ...]]]
    refused: tuple[tuple[CrlRefusal, int], ...]
    generation: int
    loaded_at: datetime | None
    by_object: dict[int, tuple[x509.Certificate, _Resolved]] = field(default_factory=dict)
    by_der: dict[bytes, _Resolved] = field(default_factory=dict)
    lazily_refused: dict[bytes, None] = field(default_factory=dict)  # CRL identities


@dataclass(frozen=True, slots=True)
class _Issuer:
    cert: x509.Certificate
    name: bytes
    ski: bytes | None
    key_hash: bytes
    crl_sign: bool


def _set_digest(identities: Iterable[bytes]) -> str:
    ordered = sorted(identities)
    if not ordered:
        return ""
    h = hashlib.sha256()
    for identity in ordered:
        h.update(identity)
    return h.hexdigest()


def _empty_index(loaded_at: datetime | None = None) -> _Index:
    return _Index(sources={}, crls=(), carried=(), slots={}, refused=(), generation=0, loaded_at=loaded_at)


class RevocationStore:
    """Verified CRLs, indexed per issuer key; fed from files (:meth:`refresh`) or bytes (:meth:`replace`).

    ``sources`` are CRL files (DER, or PEM holding one or more CRLs) or directories of them
    (non-recursive; ``*.crl``, ``*.pem``, ``*.der``); a store without sources is fed with
    :meth:`replace`. ``issuers`` are the configured CA certificates (anchors, optional
    intermediates): their CRLs are verified as they are loaded. CRLs of other CAs — a signing CA
    that reaches the verifier only inside packages — are verified against the issuer certificate
    the path validation used, when :meth:`check` is first asked about it. A source path that does
    not exist raises :class:`TrustConfigError`; a CRL that is malformed, unsupported or forged is
    refused with a logged warning and counted in :meth:`status`. ``at`` (aware) is recorded as
    :attr:`RevocationStoreStatus.loaded_at`; the store never reads the clock.
    """

    def __init__(
        self, sources: Sequence[Path], issuers: Sequence[x509.Certificate], *, at: datetime | None = None
    ) -> None:
        self._sources = tuple(Path(s) for s in sources)
        self._configured = tuple(_issuer(cert) for cert in issuers)
        self._learned: dict[bytes, _Issuer] = {}  # key: certificate DER
        self._lock = threading.Lock()  # one load at a time
        self._resolve_lock = threading.Lock()  # one cache miss at a time (verifications, learning)
        if at is not None:
            _aware(at)
        self._index = _empty_index(at)
        if self._sources:
            self.refresh(at=at)

    @property
    def crl_count(self) -> int:
        """How many CRLs are in use (a CRL signed by two issuer certificates counts once)."""
        index = self._index
        return len(index.crls) - len(index.lazily_refused)

    @property
    def generation(self) -> int:
        """Changes (increases) exactly when a load changed the usable revocation data."""
        return self._index.generation

    def known_issuers(self) -> tuple[x509.Certificate, ...]:
        """The configured issuer certificates and those this store met in validated paths.

        For :func:`inspect_crl`: a CRL one of them signed can be verified before it is installed.
        """
        return tuple(issuer.cert for issuer in self._known_issuers())

    def status(self) -> RevocationStoreStatus:
        """A frozen summary of the current index (see :class:`RevocationStoreStatus`)."""
        index = self._index
        with self._resolve_lock:  # lookups add verdicts and lazily found forgeries meanwhile
            lazily = dict(index.lazily_refused)
            in_use = [crl for crl in index.crls if crl.identity not in lazily]
            awaiting = sum(1 for crl in in_use if not any(crl.verdicts.values()))
        latest: dict[tuple[object, ...], datetime] = {}
        for crl in in_use:
            scope = (crl.issuer_name, crl.key_id, crl.dp_names, crl.only_user_certs, crl.only_ca_certs)
            if scope not in latest or crl.next_update > latest[scope]:
                latest[scope] = crl.next_update
        refused = Counter(dict(index.refused))
        if lazily:
            refused[CrlRefusal.SIGNATURE_INVALID] += len(lazily)
        return RevocationStoreStatus(
            generation=index.generation,
            crl_count=len(in_use),
            awaiting_issuer=awaiting,
            earliest_next_update=min(latest.values(), default=None),
            loaded_at=index.loaded_at,
            refused=tuple(sorted(refused.items())),
            kept_previous=len(index.carried),
            digest=_set_digest(crl.identity for crl in in_use),
        )

    # --- loading -----------------------------------------------------------------------------

    def refresh(self, *, at: datetime | None = None) -> bool:
        """Re-scan the file sources and swap in a new index; True if the usable CRLs changed.

        A file is re-read only if its (size, mtime_ns, inode) changed, and re-parsed only if its
        SHA-256 changed too (a renamed or touched file is not re-verified and is not a change). A
        missing source raises :class:`TrustConfigError` and leaves the previous index in place.
        Lookups running meanwhile use the previous index until the new one is complete. A store
        without file sources (fed by :meth:`replace`) is left as it is: False.
        """
        if at is not None:
            _aware(at)
        if not self._sources:
            return False
        with self._lock:
            old = self._index
            by_hash = _by_hash(old)
            states: dict[str, _SourceState] = {}
            for path in self._scan():
                previous = old.sources.get(str(path))
                states[str(path)] = self._file_state(path, previous, by_hash)
            return self._swap(old, states, at)

    def replace(self, crls: Sequence[bytes] | Mapping[str, bytes], *, at: datetime | None = None) -> bool:
        """Make exactly ``crls`` (DER or PEM bytes) the CRL set, atomically; True if usable CRLs changed.

        Give a mapping (label → bytes; a label names the source in logs, e.g. its distribution
        point file name) when you can: when bytes under a label are refused without naming an
        issuer (a truncated download), what that label gave before stays in use. A CRL that is
        refused keeps its issuer's previously accepted CRLs in use either way. Bytes already loaded
        (same SHA-256) are not parsed or verified again. Only for a store without file sources.
        """
        if at is not None:
            _aware(at)
        if self._sources:
            raise TrustConfigError("this store reads CRL files: use refresh(), not replace()")
        if isinstance(crls, bytes | bytearray | memoryview):
            raise TrustConfigError("replace() takes a sequence or mapping of CRLs, not one CRL's bytes")
        if isinstance(crls, Mapping):
            items, named = [(str(label), data) for label, data in crls.items()], True
        else:
            items, named = [(f"crl[{i}]", data) for i, data in enumerate(crls)], False
        for label, data in items:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TrustConfigError(f"CRL {label} is not bytes")
        with self._lock:
            old = self._index
            by_hash = _by_hash(old)
            states = {}
            for label, data in items:
                raw = bytes(data)
                digest = hashlib.sha256(raw).digest()
                crls_, refusals = _reuse(by_hash.get(digest), label, label) or self._load_bytes(
                    raw, label, label, digest)
                states[label] = _SourceState(None, digest, crls_, refusals, named)
            return self._swap(old, states, at)

    def _swap(self, old: _Index, states: dict[str, _SourceState], at: datetime | None) -> bool:
        accepted: dict[bytes, _Crl] = {}
        refusals: list[tuple[CrlRefusal, _Slot | None, str, bool]] = []
        for label, state in states.items():
            for crl in state.crls:
                accepted.setdefault(crl.identity, crl)
            refusals.extend((code, slot, label, state.named) for code, slot in state.refusals)
        with self._resolve_lock:
            carried = _carry_over(old, accepted, refusals)
        for crl in carried:
            accepted[crl.identity] = crl
        if carried:
            _log.warning("keeping %d previously accepted CRL(s): what replaced them was refused", len(carried))
        changed = set(accepted) != {crl.identity for crl in old.crls}
        usable = tuple(accepted.values())
        slots: dict[bytes, dict[bytes | None, list[_Crl]]] = {}
        for crl in usable:
            slots.setdefault(crl.issuer_name, {}).setdefault(crl.key_id, []).append(crl)
        new = _Index(
            sources=states,
            crls=usable,
            carried=tuple(carried),
            slots={name: {kid: tuple(crls) for kid, crls in by_key.items()} for name, by_key in slots.items()},
            refused=tuple(sorted(Counter(code for code, *_ in refusals).items())),
            generation=old.generation + 1 if changed else old.generation,
            loaded_at=at,
            lazily_refused=self._still_refused(old, accepted),
        )
        if {id(crl) for crl in usable} == {id(crl) for crl in old.crls}:
            # The same CRL objects: what lookups resolved against the old index still holds.
            new = replace(new, by_object=old.by_object, by_der=old.by_der)
        self._index = new
        return changed

    def _still_refused(self, old: _Index, accepted: dict[bytes, _Crl]) -> dict[bytes, None]:
        with self._resolve_lock:  # lookups may be adding to it
            return {identity: None for identity in old.lazily_refused if identity in accepted}

    def _scan(self) -> list[Path]:
        found: list[Path] = []
        for source in self._sources:
            if source.is_dir():
                found.extend(sorted(
                    p for p in source.iterdir() if p.suffix.lower() in CRL_SUFFIXES and p.is_file()
                ))
            elif source.is_file():
                found.append(source)
            elif not source.exists():
                raise TrustConfigError(f"CRL source does not exist: {source}")
            else:
                raise TrustConfigError(f"CRL source is neither a file nor a directory: {source}")
        return list(dict.fromkeys(found))  # the same file named twice is loaded once

    def _file_state(
        self, path: Path, previous: _SourceState | None, by_hash: dict[bytes, tuple[_Crl, ...]]
    ) -> _SourceState:
        try:
            st = path.stat()
            stat_key = (st.st_size, st.st_mtime_ns, st.st_ino)
            if previous is not None and previous.stat_key == stat_key:
                return previous
            data = path.read_bytes()
        except OSError as exc:
            # A file rotated away between listing and reading is not a configuration error.
            _log.warning("cannot read CRL file %s: %s", path, exc.strerror or type(exc).__name__)
            return _SourceState(None, b"", (), ((CrlRefusal.UNREADABLE, None),), True)
        digest = hashlib.sha256(data).digest()
        crls, refusals = _reuse(by_hash.get(digest), path.name, str(path)) or self._load_bytes(
            data, path.name, str(path), digest)
        return _SourceState(stat_key, digest, crls, refusals, True)

    def _load_bytes(
        self, data: bytes, name: str, source: str, digest: bytes
    ) -> tuple[tuple[_Crl, ...], tuple[tuple[CrlRefusal, _Slot | None], ...]]:
        crls: list[_Crl] = []
        refusals: list[tuple[CrlRefusal, _Slot | None]] = []
        issuers = self._known_issuers()

        parsed = _parse_crls(data)
        if not parsed:
            _log.warning("ignoring CRL file %s: PEM without an X509 CRL block", name)
            refusals.append((CrlRefusal.MALFORMED, None))
        for position, crl in parsed:
            if crl is None:
                _log.warning("ignoring CRL %s%s: malformed", name, position)
                refusals.append((CrlRefusal.MALFORMED, None))
                continue
            loaded = _accept(crl, name, position, source, digest, issuers)
            if isinstance(loaded, _Crl):
                crls.append(loaded)
            else:
                refusals.append(loaded)
        return tuple(crls), tuple(refusals)

    def _known_issuers(self) -> tuple[_Issuer, ...]:
        with self._resolve_lock:
            return (*self._configured, *self._learned.values())

    # --- lookups -------------------------------------------------------------------------------

    def check(self, cert: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationResult:
        """The revocation status of ``cert`` at the aware datetime ``at``.

        ``issuer`` must be the issuer certificate that *path validation* used for ``cert`` — a
        configured anchor or intermediate, or a CA certificate carried in the package that chained
        to an anchor: its key is what a CRL must be signed with. This method does not validate
        paths; it only makes sure ``issuer`` issued ``cert`` (name and key identifier; the
        signature when key identifiers are missing), so that the CRLs of another same-name CA are
        never consulted. See the module docstring for which CRL decides.
        """
        if at.utcoffset() is None:  # naive (tzinfo None, or a tzinfo without an offset)
            raise SignatureError("naive datetime")
        resolved = self._resolve(self._index, issuer)
        if resolved.entry is None:
            return _unknown(resolved.reason)
        if not _issued_by(cert, resolved):
            return _unknown("the given issuer certificate did not issue this certificate")
        return _lookup(resolved.entry, cert.serial_number, cert, at)

    def _resolve(self, index: _Index, issuer: x509.Certificate) -> _Resolved:
        # Fast path: the same certificate object as last time (anchors, a long-lived caller).
        hit = index.by_object.get(id(issuer))
        if hit is not None and hit[0] is issuer:  # the stored reference keeps the id from being reused
            return hit[1]
        der = issuer.public_bytes(Encoding.DER)
        resolved = index.by_der.get(der)
        if resolved is None:
            with self._resolve_lock:
                resolved = index.by_der.get(der)
                if resolved is None:
                    resolved = self._resolve_slow(index, issuer, der)
                    if len(index.by_der) < _BY_DER_CACHE:
                        index.by_der[der] = resolved
        if len(index.by_object) >= _BY_OBJECT_CACHE:
            index.by_object.clear()  # package-carried certificates are new objects every time
        index.by_object[id(issuer)] = (issuer, resolved)
        return resolved

    def _resolve_slow(self, index: _Index, cert: x509.Certificate, der: bytes) -> _Resolved:
        """Which CRLs did this issuer's key sign? Verifies each candidate's signature once per key.

        Called under ``_resolve_lock``.
        """
        issuer = _issuer(cert)
        if not issuer.crl_sign:
            return _Resolved(cert, issuer.ski, None, "the issuer certificate may not sign CRLs (keyUsage)")
        by_key = index.slots.get(issuer.name)
        if not by_key:
            return _Resolved(cert, issuer.ski, None, "no CRL of this issuer is loaded")
        if issuer.ski is None:
            candidates = [crl for crls in by_key.values() for crl in crls]
        else:
            candidates = [*by_key.get(issuer.ski, ()), *by_key.get(None, ())]
        key = cert.public_key()
        usable = []
        for crl in candidates:
            fresh = issuer.key_hash not in crl.verdicts
            if crl.verdict(issuer.key_hash, key):
                usable.append(crl)
            elif crl.key_id is not None and crl.key_id == issuer.ski and not any(crl.verdicts.values()):
                # It names this key and this key did not sign it: forged or damaged.
                index.lazily_refused[crl.identity] = None
                if fresh:
                    _log.warning("ignoring CRL %s: its signature does not verify with the issuer key %s "
                                 "of a validated path (forged or damaged)", crl.origin, _key_label(issuer))
        remember = usable and der not in self._learned and len(self._learned) < _LEARNED_ISSUERS
        if remember and not any(c.cert == cert for c in self._configured):
            # So that its next CRLs are verified (and a forged one refused) when they are loaded.
            self._learned[der] = issuer
        if not usable:
            return _Resolved(cert, issuer.ski, None, "no CRL signed by this issuer's key is loaded")
        return _Resolved(cert, issuer.ski, _issuer_index(usable), "")


# --- checking a CRL before it is installed ---------------------------------------------------------

#: How far a candidate's thisUpdate may lie ahead of the time of the check (clocks differ a little).
MAX_THIS_UPDATE_SKEW = timedelta(minutes=5)


def inspect_crl(
    data: bytes,
    *,
    at: datetime,
    issuers: Sequence[x509.Certificate] = (),
    installed: bytes | None = None,
    require_signature: bool = False,
    max_skew: timedelta = MAX_THIS_UPDATE_SKEW,
) -> CrlInspection:
    """May ``data`` (one CRL, DER or PEM) replace the ``installed`` copy of the same source at ``at``?

    Never raises for bad bytes; the answer is a frozen :class:`CrlInspection`. The checks, in order:

    * exactly one parseable CRL (MALFORMED, NOT_ONE_CRL);
    * the store's own acceptance rules, the same code (algorithms, critical extensions, delta,
      indirect and reasons-limited CRLs, nextUpdate present and after thisUpdate);
    * its signature, when one of ``issuers`` (configured anchors and intermediates, the issuer
      certificate configured for the source, :meth:`RevocationStore.known_issuers`) names it by
      name and key identifier: SIGNATURE_INVALID or ISSUER_NOT_CRL_SIGNER as in the store. With
      ``require_signature`` one of them must have signed it (UNVERIFIED_ISSUER);
    * thisUpdate not later than ``at`` + ``max_skew`` (THIS_UPDATE_IN_FUTURE): a CRL from the future
      would make every genuine later one look older;
    * against ``installed`` (the bytes it would replace; None or unparseable: nothing to compare):
      the same issuer name (ISSUER_CHANGED), and neither thisUpdate nor CRL number going backwards
      (OLDER_THAN_INSTALLED — a replayed old CRL). An installed copy that no given issuer verifies
      while the candidate is verified is not evidence of order and is not compared: a forged copy
      must not lock the genuine ones out. The same CRL as installed is accepted as ``unchanged``.

    ``at`` must be aware. Nothing is logged; the caller reports the outcome.
    """
    _aware(at)
    parsed = _parse_crls(bytes(data))
    if not parsed:
        return _inspection_refused(CrlRefusal.MALFORMED, "PEM without an X509 CRL block")
    if len(parsed) > 1:
        return _inspection_refused(CrlRefusal.NOT_ONE_CRL, f"{len(parsed)} CRLs where one is expected")
    crl = parsed[0][1]
    if crl is None:
        return _inspection_refused(CrlRefusal.MALFORMED, "not a parseable CRL (truncated or damaged)")
    known = [_issuer(cert) for cert in issuers]
    try:
        examined = _examine(crl, known)
        der = crl.public_bytes(Encoding.DER)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return _inspection_refused(CrlRefusal.MALFORMED, f"malformed ({type(exc).__name__})")
    if isinstance(examined, _Refused):
        return _inspection_refused(examined.code, examined.why, slot=examined.slot)
    verified = any(examined.verdicts.values())

    def answer(refusal: CrlRefusal | None, detail: str, *, unchanged: bool = False) -> CrlInspection:
        return CrlInspection(
            refusal=refusal, detail=detail, sha256=hashlib.sha256(der).hexdigest(), der=der, unchanged=unchanged,
            signature_verified=verified, issuer_key_id=examined.slot[1].hex() if examined.slot[1] else None,
            this_update=examined.this_update, next_update=examined.next_update, crl_number=examined.crl_number)

    if require_signature and not verified:
        return answer(CrlRefusal.UNVERIFIED_ISSUER, "none of the issuer certificates configured for it signed it")
    if examined.this_update > at + max_skew:
        return answer(CrlRefusal.THIS_UPDATE_IN_FUTURE, "its thisUpdate lies in the future")
    previous = _installed_crl(installed)
    if previous is None:
        return answer(None, "verified" if verified else "accepted; its issuer is not known yet")
    previous_crl, previous_der = previous
    if previous_der == der:
        return answer(None, "the installed CRL itself", unchanged=True)
    if previous_crl.issuer.public_bytes() != examined.slot[0]:
        return answer(CrlRefusal.ISSUER_CHANGED, "it names another issuer than the installed copy")
    try:
        before = _examine(previous_crl, known)
        before_this_update = previous_crl.last_update_utc
        before_number = _find(previous_crl.extensions, x509.CRLNumber)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return answer(None, "replaces an installed copy that does not parse")
    if verified and not (isinstance(before, _Examined) and any(before.verdicts.values())):
        return answer(None, "replaces an installed copy that no given issuer verifies")
    if examined.this_update < before_this_update:
        return answer(CrlRefusal.OLDER_THAN_INSTALLED, "its thisUpdate is older than the installed copy's")
    if (before_number is not None and examined.crl_number is not None
            and examined.crl_number < before_number.crl_number):
        return answer(CrlRefusal.OLDER_THAN_INSTALLED, "its CRL number is lower than the installed copy's")
    return answer(None, "verified, newer than the installed copy" if verified else
                  "newer than the installed copy; its issuer is not known yet")


def _inspection_refused(code: CrlRefusal, detail: str, *, slot: _Slot | None = None) -> CrlInspection:
    key_id = slot[1].hex() if slot is not None and slot[1] else None
    return CrlInspection(refusal=code, detail=detail, sha256="", der=b"", issuer_key_id=key_id)


def _installed_crl(installed: bytes | None) -> tuple[x509.CertificateRevocationList, bytes] | None:
    """The installed copy, parsed; None when there is none or it does not parse as one CRL."""
    if not installed:
        return None
    parsed = _parse_crls(bytes(installed))
    if len(parsed) != 1 or parsed[0][1] is None:
        return None
    crl = parsed[0][1]
    try:
        return crl, crl.public_bytes(Encoding.DER)
    except ValueError:
        return None


# --- loading helpers ------------------------------------------------------------------------------

_E = TypeVar("_E", bound=x509.ExtensionType)


def _aware(at: datetime) -> None:
    if at.utcoffset() is None:
        raise SignatureError("naive datetime")


def _find(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _ski(cert: x509.Certificate) -> bytes | None:
    ski = _find(cert.extensions, x509.SubjectKeyIdentifier)
    return ski.digest if ski is not None else None


def _issuer(cert: x509.Certificate) -> _Issuer:
    ku = _find(cert.extensions, x509.KeyUsage)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return _Issuer(cert, cert.subject.public_bytes(), _ski(cert), hashlib.sha256(spki).digest(),
                   ku is None or ku.crl_sign)


def _key_label(issuer: _Issuer) -> str:
    return (issuer.ski or issuer.key_hash).hex()[:16]


def _parse_crls(data: bytes) -> list[tuple[str, x509.CertificateRevocationList | None]]:
    """Each CRL in ``data`` with its position ("#n" in a PEM bundle of several, else ""); None where
    the bytes do not parse. Empty: PEM without an ``X509 CRL`` block.

    A DER CRL starts with a SEQUENCE tag; anything else is read as PEM (which may carry text before
    its first block, as `openssl crl -text` writes it).
    """
    if data[:1] == b"\x30":
        try:
            return [("", x509.load_der_x509_crl(data))]
        except ValueError:
            return [("", None)]
    blocks = _PEM_CRL.findall(data)
    found: list[tuple[str, x509.CertificateRevocationList | None]] = []
    for n, block in enumerate(blocks, start=1):
        try:
            crl: x509.CertificateRevocationList | None = x509.load_pem_x509_crl(block)
        except ValueError:
            crl = None
        found.append((f"#{n}" if len(blocks) > 1 else "", crl))
    return found


def _by_hash(index: _Index) -> dict[bytes, tuple[_Crl, ...]]:
    """Accepted CRLs by the SHA-256 of the bytes they came from (to reuse, not re-verify)."""
    found: dict[bytes, tuple[_Crl, ...]] = {}
    for state in index.sources.values():
        if state.sha256 and not state.refusals:
            found[state.sha256] = state.crls
    return found


def _reuse(
    crls: tuple[_Crl, ...] | None, name: str, source: str
) -> tuple[tuple[_Crl, ...], tuple[tuple[CrlRefusal, _Slot | None], ...]] | None:
    if crls is None:
        return None
    same = tuple(c if (c.file, c.source) == (name, source) else replace(c, file=name, source=source) for c in crls)
    return same, ()


def _refuse(
    code: CrlRefusal, slot: _Slot | None, name: str, position: str, why: str
) -> tuple[CrlRefusal, _Slot | None]:
    _log.warning("ignoring CRL %s%s: %s", name, position, why)
    return code, slot


def _accept(
    crl: x509.CertificateRevocationList, name: str, position: str, source: str, source_sha256: bytes,
    issuers: Sequence[_Issuer],
) -> _Crl | tuple[CrlRefusal, _Slot | None]:
    """``crl`` verified as far as its known issuers allow and indexed, or why it is refused."""
    try:
        return _accept_parsed(crl, name, position, source, source_sha256, issuers)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # cryptography parses lazily: malformed names, extensions or entries surface here.
        return _refuse(CrlRefusal.MALFORMED, None, name, position, f"malformed ({type(exc).__name__})")


def _accept_parsed(
    crl: x509.CertificateRevocationList, name: str, position: str, source: str, source_sha256: bytes,
    issuers: Sequence[_Issuer],
) -> _Crl | tuple[CrlRefusal, _Slot | None]:
    examined = _examine(crl, issuers)
    if isinstance(examined, _Refused):
        return _refuse(examined.code, examined.slot, name, position, examined.why)
    if not any(examined.verdicts.values()):
        _log.info("CRL %s%s: issuer not configured; verified when a package's certificate path uses it",
                  name, position)
    return _Crl(
        file=name,
        position=position,
        source=source,
        identity=hashlib.sha256(source_sha256 + position.encode()).digest(),
        issuer_name=examined.slot[0],
        key_id=examined.slot[1],
        this_update=examined.this_update,
        next_update=examined.next_update,
        dp_names=examined.dp_names,
        only_user_certs=examined.only_user_certs,
        only_ca_certs=examined.only_ca_certs,
        signature=examined.signature,
        revoked=_revoked_entries(crl),
        verdicts=examined.verdicts,
    )


@dataclass(frozen=True, slots=True)
class _Refused:
    code: CrlRefusal
    slot: _Slot | None
    why: str


@dataclass(frozen=True, slots=True)
class _Examined:
    """A CRL that passed the acceptance rules, with its signature checked against the known issuers."""

    slot: _Slot
    this_update: datetime
    next_update: datetime
    dp_names: frozenset[x509.GeneralName] | None
    only_user_certs: bool
    only_ca_certs: bool
    signature: _Signature
    #: SHA-256 of a known issuer's SubjectPublicKeyInfo → does the signature verify with it
    verdicts: dict[bytes, bool]
    crl_number: int | None


def _examine(crl: x509.CertificateRevocationList, issuers: Sequence[_Issuer]) -> _Examined | _Refused:
    """The one place of the acceptance rules (algorithms, critical extensions, delta/indirect,
    scope, validity) and of the signature check against known issuers; the entries are not read.

    May raise ValueError/TypeError/UnsupportedAlgorithm from cryptography's lazy parsing.
    """
    extensions = crl.extensions
    aki = _find(extensions, x509.AuthorityKeyIdentifier)
    issuer_name = crl.issuer.public_bytes()
    slot: _Slot = (issuer_name, aki.key_identifier if aki is not None else None)

    def refuse(code: CrlRefusal, why: str) -> _Refused:
        return _Refused(code, slot, why)

    for ext in extensions:
        if ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS:
            return refuse(CrlRefusal.UNKNOWN_CRITICAL_EXTENSION, f"unknown critical extension {ext.oid.dotted_string}")
    if _find(extensions, x509.DeltaCRLIndicator) is not None:
        # A delta only lists changes since a base CRL; used alone, it would report revoked
        # certificates of the base as good. Complete CRLs are required.
        return refuse(CrlRefusal.DELTA_CRL, "delta CRLs are not supported")
    if crl.signature_algorithm_oid in _DSA_SIGNATURES:
        return refuse(CrlRefusal.WEAK_ALGORITHM, "DSA signatures are refused")
    try:
        hash_alg = crl.signature_hash_algorithm
        params = crl.signature_algorithm_parameters
    except UnsupportedAlgorithm:
        return refuse(CrlRefusal.UNSUPPORTED_ALGORITHM, "unsupported signature algorithm")
    if hash_alg is not None and hash_alg.name in _WEAK_HASHES:
        return refuse(CrlRefusal.WEAK_ALGORITHM, f"weak signature hash {hash_alg.name}")
    if params is not None and not isinstance(params, padding.PKCS1v15 | padding.PSS | ec.ECDSA):
        return refuse(CrlRefusal.UNSUPPORTED_ALGORITHM, "unsupported signature parameters")

    idp = _find(extensions, x509.IssuingDistributionPoint)
    dp_names: frozenset[x509.GeneralName] | None = None
    only_user = only_ca = False
    if idp is not None:
        if idp.indirect_crl:
            return refuse(CrlRefusal.INDIRECT_CRL, "indirect CRLs are not supported")
        if idp.only_some_reasons is not None:
            # Absence from a reasons-limited CRL does not prove a certificate good.
            return refuse(CrlRefusal.PARTIAL_REASONS, "CRLs limited to some revocation reasons are not supported")
        if idp.only_contains_attribute_certs:
            return refuse(CrlRefusal.ATTRIBUTE_CERTS_ONLY, "CRL covers attribute certificates only")
        only_user, only_ca = idp.only_contains_user_certs, idp.only_contains_ca_certs
        if idp.full_name is not None:
            dp_names = frozenset(idp.full_name)
        elif idp.relative_name is not None:
            dp_names = frozenset({_relative_dp(crl.issuer, idp.relative_name)})

    this_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if next_update is None:
        # Never current (RFC 5280 requires nextUpdate); warn, because it is likely a mistake.
        return refuse(CrlRefusal.NO_NEXT_UPDATE, "no nextUpdate, so it is never current")
    if next_update <= this_update:
        return refuse(CrlRefusal.BAD_VALIDITY, "nextUpdate is not after thisUpdate")
    number = _find(extensions, x509.CRLNumber)

    # The signature, reduced to a digest of the tbsCertList (hashed here, once; the tbs copy is
    # released before the entries are indexed, so it does not add to the peak memory).
    if hash_alg is None:  # Ed25519/Ed448 sign the message itself
        signature = _Signature(crl.signature, b"", None, None, crl.tbs_certlist_bytes, crl.signature_algorithm_oid)
    else:
        h = hashes.Hash(hash_alg)
        h.update(crl.tbs_certlist_bytes)
        signature = _Signature(crl.signature, h.finalize(), hash_alg, params, None, crl.signature_algorithm_oid)

    # Known issuers (configured, or seen in a validated path) that this CRL names: it must verify
    # with one of them, or be refused. Others may still turn up in a package's path later.
    verdicts: dict[bytes, bool] = {}
    named = [i for i in issuers if i.name == issuer_name
             and (slot[1] is None or i.ski is None or i.ski == slot[1])]
    for issuer in named:
        if issuer.crl_sign and issuer.key_hash not in verdicts:
            verdicts[issuer.key_hash] = signature.verifies_with(issuer.cert.public_key())
    by_key_id = [i for i in named if slot[1] is not None and i.ski == slot[1]]
    if by_key_id and not any(verdicts.values()):
        # A known issuer certificate it names by key identifier did not sign it.
        if not any(i.crl_sign for i in by_key_id):
            return refuse(CrlRefusal.ISSUER_NOT_CRL_SIGNER, "the issuer certificate it names may not sign CRLs")
        return refuse(CrlRefusal.SIGNATURE_INVALID, "its signature does not verify with the issuer it names "
                                                    "(forged or damaged)")
    return _Examined(slot, this_update, next_update, dp_names, only_user, only_ca, signature, verdicts,
                     number.crl_number if number is not None else None)


def _carry_over(
    old: _Index, accepted: dict[bytes, _Crl], refusals: Sequence[tuple[CrlRefusal, _Slot | None, str, bool]]
) -> list[_Crl]:
    """Previously usable CRLs to keep because a CRL that replaces them was refused."""
    if not refusals:
        return []
    slots = [slot for _, slot, _, _ in refusals if slot is not None]
    labels = {label for _, slot, label, named in refusals if slot is None and named}
    kept = []
    for crl in old.crls:
        if crl.identity in accepted or crl.identity in old.lazily_refused:
            continue
        same_issuer = any(
            name == crl.issuer_name and (key_id is None or crl.key_id is None or key_id == crl.key_id)
            for name, key_id in slots
        )
        if same_issuer or crl.source in labels:
            kept.append(crl)
    return kept


def _revoked_entries(crl: x509.CertificateRevocationList) -> dict[int, int]:
    """serial → revocationDate (epoch seconds), read with cryptography after the signature check.

    cryptography iterates 10^6 entries in about 2 s, well inside the load budget, so no DER walker
    of our own is needed. A serial listed twice keeps its earliest date (fail closed).
    """
    revoked = {rc.serial_number: int(rc.revocation_date_utc.timestamp()) for rc in crl}
    if len(revoked) != len(crl):
        revoked = {}
        for rc in crl:
            when = int(rc.revocation_date_utc.timestamp())
            serial = rc.serial_number
            if serial not in revoked or when < revoked[serial]:
                revoked[serial] = when
    return revoked


def _issuer_index(crls: Iterable[_Crl]) -> _IssuerIndex:
    unscoped: list[_Crl] = []
    by_dp: dict[x509.GeneralName, list[_Crl]] = {}
    for crl in crls:
        if crl.dp_names is None:
            unscoped.append(crl)
        else:
            for name in crl.dp_names:
                by_dp.setdefault(name, []).append(crl)

    def latest_first(found: list[_Crl]) -> tuple[_Crl, ...]:
        return tuple(sorted(found, key=lambda c: c.this_update, reverse=True))

    return _IssuerIndex(latest_first(unscoped), {name: latest_first(found) for name, found in by_dp.items()})


# --- lookup helpers -------------------------------------------------------------------------------


def _unknown(detail: str) -> RevocationResult:
    return RevocationResult(RevocationStatus.UNKNOWN, None, None, None, detail)


def _issued_by(cert: x509.Certificate, issuer: _Resolved) -> bool:
    aki = _find(cert.extensions, x509.AuthorityKeyIdentifier)
    key_id = aki.key_identifier if aki is not None else None
    if key_id is not None and issuer.ski is not None:
        # Name chaining (RFC 5280 §6.1) and the key identifier; the caller validated the path.
        return key_id == issuer.ski and cert.issuer == issuer.cert.subject
    if cert.issuer != issuer.cert.subject:
        return False
    # No key identifiers to compare (rare): verifying the signature (~55 µs, against ~5 µs for
    # the rest of a check) is the only way to tell two same-name CAs apart.
    try:
        cert.verify_directly_issued_by(issuer.cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _relative_dp(issuer: x509.Name, rdn: x509.RelativeDistinguishedName) -> x509.GeneralName:
    """A nameRelativeToCRLIssuer as the full DirectoryName it stands for (RFC 5280 §4.2.1.13)."""
    return x509.DirectoryName(x509.Name([*issuer.rdns, rdn]))


def _cdp_names(cert: x509.Certificate) -> frozenset[x509.GeneralName]:
    """The distribution point names under which the certificate's own CRLs are published.

    Distribution points with a cRLIssuer (indirect CRLs, refused when loading) or limited to some
    reasons (a CRL there cannot prove "good" for every reason) are left out: the certificate is
    then UNKNOWN unless an unpartitioned CRL covers it, which fails closed.
    """
    cdp = _find(cert.extensions, x509.CRLDistributionPoints)
    if cdp is None:
        return frozenset()
    names: set[x509.GeneralName] = set()
    for dp in cdp:
        if dp.crl_issuer is not None or dp.reasons is not None:
            continue
        if dp.full_name is not None:
            names.update(dp.full_name)
        elif dp.relative_name is not None:
            names.add(_relative_dp(cert.issuer, dp.relative_name))
    return frozenset(names)


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _find(cert.extensions, x509.BasicConstraints)
    return bc is not None and bc.ca


def _select(entry: _IssuerIndex, cert: x509.Certificate | None, at: datetime) -> _Crl | None:
    """The newest covering CRL that speaks for ``at``: current at it, or issued after it.

    A CRL issued after ``cert`` expired is passed over: its CA may have dropped the entries of
    expired certificates (RFC 5280 §3.3). ``cert`` None (the benchmark's bare index lookups)
    stands for a certificate without extensions and without that limit.
    """
    is_ca: bool | None = None
    not_after: datetime | None = None

    def speaks_for(crl: _Crl) -> bool:
        nonlocal is_ca, not_after
        if crl.next_update <= at:
            return False  # stale at ``at``
        if crl.this_update > at and cert is not None:
            if not_after is None:
                not_after = cert.not_valid_after_utc
            if crl.this_update > not_after:
                return False
        if not (crl.only_user_certs or crl.only_ca_certs):
            return True
        if is_ca is None:
            is_ca = cert is not None and _is_ca(cert)
        return crl.only_ca_certs if is_ca else crl.only_user_certs

    best: _Crl | None = None
    for crl in entry.unscoped:  # latest first: the first match is the best unscoped one
        if speaks_for(crl):
            best = crl
            break
    if entry.by_dp and cert is not None:
        for name in _cdp_names(cert):
            for crl in entry.by_dp.get(name, ()):
                if best is not None and crl.this_update <= best.this_update:
                    break  # sorted latest first: nothing later in this partition can win
                if speaks_for(crl):
                    best = crl
                    break
    return best


def _lookup(entry: _IssuerIndex, serial: int, cert: x509.Certificate | None, at: datetime) -> RevocationResult:
    """Look ``serial`` up in the CRL of ``entry`` that speaks for ``at``.

    ``cert`` decides which partitioned CRLs cover it; None stands for a certificate without
    extensions (used by the benchmark to time the index alone).
    """
    crl = _select(entry, cert, at)
    if crl is None:
        return _unknown("no CRL of this issuer covering this certificate was current at the time or "
                        "issued after it (stale CRL)")
    revoked = crl.revoked.get(serial)
    if revoked is None:
        return crl.good
    when = datetime.fromtimestamp(revoked, UTC)
    if revoked <= at.timestamp():
        return RevocationResult(RevocationStatus.REVOKED, when, crl.this_update, crl.next_update,
                                f"listed in CRL {crl.origin}")
    return RevocationResult(RevocationStatus.GOOD, None, crl.this_update, crl.next_update,
                            f"listed in CRL {crl.origin} with a revocation date after the time", revoked_later=when)
