"""End to end in real Chromium (Debian's, through Playwright): a reviewer logs in with password +
TOTP, finds an application, changes its status, sets the 宛名番号, reveals a My Number with a reason;
an auditor then finds those actions in the access log. Screenshots go to tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from intake.models import ForwardItem, ForwardState
from intake.mynumbers.service import extract_my_numbers
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import Clock
from tests.intake.staffdata import deliver
from tests.intake.ui.conftest import PASSWORD, UIWorld, build_world

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
    pytest.mark.parametrize("engine", ["sqlite"], indirect=True),
    pytest.mark.usefixtures("chromium_watchdog"),
]


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:  # a plain context, as the clerk's-day test explains
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        context = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()
            browser.close()


def _login(page: object, world: UIWorld, login: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{world.base_url}/staff/login")
    page.get_by_label("ログインID").fill(login)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_label("確認コード").fill(world.totp(login))
    page.get_by_role("button", name="ログイン", exact=True).click()
    page.wait_for_url(f"{world.base_url}/staff/")
    world.clock.now += timedelta(seconds=30)  # a TOTP step is accepted once per user


def test_reviewer_and_auditor_paths(ui_world: UIWorld, browser: object, spec: ApplicationSpec) -> None:
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser, BrowserContext)
    page = browser.new_page()
    _login(page, ui_world, "revealer")
    expect(page.locator("#queue")).to_have_text("1")
    page.screenshot(path=str(ARTIFACTS / "01-dashboard.png"), full_page=True)

    # find the application by its 受付番号
    page.get_by_role("link", name="申請一覧").click()
    page.get_by_label("受付番号・宛名番号").fill(spec.receipt_number)
    page.get_by_role("button", name="申請者を検索").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    assert spec.receipt_number not in page.url  # a search travels by POST and a server-side id
    page.screenshot(path=str(ARTIFACTS / "02-list.png"), full_page=True)
    page.get_by_role("link", name=spec.receipt_number).click()
    expect(page.locator("#status")).to_have_text("到達")
    expect(page.locator("#indication")).to_have_text("有効")
    expect(page.locator("#identity")).to_contain_text("一致")

    # change the status twice
    page.get_by_role("button", name="受付する").click()
    expect(page.locator("#status")).to_have_text("受付")
    page.get_by_role("button", name="審査を開始する").click()
    expect(page.locator("#status")).to_have_text("審査中")

    # set the 宛名番号 by hand, with a reason
    page.get_by_label("宛名番号（10桁）").fill("1234567890")
    page.locator("#atena-panel").get_by_label("処理事由").fill("住民記録システムで本人を確認")
    page.get_by_role("button", name="宛名番号を設定する").click()
    expect(page.locator("#linkage-state")).to_have_text("手動")
    expect(page.locator("#atena-number")).to_have_text("1234567890")

    # reveal the first My Number with a 処理事由
    _, numbers = extract_my_numbers(spec.form_xml)
    reveal = page.locator("form.reveal").first
    reveal.get_by_label("処理事由").fill("児童手当の所得審査のため")
    reveal.get_by_role("button", name="個人番号を表示").click()
    expect(page.locator("#my-number-0")).to_have_text(numbers[0].value)
    expect(page.locator("body")).not_to_contain_text(numbers[1].value)  # only the one asked for
    page.screenshot(path=str(ARTIFACTS / "03-detail.png"), full_page=True)
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url(f"{ui_world.base_url}/staff/login")

    # the auditor finds each action, with who, where and why
    _login(page, ui_world, "auditor")
    page.get_by_role("link", name="アクセスログ", exact=True).click()
    expect(page.locator("#chain-status")).to_contain_text("まだ検証されていません")  # a view does not re-hash
    page.get_by_role("button", name="今すぐ検証").click()
    expect(page.locator(".ok")).to_contain_text("異常なし")
    log = page.locator("#access-log")
    for action in ("login.success", "application.view", "status.accept", "status.start_review",
                   "linkage.set_atena", "my_number.reveal", "logout"):
        expect(log.locator("td.action", has_text=action).first).to_be_visible()
    reveal_row = log.locator("tr", has=page.locator("td.action", has_text="my_number.reveal"))
    expect(reveal_row).to_contain_text("児童手当の所得審査のため")
    expect(reveal_row).to_contain_text("revealer")
    expect(reveal_row).to_contain_text("ip:127.0.0.1")
    expect(reveal_row).to_contain_text("1234567890")
    page.screenshot(path=str(ARTIFACTS / "04-audit.png"), full_page=True)


def test_reviewer_compares_versions_takes_the_case_and_exports(
        ui_world: UIWorld, browser: object, spec: ApplicationSpec, make_package: PackageFactory) -> None:
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser, BrowserContext)
    fix = replace(spec, receipt_number="20261125-0000000002", kind="補正", first_receipt_number=spec.receipt_number,
                  arrived_at=spec.arrived_at + timedelta(minutes=10),
                  form_xml=spec.form_xml.replace("<職業/>".encode(), "<職業>会社員</職業>".encode()))
    assert fix.form_xml != spec.form_xml
    with ui_world.sessions() as s:
        deliver(s, ui_world.runtime, make_package(spec=fix))
    page = browser.new_page()
    _login(page, ui_world, "reviewer")
    page.get_by_role("link", name="申請一覧").click()
    page.get_by_label("版").select_option(label="再申請・補正あり")
    page.get_by_role("button", name="絞り込む").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    page.get_by_role("link", name=fix.receipt_number).click()

    # the newest version is shown, compared with the one before: the field that changed, and only it
    expect(page.locator("#versions table.list").first.locator("tbody tr")).to_have_count(2)
    diff = page.locator("#diff tbody tr")
    expect(diff).to_have_count(1)
    expect(diff.first).to_contain_text("職業")
    expect(diff.first.locator("td.after")).to_have_text("会社員")
    # open the first version and compare it with the correction from there
    page.get_by_role("link", name=spec.receipt_number, exact=True).click()
    page.get_by_role("link", name="この版と比較").click()
    expect(page.locator("#diff td.before")).to_have_text("会社員")
    page.screenshot(path=str(ARTIFACTS / "05-compare-versions.png"), full_page=True)

    page.get_by_role("button", name="自分が担当する").click()
    expect(page.locator("#assigned")).to_contain_text("reviewer")

    # export what the list shows: a CSV with a BOM, the chain under its newest 受付番号
    page.get_by_role("link", name="申請一覧").click()
    page.get_by_label("担当者").select_option(label="自分")
    page.get_by_role("button", name="絞り込む").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("link", name="この条件でCSV出力（全ページ・記録されます）").click()
    data = Path(download.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{fix.receipt_number},{spec.receipt_number},")


def test_viewer_finds_by_kana_and_can_change_nothing(ui_world: UIWorld, browser: object,
                                                    spec: ApplicationSpec) -> None:
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser, BrowserContext)
    hiragana = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in spec.applicant.name_kana[:3])
    page = browser.new_page()
    _login(page, ui_world, "viewer")
    page.get_by_role("link", name="申請一覧").click()
    expect(page.get_by_role("link", name="この条件でCSV出力（全ページ・記録されます）")).to_have_count(0)
    page.get_by_label("フリガナ（前方一致）").fill(hiragana)
    page.get_by_role("button", name="絞り込む").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    page.get_by_role("link", name=spec.receipt_number).click()
    expect(page.locator("#status")).to_have_text("到達")
    for label in ("受付する", "自分が担当する", "宛名番号を設定する", "個人番号を表示"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
    expect(page.locator(".masked").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "06-viewer-detail.png"), full_page=True)


def test_department_admin_retries_a_failed_forward_from_the_dashboard(ui_world: UIWorld, browser: object) -> None:
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser, BrowserContext)
    with ui_world.sessions() as s:
        s.add(ForwardItem(version_id=ui_world.own_version, route="kodomo-system", idempotency_key="browser:own",
                          state=ForwardState.FAILED, attempts=12, next_attempt_at=NOW, last_error="HTTP_503: down"))
        s.commit()
    page = browser.new_page()
    _login(page, ui_world, "depadmin")
    expect(page.locator("#failed")).to_have_text("1")
    page.locator("#failed").click()
    expect(page.locator("#failed-forwards tbody tr")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "07-outbox.png"), full_page=True)
    page.get_by_role("button", name="再送する").click()
    expect(page.locator("#failed-forwards tbody")).to_contain_text("転送に失敗した申請はありません。")
    with ui_world.sessions() as s:
        item = s.scalar(select(ForwardItem).where(ForwardItem.idempotency_key == "browser:own"))
        assert item is not None
        assert (item.state, item.attempts) == (ForwardState.PENDING, 0)


def test_system_admin_creates_an_account_and_imports_linkage(
        engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
        browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import BrowserContext, expect

    from portal_sim import linkage as sim
    from tests.intake.test_linkage import ATENA, link

    assert isinstance(browser, BrowserContext)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "linkage-20261125.csv").write_bytes(sim.to_csv([link()]))
    world, server = build_world(engine, runtime, clock, make_package, spec, ui=StaffUISettings(linkage_inbox=inbox))
    try:
        page = browser.new_page()
        _login(page, world, "sysadmin")
        # a new reviewer for the department; the TOTP secret is shown once, and works
        page.get_by_role("link", name="職員・設定の管理").click()
        page.get_by_role("link", name="新しいアカウントを作成する").click()
        page.get_by_label("ログインID").fill("tanaka")
        page.get_by_label("氏名").fill("田中 一郎")
        page.get_by_label("審査担当").check()
        page.get_by_label("子ども家庭課", exact=False).check()
        page.get_by_label("初期パスワード（12文字以上）").fill(PASSWORD)
        page.get_by_label("初期パスワード（確認）").fill(PASSWORD)
        page.get_by_label("処理事由").fill("4月の人事異動")
        page.get_by_role("button", name="作成する").click()
        secret = page.locator("#totp-secret").inner_text()
        world.secrets["tanaka"] = secret
        page.screenshot(path=str(ARTIFACTS / "08-admin-secret.png"), full_page=True)

        # the linkage import: preview (nothing stored), confirm with a reason, watch it finish
        page.get_by_role("link", name="紐付情報の取込").click()
        page.get_by_role("button", name="確認（テスト実行）").click()
        expect(page.locator("body")).to_contain_text("まだ何も取り込まれていません")
        page.screenshot(path=str(ARTIFACTS / "09-linkage-preview.png"), full_page=True)
        page.get_by_label("処理事由（必須）").fill("11月分の番号紐付情報の取込")
        page.get_by_role("button", name="取り込む").click()
        expect(page.locator("body")).to_contain_text("取込が完了しました", timeout=30_000)  # meta refresh
        expect(page.locator("body")).not_to_contain_text(ATENA)
        page.get_by_role("button", name="ログアウト").click()
        page.wait_for_url(f"{world.base_url}/staff/login")

        # the new account logs in with the shown secret and sees the 宛名番号 the import set
        _login(page, world, "tanaka")
        page.get_by_role("link", name="申請一覧").click()
        page.get_by_role("link", name=spec.receipt_number).click()
        expect(page.locator("#linkage-state")).to_have_text("自動")
        expect(page.locator("#atena-number")).to_have_text(ATENA)
    finally:
        server.__exit__(None, None, None)


def test_auditor_searches_and_exports_the_log(ui_world: UIWorld, browser: object) -> None:
    from playwright.sync_api import BrowserContext, expect

    assert isinstance(browser, BrowserContext)
    page = browser.new_page()
    _login(page, ui_world, "reviewer")  # something to find: a take-over and an export
    page.goto(f"{ui_world.base_url}/staff/applications/{ui_world.own_app}")
    page.get_by_role("button", name="自分が担当する").click()
    page.get_by_role("link", name="申請一覧").click()
    with page.expect_download():
        page.get_by_role("link", name="この条件でCSV出力（全ページ・記録されます）").click()
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url(f"{ui_world.base_url}/staff/login")

    _login(page, ui_world, "auditor")
    page.get_by_role("link", name="アクセスログ", exact=True).click()
    page.get_by_label("職員ID").fill("reviewer")
    page.get_by_role("button", name="検索").click()
    log = page.locator("#access-log")
    for action in ("login.success", "application.view", "application.assign", "application.export", "logout"):
        expect(log.locator("td.action", has_text=action).first).to_be_visible()
    expect(log.locator("td", has_text="auditor")).to_have_count(0)
    expect(log.locator("tr", has=page.locator("td.action", has_text="application.assign"))).to_contain_text(
        "担当変更: - → reviewer")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV出力", exact=False).click()
    data = Path(download.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "application.export" in text
    assert "application.assign" in text
    page.screenshot(path=str(ARTIFACTS / "10-audit-search.png"), full_page=True)
