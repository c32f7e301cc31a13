"""「本人確認要」 in the browser (real Chromium): two versions from another resident's card name the
reviewer's application; the dashboard counts them, the detail page shows them with their reason
beside the chain they did not change, and the reviewer rejects one and accepts the other with a
処理事由 — each in the access log. A hold that waits for a signature result offers no accept button,
and a forged accept is refused by the server (409)."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from intake.models import AccessLogRow, ApplicationVersion, VersionState
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory, World
from tests.intake.staffdata import deliver
from tests.intake.ui import test_browser
from tests.intake.ui.conftest import UIWorld
from tests.intake.ui.test_browser import ARTIFACTS, CHROMIUM, _login

browser = test_browser.browser  # the real-Chromium fixture

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
    pytest.mark.parametrize("engine", ["sqlite"], indirect=True),
]


def test_reviewer_rejects_one_held_version_and_accepts_another(
    ui_world: UIWorld, browser: object, spec: ApplicationSpec, make_package: PackageFactory, world: World,
) -> None:
    from playwright.sync_api import BrowserContext, expect

    other_card = world.pki.issue_signer(world.residents[2])
    later_card = world.pki.issue_signer(world.residents[2], not_before=NOW + timedelta(days=1))
    withdraw = replace(spec, receipt_number="20261125-0000000002", kind="取下げ",
                       first_receipt_number=spec.receipt_number, user_cert_serial="B0B0B0B0B0B0",
                       arrived_at=spec.arrived_at + timedelta(minutes=5))
    correction = replace(withdraw, receipt_number="20261125-0000000003", kind="補正",
                         arrived_at=spec.arrived_at + timedelta(minutes=6))
    with ui_world.sessions() as s:
        deliver(s, ui_world.runtime, make_package(spec=withdraw, signer=other_card))
        deliver(s, ui_world.runtime, make_package(spec=correction, signer=later_card))  # FAILED: not yet valid

    assert isinstance(browser, BrowserContext)
    page = browser.new_page()
    _login(page, ui_world, "reviewer")
    expect(page.locator("#held")).to_have_text("2")
    page.locator("#held").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    page.get_by_role("link", name=spec.receipt_number).first.click()
    panel = page.locator("#held-panel")
    expect(panel).to_contain_text("本人確認要")
    expect(page.locator("#status")).to_have_text("到達")  # the 取下げ changed nothing
    row_withdraw = panel.locator("tr", has_text=withdraw.receipt_number)
    row_correction = panel.locator("tr", has_text=correction.receipt_number)
    expect(row_withdraw.locator(".hold-reason")).to_have_text("署名者が初回の申請者と同一人と確認できません")
    expect(row_correction.locator(".hold-reason")).to_have_text("この版の署名が有効と確認できていません")
    expect(row_correction.get_by_role("button", name="同一人と確認したので反映する")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "10-held.png"), full_page=True)

    # A forged accept of the waiting hold (the button is not offered): refused, nothing changes.
    with ui_world.sessions() as s:
        held_id = s.scalar(select(ApplicationVersion.id).where(
            ApplicationVersion.receipt_number == correction.receipt_number))
    with closing(ui_world.login("depadmin")) as client:
        forged = client.post(f"/staff/applications/{ui_world.own_app}/versions/{held_id}/decision",
                             data={"csrf": ui_world.csrf(client), "decision": "accept", "reason": "x"})
    assert forged.status_code == 409

    row_correction.get_by_label("処理事由").fill("署名が無効のため反映しない")
    row_correction.get_by_role("button", name="反映しない（不採用）").click()
    expect(page.locator("#held-panel tr", has_text=correction.receipt_number)).to_have_count(0)
    page.locator("#held-panel tr", has_text=withdraw.receipt_number).get_by_label("処理事由").fill(
        "改姓を戸籍で確認した本人の取下げ")
    page.locator("#held-panel tr", has_text=withdraw.receipt_number).get_by_role(
        "button", name="同一人と確認したので反映する").click()
    expect(page.locator("#held-panel")).to_have_count(0)
    expect(page.locator("#status")).to_have_text("取下げ")
    expect(page.locator("#versions")).to_contain_text("不採用")
    page.screenshot(path=str(ARTIFACTS / "11-held-decided.png"), full_page=True)

    with ui_world.sessions() as s:
        states = {number: state for number, state in
                  s.execute(select(ApplicationVersion.receipt_number, ApplicationVersion.state))}
        assert states[correction.receipt_number] is VersionState.REJECTED
        assert states[withdraw.receipt_number] is VersionState.CURRENT
        rows = list(s.execute(select(AccessLogRow.action, AccessLogRow.staff_id, AccessLogRow.reason)
                              .where(AccessLogRow.action.like("version.%")).order_by(AccessLogRow.id)))
        assert rows == [("version.reject", "reviewer", "署名が無効のため反映しない"),
                        ("version.accept", "reviewer", "改姓を戸籍で確認した本人の取下げ")]
