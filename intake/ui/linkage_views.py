"""Staff UI routes: the linkage import page (番号紐付情報の取込) — the inbox, a dry run, the confirmed
run and its progress. No upload and no script: the file comes from the inbox folder, the job page
refreshes itself with a meta refresh while the import runs.

Thin, like every route module: :mod:`intake.linkage.jobs` checks the role (system_admin), the
file name and the hash, and writes the access log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from intake.errors import InvalidRequest, ReasonRequired
from intake.linkage import errors as linkage_errors
from intake.linkage import inbox, jobs
from intake.linkage.csvformat import COLUMNS
from intake.ui.deps import Ctx, Form, Staff
from intake.ui.forms import Refusals

__all__ = ["router"]

router = APIRouter()

MODE_LABELS = {"auto": "自動判定", "full": "全件", "delta": "差分"}
STATE_LABELS = {"running": "実行中", "done": "完了", "duplicate": "取込済み（変更なし）",
                "rejected": "取込不可（誤りあり）", "failed": "失敗", "interrupted": "中断"}
PHASE_LABELS = {"queued": "開始待ち", "parse": "ファイルの検査", "apply": "紐付情報の反映",
                "resolve": "申請の宛名番号の再判定"}

#: The importer's fixed English reasons (csvformat.py, importer.py), in Japanese for the page.
_REASONS = {
    "the header row is not valid CSV": "見出し行がCSVとして正しくありません",
    "the file is empty (no header row)": "ファイルが空です（見出し行がありません）",
    "the header row is not the documented one": "見出し行が定められた形式と異なります",
    "not valid CSV (quoting); the rest of the file was not read":
        "CSVの引用符が正しくありません（以降の行は読んでいません）",
    "differs from the first row's 作成日時": "1行目の作成日時と異なります",
    "a full file without rows would make every entry inactive":
        "データ行のない全件ファイルです（すべての紐付が無効になるため取り込みません）",
    "starts with a byte-order mark (the format has none)": "先頭にBOMがあります（この形式にBOMは付きません）",
    "not UTF-8": "UTF-8ではありません",
    "empty line": "空行です",
    f"expected {len(COLUMNS)} fields": f"項目数が{len(COLUMNS)}ではありません",
    "not a hexadecimal serial number (1–64 hex digits)": "シリアル番号の形式が正しくありません（16進数1〜64桁）",
    "not a 宛名番号 (10 digits)": "宛名番号の形式が正しくありません（10桁の数字）",
    "before 有効開始日": "有効開始日より前です",
    "after the day of 失効日時": "失効日時の日より後です",
    "unknown 区分 (全件, 追加, 変更 or 削除)": "区分が正しくありません（全件・追加・変更・削除のいずれか）",
    "not a date (YYYY-MM-DD)": "日付（YYYY-MM-DD）ではありません",
    "not an ISO 8601 date-time": "日時（ISO 8601）ではありません",
    "date-time without a UTC offset": "日時に時差（UTCオフセット）がありません",
    "a delta row (追加, 変更, 削除) in a full file": "全件ファイルに差分の行（追加・変更・削除）があります",
    "a 全件 row in a delta file": "差分ファイルに全件の行があります",
    "another line gives this serial a different 宛名番号":
        "同じシリアル番号に別の行が異なる宛名番号を示しています（該当する申請は競合になります）",
    "the file cannot be read": "ファイルを読み取れません",
    "削除 of a link that is not held": "保持していない紐付の削除です（差分の取りこぼしの可能性）",
    "変更 of a link that is not held": "保持していない紐付の変更です（差分の取りこぼしの可能性）",
    "追加 replaces a link to another 宛名番号": "別の宛名番号への紐付を置き換える追加です",
}
_OLDER = "older than the file of import "


def reason_ja(reason: str) -> str:
    """A line problem's reason in Japanese (the English phrase if it is not known here)."""
    if reason.startswith(_OLDER) and reason[len(_OLDER):].isdigit():
        return f"取込番号 {reason[len(_OLDER):]} のファイルより古い作成日時です"
    return _REASONS.get(reason, reason)


_MAX_MIB = inbox.MAX_FILE_BYTES // (1024 * 1024)

#: Service refusals → status and message. PermissionDenied is not here: the app answers 403.
_REFUSALS = Refusals([
    (linkage_errors.InboxNotConfigured, 404, "番号紐付情報の取込フォルダが設定されていません。"),
    (linkage_errors.InboxUnavailable, 503, "取込フォルダを読み取れません。システム管理者に連絡してください。"),
    (linkage_errors.InboxNameRefused, 400, "ファイル名が正しくありません。取込フォルダ内のファイル名だけを指定できます"
                                 "（「/」「..」や制御文字を含む名前、「.」で始まる名前は指定できません）。"),
    (linkage_errors.InboxFileMissing, 404, "指定されたファイルは取込フォルダにありません。"),
    (linkage_errors.InboxFileTooLarge, 413, f"ファイルが大きすぎます（上限 {_MAX_MIB} MiB）。"),
    (linkage_errors.FileChangedSincePreview, 409, "確認（テスト実行）の後にファイルの内容が変わっています。"
                                        "もう一度確認してから取り込んでください。"),
    (linkage_errors.ImportAlreadyRunning, 409, "別の取込処理が実行中です。終了してからやり直してください。"),
    (ReasonRequired, 400, "処理事由を入力してください。"),
    (InvalidRequest, 400, "入力内容が正しくありません。"),
])


def _registry(ctx: Ctx) -> jobs.JobRegistry:
    return jobs.registry_for(ctx.state.session_factory)


def _page(ctx: Ctx, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return ctx.page(name, status_code, mode_labels=MODE_LABELS, state_labels=STATE_LABELS,
                    phase_labels=PHASE_LABELS, reason_ja=reason_ja, **context)


def _index(ctx: Ctx, *, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    files: list[inbox.InboxFile] = []
    inbox_notice = None
    try:
        files = inbox.inbox_files(ctx.session, ctx.principal, ctx.state.settings)
    except linkage_errors.InboxNotConfigured:
        inbox_notice = ("番号紐付情報の取込フォルダが設定されていないため、この画面からは取り込めません"
                        "（設定項目 ui.linkage_inbox）。")
    except linkage_errors.InboxUnavailable:
        inbox_notice = "取込フォルダを読み取れません。システム管理者に連絡してください。"
    registry = _registry(ctx)
    return _page(ctx, "linkage.html", status_code, files=files, inbox_notice=inbox_notice, error=error,
                 running=registry.running(), jobs=jobs.recent_jobs(ctx.session, ctx.principal, registry),
                 imports=jobs.recent_imports(ctx.session, ctx.principal), modes=list(MODE_LABELS),
                 max_mib=inbox.MAX_FILE_BYTES // (1024 * 1024))


def _refused(ctx: Ctx) -> Callable[[int, str], Response]:
    return lambda status_code, message: _index(ctx, status_code=status_code, error=message)


@router.get("/linkage", response_class=HTMLResponse)
def linkage_index(ctx: Staff) -> HTMLResponse:
    return _index(ctx)


@router.post("/linkage/preview", response_model=None)
def linkage_preview(ctx: Staff, form: Form) -> Response:
    """A dry run; its access-log row is committed with the request."""
    return ctx.submit(form, lambda: jobs.preview(
        ctx.session, ctx.state.session_factory, ctx.principal, ctx.state.settings, _registry(ctx),
        name=form.get("name", ""), mode=form.get("mode", "auto"), at=ctx.now()),
        refusals=_REFUSALS, refused=_refused(ctx),
        done=lambda found: _page(ctx, "linkage_preview.html", p=found, r=found.result))


@router.post("/linkage/run", response_model=None)
def linkage_run(ctx: Staff, form: Form) -> Response:
    """The import runs as a background job with transactions of its own (intake/linkage/jobs.py)."""
    return ctx.submit(form, lambda: jobs.start_import(
        ctx.state.session_factory, ctx.principal, ctx.state.settings, _registry(ctx),
        name=form.get("name", ""), sha256=form.get("sha256", ""), mode=form.get("mode", "auto"),
        reason=form.get("reason", "")[:2000], clock=ctx.state.runtime.clock),
        refusals=_REFUSALS, refused=_refused(ctx),
        done=lambda job_id: RedirectResponse(f"/staff/linkage/jobs/{job_id}", status_code=303))


@router.get("/linkage/jobs/{job_id}", response_class=HTMLResponse)
def linkage_job(job_id: int, ctx: Staff) -> HTMLResponse:
    view = jobs.job(ctx.session, ctx.principal, _registry(ctx), job_id)
    response = _page(ctx, "linkage_job.html", job=view)
    if view.running:
        # The page's <meta http-equiv="refresh"> and this header say the same: reload in 2 s, no script.
        response.headers["Refresh"] = "2"
    return response
