"""Test fixtures shared by the test suite, the demo and the portal simulator.

Kept inside the package (not under ``tests/``) because the demo and the portal simulator need the
same JPKI-shaped test PKI as the tests; nothing in the verifier imports it.
"""

from __future__ import annotations

from signature.testing.pki import (
    CRL_BASE_URL,
    JPKI_INTERMEDIATE_SUBJECT,
    JPKI_ROOT_SUBJECT,
    JPKI_SIGNING_CA_SUBJECT,
    JPKI_SIGNING_POLICY_OID,
    MANIFEST_NAME,
    PORTAL_ROOT_SUBJECT,
    PORTAL_SERVER_SUBJECT,
    Issued,
    Resident,
    TestPKI,
    generate_cli,
    resident_other_names,
    sample_residents,
    utf8_other_name,
)

__all__ = [
    "CRL_BASE_URL",
    "JPKI_INTERMEDIATE_SUBJECT",
    "JPKI_ROOT_SUBJECT",
    "JPKI_SIGNING_CA_SUBJECT",
    "JPKI_SIGNING_POLICY_OID",
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
