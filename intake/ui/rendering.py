"""Rendering for the staff UI: the Jinja environment and its filters, the Japanese labels of codes,
and downloads (CSV for Excel)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from intake.applications.admission import HOLD_LABELS
from intake.jst import JST
from intake.models import LinkageState, VersionState
from status import Action

__all__ = ["ACTION_LABELS", "INDICATION_LABELS", "LABELS", "LINKAGE_LABELS", "VERSION_STATE_LABELS", "Renderer",
           "csv_download"]

_TEMPLATES = Path(__file__).parent / "templates"

ACTION_LABELS = {
    Action.ACCEPT: "受付する", Action.START_REVIEW: "審査を開始する", Action.REQUEST_CORRECTION: "補正を依頼する",
    Action.NEW_VERSION: "新しい版の到着", Action.COMPLETE: "完了にする", Action.REJECT: "却下する",
    Action.WITHDRAW: "取下げを記録する",
}
LINKAGE_LABELS = {LinkageState.UNRESOLVED: "未設定", LinkageState.AUTO: "自動", LinkageState.MANUAL: "手動",
                  LinkageState.CONFLICT: "競合"}
INDICATION_LABELS = {"PASSED": "有効", "FAILED": "無効", "INDETERMINATE": "判定不能"}
VERSION_STATE_LABELS = {VersionState.CURRENT: "最新", VersionState.SUPERSEDED: "旧版",
                        VersionState.HELD: "本人確認要", VersionState.REJECTED: "不採用"}
#: Why a verification was made: on arrival, or again (new revocation data; an operator's request).
VERIFICATION_TRIGGER_LABELS = {"arrival": "到達時", "revocation": "失効情報の更新後", "operator": "運用者の再検証"}
LABELS = {"action": ACTION_LABELS, "linkage": LINKAGE_LABELS, "indication": INDICATION_LABELS,
          "version_state": VERSION_STATE_LABELS, "hold": HOLD_LABELS, "trigger": VERIFICATION_TRIGGER_LABELS}


def _jst(value: datetime | date | None) -> str:
    if isinstance(value, datetime):
        return value.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else value.isoformat()


class Renderer:
    """The templates (autoescaped) and their filters."""

    def __init__(self) -> None:
        self.env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["jst"] = _jst

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
