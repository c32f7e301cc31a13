"""The CRL hand-over contract (:mod:`handover.crls`): one path, one body, one receipt, one set of
refusal codes — pinned here so that neither the relay nor the intake can drift alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from handover import (
    CRL_MEDIA_TYPE,
    CRL_REFUSALS,
    CrlReceipt,
    classify_crl_answer,
    crl_file_name,
    crl_path,
)
from signature.revocation import CrlRefusal

AT = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def test_the_wire_form_is_pinned() -> None:
    assert crl_path("jpki-sign.2026") == "/api/v1/crls/jpki-sign.2026"
    assert crl_file_name("jpki-sign.2026") == "jpki-sign.2026.crl"
    assert CRL_MEDIA_TYPE == "application/pkix-crl"
    receipt = CrlReceipt(name="jpki-sign", sha256="ab" * 32, outcome="installed", this_update=AT,
                         next_update=AT.replace(day=26), crl_number=7)
    assert receipt.model_dump(mode="json") == {
        "version": 1, "name": "jpki-sign", "sha256": "ab" * 32, "outcome": "installed",
        "this_update": "2026-11-25T03:00:00Z", "next_update": "2026-11-26T03:00:00Z", "crl_number": 7,
    }
    assert CrlReceipt.model_validate(receipt.model_dump(mode="json")) == receipt


@pytest.mark.parametrize("name", ["", "Upper", "../etc", "a/b", ".hidden", "x" * 65, "名前", "a b"])
def test_names_outside_the_pattern_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="CRL name"):
        crl_path(name)
    with pytest.raises(ValidationError):
        CrlReceipt(name=name, sha256="ab" * 32, outcome="unchanged", this_update=AT, next_update=AT)


def test_the_refusal_codes_are_the_stores() -> None:
    """What the intake answers with 422 is exactly :class:`CrlRefusal`; a new code must be added to both."""
    assert {code.value for code in CrlRefusal} == CRL_REFUSALS


@pytest.mark.parametrize(("status", "code", "kind"), [
    (200, None, "receipt"),
    (422, "OLDER_THAN_INSTALLED", "refused"),
    (422, "SIGNATURE_INVALID", "refused"),
    (422, "PACKAGE_VALUE_OUT_OF_RANGE", "configuration"),  # not a CRL refusal
    (409, None, "retry"), (503, None, "retry"),
    (403, "CLIENT_CERT_REFUSED", "configuration"), (404, "CRL_INBOX_NOT_CONFIGURED", "configuration"),
    (413, "BODY_TOO_LARGE", "configuration"),
    (500, "INTERNAL_ERROR", "failed"),
])
def test_answers_are_classified(status: int, code: str | None, kind: str) -> None:
    assert classify_crl_answer(status, code) == kind


def test_a_naive_time_or_another_version_is_not_a_receipt() -> None:
    with pytest.raises(ValidationError):
        CrlReceipt.model_validate({"version": 1, "name": "a", "sha256": "ab" * 32, "outcome": "installed",
                                   "this_update": "2026-11-25T03:00:00", "next_update": "2026-11-26T03:00:00Z"})
    with pytest.raises(ValidationError):
        CrlReceipt.model_validate({"version": 2, "name": "a", "sha256": "ab" * 32, "outcome": "installed",
                                   "this_update": "2026-11-25T03:00:00Z", "next_update": "2026-11-26T03:00:00Z"})


def test_the_relay_and_the_intake_use_this_contract() -> None:
    """Both sides import the contract rather than keeping a copy."""
    import dmz_relay.forwarder
    import intake.crls.service
    import intake.crls.views

    assert dmz_relay.forwarder.crl_path is crl_path
    assert dmz_relay.forwarder.CrlReceipt is CrlReceipt
    assert intake.crls.service.CrlReceipt is CrlReceipt
    assert intake.crls.views.CRL_MEDIA_TYPE is CRL_MEDIA_TYPE
