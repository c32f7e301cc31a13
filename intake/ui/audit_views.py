"""The auditor's pages: the access log (P13) searched, exported as CSV and checked on demand.

Thin: parse, call :mod:`intake.accesslog.search` (which checks the auditor role and logs), render.
The page shows the latest recorded chain check; only 「今すぐ検証」 (POST, CSRF) re-hashes the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from intake.accesslog import search
from intake.accesslog.errors import AtenaSearchInvalid
from intake.accesslog.service import ChainProblem
from intake.errors import ExportTooLarge
from intake.jst import JST
from intake.models import AccessLogRow
from intake.ui.deps import Ctx, Form, Staff
from intake.ui.forms import Refusals, handle, parse_date, parse_int
from intake.ui.rendering import csv_download
from intake.ui.searches import SearchExpired

__all__ = ["EXPORT_HEADER", "router"]

router = APIRouter()

#: The query parameters of the filters, their length caps and the matching field.
_PARAMS = {"staff": ("staff_id", 64), "atena": ("atena_number", 32), "action": ("action", 64),
           "terminal": ("terminal", 128), "department": ("department", 128), "subject": ("subject", 128)}

EXPORT_HEADER = ["処理日時(JST)", "職員", "部署", "端末", "処理", "対象", "処理事由", "宛名番号", "ハッシュ"]

PROBLEM_LABELS = {
    ChainProblem.ROW_BELOW_ANCHOR: "保存期間による削除の範囲内に行が残っている、または戻されています",
    ChainProblem.ANCHOR_UNWITNESSED: "削除記録に対応する削除の記録行（audit.purge）がありません",
    ChainProblem.HEAD_MISSING: "前回の検証で最後にあった行がなくなっています（末尾の削除）",
    ChainProblem.HEAD_CHANGED: "前回の検証で最後にあった行が書き換えられています",
    ChainProblem.UNKEYED_ROW: "鍵のないハッシュの行があります（鍵を持たない者による書換えの疑い）",
    ChainProblem.UNKNOWN_KEY: "設定されていない鍵を名乗る行があります",
}


#: Filters that are personal data: accepted only through a saved search (POST), never in a URL.
_PERSONAL = frozenset({"atena"})


def _parse(source: Mapping[str, str], *, personal: bool) -> tuple[search.AccessLogFilters, dict[str, str]]:
    values: dict[str, str] = {}
    fields: dict[str, str] = {}
    for param, (field, cap) in _PARAMS.items():
        if param in _PERSONAL and not personal:
            continue
        value = (source.get(param) or "").strip()[:cap]
        if value:
            values[param], fields[field] = value, value
    date_from, date_to = parse_date(source.get("from")), parse_date(source.get("to"))
    for param, day in (("from", date_from), ("to", date_to)):
        if day is not None:
            values[param] = day.isoformat()
    return search.AccessLogFilters(date_from=date_from, date_to=date_to, **fields), values


def _filters(request: Request, ctx: Ctx) -> tuple[search.AccessLogFilters, dict[str, str], str]:
    """The filters, their values (for the form) and the query that repeats them (pager, export):
    a saved search (``s``, from the POSTed form) or, without one, the query parameters other than
    the personal ones. An ``s`` no longer held is :class:`SearchExpired`: never the whole log in its
    place, which the auditor would take for one person's (and an export would copy)."""
    q = request.query_params
    saved = ctx.state.searches.load(q.get("s"), ctx.row.id, at=ctx.now())
    if q.get("s") and saved is None:
        raise SearchExpired
    if saved is not None:
        filters, values = _parse(saved, personal=True)
        return filters, values, urlencode({"s": q.get("s", "")})
    filters, values = _parse(q, personal=False)
    return filters, values, urlencode(values)


@router.post("/audit/search", response_model=None)
def audit_search(ctx: Staff, form: Form) -> Response:
    """The search form: its values kept on the server (:mod:`intake.ui.searches`), then the page
    by the search's id — a searched 宛名番号 never stands in a URL (issue 15 §6)."""
    def save() -> str:
        search.require_auditor(ctx.principal)
        _unused, values = _parse(form, personal=True)
        return ctx.state.searches.save(ctx.row.id, values, at=ctx.now())

    return ctx.submit(form, save, refusals=Refusals([
        (AtenaSearchInvalid, 400, "宛名番号は10桁の数字で入力してください（個人番号では検索できません）。"),
    ]), refused=lambda code, message: ctx.page(
        "error.html", code, status=code, message=message),
        done=lambda token: RedirectResponse(f"/staff/audit?{urlencode({'s': token})}", status_code=303))


_EXPIRED = "検索の有効期限が切れました（30分）。もう一度検索してください。"


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, ctx: Staff) -> HTMLResponse:
    try:
        filters, values, query_base = _filters(request, ctx)
    except SearchExpired:
        return ctx.page("error.html", 400, status=400, message=_EXPIRED)
    result = search.search_access_log(ctx.session, ctx.principal, filters, at=ctx.now(),
                                      page=parse_int(request.query_params.get("page")),
                                      page_size=ctx.state.settings.page_size)
    return ctx.page("audit.html", result=result, values=values, query_base=query_base,
                    retention_years=ctx.state.runtime.settings.access_log_retention_years,
                    export_max_rows=ctx.state.settings.export_max_rows, problem_labels=PROBLEM_LABELS,
                    tz=JST)


@router.get("/audit.csv", response_model=None)
def audit_export(request: Request, ctx: Staff) -> Response:
    """The filtered log as CSV (:func:`intake.ui.web.csv_download`). Over the cap: 400 — the request
    (its filters) is what must change; 413 would say the request body was too
    large, and this request has none."""
    limit = ctx.state.settings.export_max_rows

    def download(rows: list[AccessLogRow]) -> Response:
        stamp = ctx.now().astimezone(JST).strftime("%Y%m%d-%H%M")
        return csv_download(EXPORT_HEADER, ((
            r.at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S"), r.staff_id, r.department, r.terminal,
            r.action, r.subject, r.reason or "", r.atena_number or "", r.hash) for r in rows),
            name=f"access-log-{stamp}.csv")

    too_large = f"該当する行が出力の上限（{limit:,} 件）を超えています。条件を絞り込んでください。"
    return handle(ctx.session, lambda: search.export_access_log(ctx.session, ctx.principal, _filters(request, ctx)[0],
                                                                at=ctx.now(), max_rows=limit),
                  refusals=Refusals([(ExportTooLarge, 400, too_large), (SearchExpired, 400, _EXPIRED)]),
                  refused=lambda code, message: ctx.page("error.html", code, status=code, message=message),
                  done=download)


@router.post("/audit/verify", response_model=None)
def audit_verify(ctx: Staff, form: Form) -> Response:
    """「今すぐ検証」: the full chain check, recorded; then back to the page (post/redirect/get)."""
    return ctx.submit(form, lambda: search.verify_now(ctx.session, ctx.principal, at=ctx.now()),
                      refusals=Refusals([]), refused=lambda code, message: ctx.page("error.html", code),
                      done=lambda _r: RedirectResponse("/staff/audit", status_code=303))
