"""Rendering for the staff UI: the Jinja environment and its filters, the Japanese labels of codes,
and downloads (CSV for Excel).

Everything a person reads is Japanese: dates in 和暦 (:mod:`intake.wareki`, with the Western date
where staff compare with other systems), role and department names, access-log actions, 宛名番号
decision reasons, file sizes in KB/MB. Codes stay beside the label where an auditor filters by them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from intake.applications.admission import HOLD_LABELS
from intake.authz import ROLE_LABELS
from intake.jst import JST
from intake.models import LinkageState, VersionState
from intake.wareki import format_date, format_datetime, format_with_western
from status import Action, Role

__all__ = [
    "ACCESS_ACTION_LABELS",
    "ACTION_LABELS",
    "DEPARTMENT_LABELS",
    "INDICATION_LABELS",
    "LABELS",
    "LINKAGE_LABELS",
    "VERSION_STATE_LABELS",
    "Renderer",
    "access_action_label",
    "csv_download",
    "file_size",
    "linkage_reason",
    "role_label",
]

_TEMPLATES = Path(__file__).parent / "templates"

ACTION_LABELS = {
    Action.ACCEPT: "受付する", Action.START_REVIEW: "審査を開始する", Action.REQUEST_CORRECTION: "補正を依頼する",
    Action.NEW_VERSION: "新しい版の到着", Action.COMPLETE: "完了にする", Action.REJECT: "却下する",
    Action.WITHDRAW: "取下げを記録する",
}
LINKAGE_LABELS = {LinkageState.UNRESOLVED: "未設定", LinkageState.AUTO: "自動", LinkageState.MANUAL: "手動",
                  LinkageState.CONFLICT: "競合"}
INDICATION_LABELS = {"PASSED": "有効", "FAILED": "無効", "INDETERMINATE": "判定不能"}
#: The departments that are not in the catalogue, as staff read them.
DEPARTMENT_LABELS = {"all": "全部署（開発用）", "unassigned": "所管未設定", "system": "システム"}
NOTICE_LABELS = {"delivered": "届きました", "refused": "ポータルが受け付けませんでした", None: "送信待ち"}
VERSION_STATE_LABELS = {VersionState.CURRENT: "最新", VersionState.SUPERSEDED: "旧版",
                        VersionState.HELD: "本人確認要", VersionState.REJECTED: "不採用"}
#: Why a verification was made: on arrival, or again (new revocation data; an operator's request).
VERIFICATION_TRIGGER_LABELS = {"arrival": "到達時", "revocation": "失効情報の更新後", "operator": "運用者の再検証"}
LABELS = {"action": ACTION_LABELS, "linkage": LINKAGE_LABELS, "indication": INDICATION_LABELS,
          "notice": NOTICE_LABELS, "version_state": VERSION_STATE_LABELS, "hold": HOLD_LABELS,
          "trigger": VERIFICATION_TRIGGER_LABELS}

#: Access-log actions as an auditor reads them (the code is shown beside: the search filters by it).
ACCESS_ACTION_LABELS = {
    "login.success": "ログイン", "login.failed": "ログイン失敗", "login.locked": "ログイン（ロック中）",
    "login.refused": "ログイン拒否", "logout": "ログアウト", "terminal.refused": "端末の拒否",
    "application.view": "申請の閲覧", "application.list": "申請一覧の表示", "application.search": "申請者の検索",
    "application.export": "申請一覧のCSV出力", "application.reviewed": "最新の版を確認済みにした",
    "application.assign": "担当の変更・引継ぎ", "application.note": "内部メモの記入",
    "application.print": "申請の印刷", "application.pdf": "申請のPDF出力",
    "attachment.download": "添付ファイルのダウンロード", "linkage.set_atena": "宛名番号の設定",
    "my_number.reveal": "個人番号の表示", "outbox.retry": "転送の再送", "forwarding.read": "業務システムへの転送",
    "linkage.preview": "紐付情報の確認（試行）", "linkage.import": "紐付情報の取込",
    "audit.view": "アクセスログの閲覧", "audit.export": "アクセスログのCSV出力", "audit.verify": "アクセスログの検証",
    "audit.purge": "アクセスログの保存期間経過分の削除",
    "admin.user.create": "職員アカウントの作成", "admin.user.update": "職員アカウントの変更",
    "admin.user.deactivate": "職員アカウントの停止", "admin.user.reactivate": "職員アカウントの再開",
    "admin.user.unlock": "ロックの解除", "admin.user.totp_reset": "確認コードの再設定",
    "admin.user.password_set": "パスワードの設定",
    "version.accept": "本人確認要の版を反映", "version.reject": "本人確認要の版を不採用",
}


def access_action_label(code: str) -> str:
    """``status.accept`` → 「ステータス変更（受付する）」; unknown codes as they are."""
    if code in ACCESS_ACTION_LABELS:
        return ACCESS_ACTION_LABELS[code]
    if code.startswith("status."):
        try:
            return f"ステータス変更（{ACTION_LABELS[Action(code.removeprefix('status.'))]}）"
        except ValueError:
            return "ステータス変更"
    return code


def role_label(role: Role | str) -> str:
    try:
        return ROLE_LABELS[Role(role)]
    except ValueError:
        return str(role)


_REASONS = (
    (re.compile(r"one 宛名番号 for the chain's serial\(s\) on arrival"),
     "到達日に有効な紐付情報が1件（宛名番号を自動設定）"),
    (re.compile(r"(\d+) different 宛名番号 for the chain's serial\(s\) on arrival"),
     "到達日に有効な紐付情報が\\1件あり、宛名番号が異なります（競合）"),
    (re.compile(r"no user-certificate serial"), "利用者証明用電子証明書のシリアル番号がありません"),
    (re.compile(r"serial known, but no entry valid on the arrival day"),
     "シリアル番号の紐付情報はありますが、到達日に有効なものがありません"),
    (re.compile(r"no linkage entry for the serial"), "シリアル番号の紐付情報がありません"),
    (re.compile(r"the linkage data now names another 宛名番号 than the one linked before"),
     "紐付情報が以前と異なる宛名番号を示しています（競合）"),
)
_TRIGGERS = ((re.compile(r"^arrival of (\S+)$"), "\\1 の到達"),
             (re.compile(r"^import (\d+)$"), "紐付情報の取込（\\1）"))


def linkage_reason(reason: str | None) -> str:
    """A 宛名番号 decision's reason as staff read it: the system's English reasons translated, a
    member of staff's own 処理事由 as typed."""
    if not reason:
        return ""
    trigger, sep, why = reason.partition(": ")
    if not sep:
        trigger, why = "", reason
    for pattern, ja in _REASONS:
        if pattern.fullmatch(why):
            text = pattern.sub(ja, why)
            for tp, tja in _TRIGGERS:
                if tp.fullmatch(trigger):
                    return f"{tp.sub(tja, trigger)}: {text}"
            return f"{trigger}: {text}" if trigger else text
    return reason


def file_size(n: int | None) -> str:
    """Bytes as staff read sizes: 512 バイト, 12.3 KB, 4.5 MB (1 KB = 1 024 バイト)."""
    if n is None:
        return ""
    if n < 1024:
        return f"{n} バイト"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _jst(value: datetime | date | None) -> str:
    """A moment or day in 和暦 (the one conversion, :mod:`intake.wareki`)."""
    if isinstance(value, datetime):
        return format_datetime(value)
    return format_date(value)


def _iso(value: datetime | date | None) -> str:
    """The Western form beside the 和暦 one (``2026-11-25 14:03``), where staff compare with other systems."""
    if isinstance(value, datetime):
        return value.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else value.isoformat()


class Renderer:
    """The templates (autoescaped) and their filters."""

    def __init__(self) -> None:
        self.env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["jst"] = _jst
        self.env.filters["iso"] = _iso
        self.env.filters["wareki_both"] = format_with_western
        self.env.filters["wareki_day"] = format_date
        self.env.filters["filesize"] = file_size
        self.env.filters["role_label"] = role_label
        self.env.filters["access_action"] = access_action_label
        self.env.filters["linkage_reason"] = linkage_reason

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status_code)


def csv_download(header: Sequence[str], rows: Iterable[Sequence[str]], *, name: str) -> Response:
    """A CSV attachment Excel in Japan opens by double-click and cannot be tricked with: UTF-8 with a
    BOM (unlike CP932, no character of a name is lost), CRLF, and every cell that starts like a
    formula (``= + - @``, tab, CR) prefixed with ``'`` — the cells hold what people typed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
