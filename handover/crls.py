"""``PUT /api/v1/crls/{name}``: the relay hands a CRL it fetched to the intake, over its mTLS channel.

Only the relay reaches the CRL distribution points (J-LIS publishes them on LGWAN); the intake never
opens a connection out. So the relay delivers each CRL it installed, and the intake checks it again
against its own trust, installs it in its CRL inbox and swaps it into its revocation store.

The wire form, version 1:

* ``name`` — the relay's name of the distribution point (:data:`CRL_NAME_PATTERN`); the intake keeps
  the CRL as ``<inbox>/<name>.crl`` (:func:`crl_file_name`), so one name is one installed copy;
* the body — one CRL, DER (``Content-Type:`` :data:`CRL_MEDIA_TYPE`), at most the receiver's size
  cap (default :data:`CRL_DEFAULT_MAX_BYTES`); a CRL holds no personal data;
* the answer — 200 with a :class:`CrlReceipt` for exactly these bytes (``outcome`` ``installed`` or
  ``unchanged``: a repeat is harmless); 422 with one of :data:`CRL_REFUSALS` when the intake refuses
  the CRL itself (final for these bytes: the relay reports it and does not send them again); 409 and
  502/503/504 are worth another attempt; any other 4xx is a configuration error between relay and
  intake (:func:`classify_crl_answer`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "CRL_DEFAULT_MAX_BYTES",
    "CRL_MEDIA_TYPE",
    "CRL_NAME_PATTERN",
    "CRL_REFUSALS",
    "CRL_REFUSED_STATUS",
    "CrlAnswerKind",
    "CrlReceipt",
    "classify_crl_answer",
    "crl_file_name",
    "crl_path",
]

CRL_MEDIA_TYPE = "application/pkix-crl"  # RFC 2585
#: A distribution point's name: lower-case letters, digits, ``.``, ``_``, ``-``; a letter or digit first.
CRL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
CRL_DEFAULT_MAX_BYTES = 128 * 1024 * 1024  # a 10^6-entry JPKI CRL is about 43 MB
CRL_REFUSED_STATUS = 422
#: What the intake answers (with 422) for a CRL it refuses: the codes of
#: :class:`signature.revocation.CrlRefusal` (a test keeps the two the same; this package imports
#: nothing of ours).
CRL_REFUSALS = frozenset({
    "UNREADABLE", "MALFORMED", "UNSUPPORTED_ALGORITHM", "WEAK_ALGORITHM", "UNKNOWN_CRITICAL_EXTENSION",
    "DELTA_CRL", "INDIRECT_CRL", "PARTIAL_REASONS", "ATTRIBUTE_CERTS_ONLY", "NO_NEXT_UPDATE", "BAD_VALIDITY",
    "SIGNATURE_INVALID", "ISSUER_NOT_CRL_SIGNER", "NOT_ONE_CRL", "OLDER_THAN_INSTALLED", "ISSUER_CHANGED",
    "THIS_UPDATE_IN_FUTURE", "UNVERIFIED_ISSUER",
})

_NAME = re.compile(CRL_NAME_PATTERN)
_Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_Name = Annotated[str, StringConstraints(pattern=CRL_NAME_PATTERN)]

CrlAnswerKind = Literal["receipt", "refused", "retry", "configuration", "failed"]


def crl_path(name: str) -> str:
    """The request path for ``name``; ValueError for a name outside :data:`CRL_NAME_PATTERN`."""
    if not _NAME.fullmatch(name):
        raise ValueError("a CRL name is 1-64 of a-z 0-9 . _ - (a letter or digit first)")
    return f"/api/v1/crls/{name}"


def crl_file_name(name: str) -> str:
    """The installed copy's file name (a ``.crl`` file the revocation store picks up)."""
    crl_path(name)  # the same check
    return f"{name}.crl"


class CrlReceipt(BaseModel):
    """Version 1 of the 200 answer: the intake holds (and uses) exactly these bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    name: _Name
    sha256: _Sha256
    outcome: Literal["installed", "unchanged"]
    this_update: AwareDatetime
    next_update: AwareDatetime
    crl_number: int | None = Field(default=None, ge=0)


def classify_crl_answer(status: int, code: str | None) -> CrlAnswerKind:
    """What an answer of the CRL endpoint means for the CRL that got it."""
    if status == 200:
        return "receipt"
    if status in (409, 502, 503, 504):
        return "retry"
    if status == CRL_REFUSED_STATUS and code in CRL_REFUSALS:
        return "refused"
    if 400 <= status < 500:
        return "configuration"
    return "failed"
