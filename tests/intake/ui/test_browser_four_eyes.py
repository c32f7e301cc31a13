"""Four eyes in real Chromium (issue 15 §3): one system administrator asks for a reviewer's My Number
reveal and cannot approve it; a second administrator approves it; the reviewer then reveals."""

from __future__ import annotations

from sqlalchemy import select

from intake.models import StaffUser
from intake.staff.service import create_user
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW
from tests.intake.staffdata import OWN_DEPT
from tests.intake.ui.conftest import PASSWORD, UIWorld, user_id
from tests.intake.ui.test_browser import ARTIFACTS, _login, browser, pytestmark  # noqa: F401 - fixture, marks


def _may_reveal(world: UIWorld, login: str) -> bool:
    with world.sessions() as s:
        return bool(s.scalar(select(StaffUser.may_reveal_my_number).where(StaffUser.login == login)))


def test_two_administrators_grant_the_reveal(ui_world: UIWorld, browser: object,  # noqa: F811
                                             spec: ApplicationSpec) -> None:
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser, BrowserContext)
    with ui_world.sessions() as s:
        second = create_user(s, login="admin2", display_name="管理 二郎", roles=["system_admin"],
                             departments=[OWN_DEPT], at=NOW, sealer=ui_world.runtime.package_sealer, password=PASSWORD)
        s.commit()
        assert second.totp_secret is not None
        ui_world.secrets["admin2"] = second.totp_secret
    reviewer = user_id(ui_world, "reviewer")
    page = browser.new_page()

    # The first administrator asks: nothing changes yet, and they cannot approve it themselves.
    _login(page, ui_world, "sysadmin")
    page.goto(f"{ui_world.base_url}/staff/admin/users/{reviewer}")
    edit = page.locator("#edit")
    edit.get_by_label("個人番号の表示を許可する", exact=False).check()
    edit.get_by_label("処理事由").fill("窓口業務の担当替え")
    edit.get_by_role("button", name="変更する").click()
    expect(page.locator("body")).to_contain_text("承認の申請をしました")
    page.get_by_role("link", name="承認待ちの申請").click()
    row = page.locator("#requests tbody tr").first
    expect(row).to_contain_text("個人番号の表示権限の付与")
    expect(row).to_contain_text("他のシステム管理者の判断を待っています")
    expect(row.get_by_role("button", name="承認する")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "11-four-eyes-requested.png"), full_page=True)
    assert not _may_reveal(ui_world, "reviewer")
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url(f"{ui_world.base_url}/staff/login")

    # The second administrator approves, with a reason.
    _login(page, ui_world, "admin2")
    page.goto(f"{ui_world.base_url}/staff/admin/requests")
    row = page.locator("#requests tbody tr").first
    row.locator("form[action$='/approve']").get_by_label("処理事由").fill("所属長の依頼を確認")
    row.get_by_role("button", name="承認する").click()
    expect(page.locator("body")).to_contain_text("申請を承認しました")
    expect(page.locator("#requests tbody tr").first).to_contain_text("承認済み")
    page.screenshot(path=str(ARTIFACTS / "12-four-eyes-approved.png"), full_page=True)
    assert _may_reveal(ui_world, "reviewer")
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url(f"{ui_world.base_url}/staff/login")

    # The reviewer now sees the reveal form on the application.
    _login(page, ui_world, "reviewer")
    page.goto(f"{ui_world.base_url}/staff/applications/{ui_world.own_app}")
    expect(page.get_by_role("button", name="個人番号を表示").first).to_be_visible()
