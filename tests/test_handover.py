"""The relay↔intake contract (:mod:`handover`): one type, one encoding, one size budget, and both
sides agree on it — the relay's encoder and the intake's decoder are the same code, and the wire
form below is pinned so that neither side can drift alone."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from handover import REPORT_HEADER, REPORT_MAX_CHARS, MalwareFindings, RelayReport, RelayVerdict, ReportRefused
from handover.report import NAMES_OMITTED

JST = timezone(timedelta(hours=9))
AT = datetime(2026, 11, 25, 12, 0, tzinfo=JST)


def report(*, infected: tuple[str, ...] = (), unscannable: tuple[str, ...] = (), signatures: tuple[str, ...] = ()
           ) -> RelayReport:
    return RelayReport(relay=RelayVerdict(indication="PASSED", reason_code=None, validation_time=AT),
                       malware=MalwareFindings(scanner="clamd", infected_files=infected, signatures=signatures,
                                               unscannable_files=unscannable))


def wire(header: str) -> object:
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))


def test_the_wire_form_is_pinned() -> None:
    header = report(infected=("その他.txt",), signatures=("Eicar-Test-Signature",)).encode()
    assert wire(header) == {
        "version": 1,
        "relay": {"indication": "PASSED", "reason_code": None, "validation_time": "2026-11-25T12:00:00+09:00"},
        "malware": {"scanner": "clamd", "infected_files": ["その他.txt"], "signatures": ["Eicar-Test-Signature"],
                    "unscannable_files": [], "truncated": False, "flagged_entries": None},
    }
    assert REPORT_HEADER == "X-Relay-Report"


def test_what_the_relay_encodes_the_intake_decodes_unchanged() -> None:
    sent = report(infected=("保険証.pdf", "写真.jpg"), unscannable=("写真.jpg",), signatures=("Eicar",))
    received = RelayReport.decode(sent.encode())
    assert received == sent
    assert received.flagged_files == {"保険証.pdf", "写真.jpg"}
    assert received.relay.validation_time.utcoffset() == timedelta(hours=9)


def test_a_report_without_version_is_version_1_and_another_version_is_refused() -> None:
    body = report().to_json()
    del body["version"]
    legacy = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    assert RelayReport.decode(legacy).version == 1
    body["version"] = 2
    newer = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    with pytest.raises(ReportRefused, match="version"):
        RelayReport.decode(newer)


@pytest.mark.parametrize("header", [
    pytest.param("%%%", id="not-base64url"),
    pytest.param(base64.urlsafe_b64encode(b"[1, 2]").decode(), id="not-an-object"),
    pytest.param(base64.urlsafe_b64encode(b'{"relay": {}, "malware": {}}').decode(), id="fields-missing"),
    pytest.param("A" * (REPORT_MAX_CHARS + 1), id="over-the-budget"),
])
def test_anything_else_is_refused(header: str) -> None:
    with pytest.raises(ReportRefused) as refused:
        RelayReport.decode(header)
    assert refused.value.code == "BAD_RELAY_REPORT"


def test_a_naive_validation_time_is_refused() -> None:
    body = report().to_json()
    body["relay"]["validation_time"] = "2026-11-25T12:00:00"
    with pytest.raises(ReportRefused):
        RelayReport.decode(base64.urlsafe_b64encode(json.dumps(body).encode()).decode())


def test_refusal_text_names_fields_never_values() -> None:
    body = report().to_json()
    body["malware"]["infected_files"] = ["山田太郎_住民票.pdf" * 50]  # over the per-name limit
    with pytest.raises(ReportRefused) as refused:
        RelayReport.decode(base64.urlsafe_b64encode(json.dumps(body).encode()).decode())
    assert "山田" not in str(refused.value)
    assert "malware.infected_files" in str(refused.value)


def test_a_long_list_is_fitted_to_the_budget_and_still_flags() -> None:
    names = tuple(f"添付書類_{i:04d}_住民票の写し.pdf" for i in range(600))
    big = report(infected=names, unscannable=names[:10], signatures=("Eicar",))
    assert not big.fits()
    fitted = big.fitted()
    header = fitted.encode()
    assert len(header) <= REPORT_MAX_CHARS
    assert fitted.malware.truncated is True
    assert fitted.malware.infected_files  # the flag stays
    assert set(fitted.malware.infected_files) <= set(names)
    assert fitted.malware.unscannable_files == ()
    assert RelayReport.decode(header).flagged_files == set(fitted.malware.infected_files)


def test_when_no_name_fits_the_flag_still_travels() -> None:
    huge = report(infected=tuple("x" * 500 + str(i) for i in range(2)),
                  signatures=tuple(f"Sig.{i:03d}." * 12 for i in range(400)))
    fitted = huge.fitted()
    assert fitted.fits()
    assert fitted.malware.infected_files in ((NAMES_OMITTED,), (huge.malware.infected_files[0],))
    assert fitted.malware.truncated is True


def test_an_encoding_over_the_budget_is_refused_before_sending() -> None:
    names = tuple(f"file-{i:05d}.pdf" for i in range(2000))
    with pytest.raises(ReportRefused):
        report(infected=names).encode()


def test_the_relay_and_the_intake_use_this_contract() -> None:
    """Both sides import the contract rather than keeping a copy (the zone contracts allow it)."""
    import dmz_relay.forwarder
    import dmz_relay.pipeline
    import intake.deliveries.views

    assert dmz_relay.forwarder.RelayReport is RelayReport
    assert dmz_relay.pipeline.RelayReport is RelayReport
    assert intake.deliveries.views.RelayReport is RelayReport


def test_the_flagged_entries_bitmap_is_complete_however_many_files() -> None:
    """1 000 flagged entries: every index survives, in a few hundred characters, whatever the names."""
    indexes = set(range(1000)) - {3, 500}
    findings = MalwareFindings(scanner="clamd", infected_files=("a.pdf",),
                               flagged_entries=MalwareFindings.bitmap(indexes))
    assert findings.flagged_indexes() == indexes
    assert len(findings.flagged_entries or "") < 200
    assert MalwareFindings.bitmap([]) == ""
    assert MalwareFindings(scanner="clamd", flagged_entries="").flagged_indexes() == frozenset()
    assert MalwareFindings(scanner="clamd").flagged_indexes() is None  # an older relay sent no bitmap
    # the wire form: bit i of byte i // 8, least significant first
    assert MalwareFindings.bitmap([0, 9]) == "AQI"  # bytes 0x01 0x02


def test_fitting_never_drops_the_bitmap() -> None:
    names = tuple(f"添付書類_{i:04d}_住民票の写し.pdf" for i in range(800))
    big = RelayReport(relay=RelayVerdict(indication="PASSED", validation_time=AT),
                      malware=MalwareFindings(scanner="clamd", infected_files=names,
                                              flagged_entries=MalwareFindings.bitmap(range(2, 802))))
    fitted = big.fitted()
    assert fitted.malware.truncated
    assert fitted.malware.flagged_indexes() == frozenset(range(2, 802))
def test_the_status_outbox_wire_form_is_pinned() -> None:
    from handover import COMMENT_MAX_CHARS, NoticeRefused, OutboxRefused, StatusAck, StatusNoticeItem, StatusOutboxPage

    item = StatusNoticeItem(id=7, receipt_number="20261125-0000000001", status="補正依頼", at=AT,
                            comment="添付書類を再提出してください。")
    page = StatusOutboxPage(items=(item,))
    assert page.model_dump(mode="json") == {"version": 1, "items": [
        {"id": 7, "receipt_number": "20261125-0000000001", "status": "補正依頼", "at": "2026-11-25T12:00:00+09:00",
         "comment": "添付書類を再提出してください。"}]}
    assert StatusOutboxPage.decode(page.model_dump(mode="json")) == page
    assert "添付書類" not in repr(item)  # a comment may name the resident: never in a repr, log or traceback
    assert COMMENT_MAX_CHARS == 1000  # the portal's limit (portal_sim.api.schemas.StatusUpdate)
    too_long = {"items": [{**page.model_dump(mode="json")["items"][0], "comment": "あ" * 1001}]}
    with pytest.raises(OutboxRefused) as caught:
        StatusOutboxPage.decode(too_long)
    assert "あ" not in str(caught.value)
    assert "items.0.comment" in str(caught.value)
    ack = StatusAck(ids=(1, 2), refused=(NoticeRefused(id=3, code="ILLEGAL_TRANSITION"),))
    assert ack.model_dump(mode="json") == {"ids": [1, 2], "refused": [{"id": 3, "code": "ILLEGAL_TRANSITION"}]}


def test_the_comment_limit_is_the_portals() -> None:
    from handover import COMMENT_MAX_CHARS
    from portal_sim.api.schemas import StatusUpdate

    limit = StatusUpdate.model_fields["comment"].metadata
    assert any(getattr(m, "max_length", None) == COMMENT_MAX_CHARS for m in limit)
