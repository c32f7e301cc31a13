"""Algorithm identifiers we accept, and those we recognise only to refuse them by name.

package-format.md §2 and pitfalls.md: RSA with SHA-256/384/512 only; anything with SHA-1, MD5,
HMAC, DSA or ECDSA is refused. Anything unknown is refused as well.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes

from signature.libxml2 import load_xmlsec

# The package's first import of xmlsec: a libxml2 other than lxml's stops here, naming both versions.
load_xmlsec()
import xmlsec  # noqa: E402 - after the check above

__all__ = [
    "ENVELOPED_SIGNATURE",
    "CanonicalizationMethod",
    "DigestMethod",
    "SignatureMethod",
]

ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


class CanonicalizationMethod(enum.StrEnum):
    C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

    @property
    def exclusive(self) -> bool:
        return self is CanonicalizationMethod.EXC_C14N


class DigestMethod(enum.StrEnum):
    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
    SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

    def new(self) -> Any:
        return _DIGESTS[self]()


_DIGESTS: dict[DigestMethod, Callable[[], Any]] = {
    DigestMethod.SHA256: hashlib.sha256,
    DigestMethod.SHA384: hashlib.sha384,
    DigestMethod.SHA512: hashlib.sha512,
}


class SignatureMethod(enum.StrEnum):
    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
    RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The hash of this RSA PKCS#1 v1.5 signature method."""
        return _SIGNATURE_HASHES[self]

    @property
    def xmlsec_transform(self) -> Any:
        return {
            SignatureMethod.RSA_SHA256: xmlsec.constants.TransformRsaSha256,
            SignatureMethod.RSA_SHA384: xmlsec.constants.TransformRsaSha384,
            SignatureMethod.RSA_SHA512: xmlsec.constants.TransformRsaSha512,
        }[self]


_SIGNATURE_HASHES: dict[SignatureMethod, hashes.HashAlgorithm] = {
    SignatureMethod.RSA_SHA256: hashes.SHA256(),
    SignatureMethod.RSA_SHA384: hashes.SHA384(),
    SignatureMethod.RSA_SHA512: hashes.SHA512(),
}
