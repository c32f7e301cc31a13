"""The public surface of each package is what we mean to export, and every name exists."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "signature": {
        "ArrivalRecord", "FileEntry", "FileRole", "Indication", "Manifest", "ReasonCode", "RevocationMode",
        "RevocationStore", "SignatureError", "SignerIdentity", "SubIndication", "TrustConfig",
        "TrustConfigError", "UnreadablePackage", "VerificationFailure", "VerificationPolicy",
        "VerificationReport", "ZipLimits", "is_valid_my_number", "parse_xml", "verify_package",
        # issue 14: which time a report was judged at; the CRL store's status summary for the services
        "CrlRefusal", "RevocationStoreStatus", "TimeSource",
    },
    "status": {
        "FINAL_STATUSES", "TRANSITIONS", "Action", "Actor", "CommentRequired", "IllegalTransition", "NotPermitted",
        "Role", "Status", "StatusError", "StatusHistory", "Transition", "TransitionRule", "allowed_actions",
    },
}


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_all_is_exactly_the_public_api(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPECTED[package]
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_every_reason_code_has_both_descriptions() -> None:
    from signature.reasons import describe
    from signature.report import ReasonCode

    for code in ReasonCode:
        en, ja = describe(code)
        assert en
        assert ja
        assert en != ja
