"""Routes of the staff UI. Thin: parse, call a service (which checks roles, scope and logs), render.

Every route first checks the terminal (:func:`intake.ui.security.terminal_of`); every route but the
login pages needs a live session bound to that terminal; every POST carries the session's CSRF token
and goes through one shape (:meth:`intake.ui.deps.Ctx.submit`). The request's unit of work commits.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from handover import COMMENT_MAX_CHARS
from intake.applications import listing
from intake.applications import service as apps
from intake.applications.admission import Decision, Rules, decide
from intake.applications.dashboard import dashboard
from intake.applications.errors import CommentTooLong
from intake.applications.workflow import change_status, mark_reviewed
from intake.authz import CHANGE_ROLES, EXPORT_ROLES
from intake.errors import ExportTooLarge, IllegalStateChange, InvalidRequest, PermissionDenied, ReasonRequired
from intake.forwarding import service as outbox
from intake.jst import JST
from intake.linkage.errors import InvalidAtenaNumber, LinkagePermissionDenied
from intake.models import LinkageState
from intake.mynumbers.errors import MyNumberAccessDenied
from intake.relayreports.service import set_aside_items
from intake.staff.errors import AccountLocked, LoginFailed
from intake.staff.service import end_session, login_with_certificate, login_with_password
from intake.ui.casework_views import BULK_ACTIONS, person_filters
from intake.ui.deps import DB, Ctx, Form, Staff, Terminal, UIState, ui_state
from intake.ui.detailpage import render_detail
from intake.ui.forms import Refusals, handle, parse_date, parse_enum, parse_int
from intake.ui.rendering import LINKAGE_LABELS, csv_download
from intake.ui.searches import SearchExpired
from intake.ui.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    delete_cookie,
    from_trusted_proxy,
    new_token,
    set_cookie,
    staff_certificate,
)
from status import Action, CommentRequired, IllegalTransition, NotPermitted, Status, StatusError

__all__ = ["router"]

router = APIRouter()

# --- login / logout ---------------------------------------------------------------------------------


def _login_page(request: Request, state: UIState, *, error: str | None = None, status_code: int = 200,
                message: str | None = None) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = state.render("login.html", status_code, csrf=token, error=error, message=message,
                            cert_login=from_trusted_proxy(request, state.settings))
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, state.settings)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, _terminal: Terminal, expired: int = 0) -> HTMLResponse:
    return _login_page(request, ui_state(request),
                       message="セッションが終了しました。もう一度ログインしてください。" if expired else None)


def _logged_in(request: Request, state: UIState, token: str) -> RedirectResponse:
    response = RedirectResponse("/staff/", status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token, state.settings)
    delete_cookie(response, LOGIN_CSRF_COOKIE)
    return response


# A failed login is answered with the login page and *committed*: the failure counter (lockout) and
# its access-log row are the point. So the login handlers return a page rather than roll back.


@router.post("/login", response_model=None)
def login(request: Request, session: DB, terminal: Terminal, form: Form) -> Response:
    state = ui_state(request)
    check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form)
    try:
        token, _row = login_with_password(
            session, login=form.get("login", "")[:64], password=form.get("password", "")[:256],
            totp_code=form.get("totp", "")[:16], terminal=terminal, at=state.runtime.clock(),
            settings=state.settings, sealer=state.runtime.package_sealer)
    except AccountLocked:
        return _login_page(request, state, status_code=401,
                           error="ログインの失敗が続いたため、このアカウントは一時的にロックされています。")
    except LoginFailed:
        return _login_page(request, state, status_code=401,
                           error="ログインID、パスワードまたは確認コードが正しくありません。")
    return _logged_in(request, state, token)


@router.post("/login/certificate", response_model=None)
def login_certificate(request: Request, session: DB, terminal: Terminal, form: Form) -> Response:
    """IC-card login: only a trusted front proxy may assert the verified certificate (docs/operations.md)."""
    state = ui_state(request)
    check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form)
    fingerprint = staff_certificate(request, state.settings)
    try:
        if not fingerprint:
            raise LoginFailed("no certificate from a trusted proxy")
        token, _row = login_with_certificate(session, fingerprint=fingerprint, terminal=terminal,
                                             at=state.runtime.clock(), settings=state.settings)
    except (LoginFailed, AccountLocked):
        return _login_page(request, state, status_code=401, error="ICカードによるログインができませんでした。")
    return _logged_in(request, state, token)


@router.post("/logout", response_model=None)
def logout(ctx: Staff, form: Form) -> Response:
    check_csrf(ctx.row.csrf_token, form)
    end_session(ctx.session, ctx.row, ctx.user, at=ctx.now())
    response = RedirectResponse("/staff/login", status_code=303)
    delete_cookie(response, SESSION_COOKIE)
    return response


# --- pages ------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(ctx: Staff) -> HTMLResponse:
    now = ctx.now()
    board = dashboard(ctx.session, ctx.principal, at=now)
    return ctx.page("dashboard.html", board=board, today=now.astimezone(JST).date().isoformat())


def _filters(request: Request, ctx: Ctx) -> listing.ListFilters:
    """The list's filters from the query string; a person search only by its server-side id
    (:func:`intake.ui.casework_views.person_filters`: no name or number in a URL; an id no longer
    held is :class:`intake.ui.searches.SearchExpired`)."""
    q = request.query_params
    person = person_filters(request, ctx)
    return listing.ListFilters(
        procedure=q.get("procedure") or None, status=parse_enum(Status, q.get("status")),
        date_from=parse_date(q.get("from")), date_to=parse_date(q.get("to")),
        linkage=parse_enum(LinkageState, q.get("linkage")),
        needs_review=q.get("queue") == "1", signature_errors=q.get("sigerr") == "1", held=q.get("held") == "1",
        version=parse_enum(listing.VersionFilter, q.get("version")), assigned=(q.get("assigned") or "")[:64] or None,
        page=parse_int(q.get("page")), overdue=q.get("overdue") == "1",
        sort=listing.SORT_DUE if q.get("sort") == listing.SORT_DUE else None, **person,
    )


#: No My Numbers, no 4情報: the list page's columns. 申請種別: 新規 or 再申請 (the newest version is a
#: resubmission); 宛名番号: the linkage state (自動/手動/未設定/競合) as listed, not the number itself.
EXPORT_HEADER = ["受付番号", "初回受付番号", "手続", "申請種別", "状態", "到達日時", "宛名番号", "要確認"]


# Registered before /applications/{app_id}: "applications.csv" is not an id.
@router.get("/applications.csv", response_model=None)
def application_export(request: Request, ctx: Staff) -> Response:
    """The filtered list as CSV (all pages; :func:`intake.ui.rendering.csv_download`)."""
    limit = ctx.state.settings.export_max_rows

    def export() -> list[listing.ApplicationRow]:  # the filters inside: an expired search is a refusal
        return listing.export_applications(ctx.session, ctx.principal, _filters(request, ctx), at=ctx.now(),
                                           max_rows=limit)

    def download(rows: list[listing.ApplicationRow]) -> Response:
        stamp = ctx.now().astimezone(JST).strftime("%Y%m%d-%H%M")
        return csv_download(EXPORT_HEADER, ((
            r.receipt_number, r.first_receipt_number, r.procedure_name,
            "新規" if r.receipt_number == r.first_receipt_number else "再申請", r.status,
            r.created_at.astimezone(JST).strftime("%Y-%m-%d %H:%M"),
            LINKAGE_LABELS[r.linkage_state], "要確認" if r.needs_review else "") for r in rows),
            name=f"applications-{stamp}.csv")

    too_large = (f"該当する申請がCSV出力の上限（{limit:,} 件）を超えています。"
                 "手続・期間などで絞り込んでから出力してください。")
    return handle(ctx.session, export, refusals=Refusals([(ExportTooLarge, 400, too_large), (SearchExpired, 400, (
        "検索の有効期限が切れました（30分）。もう一度検索してから出力してください。"))]),
                  refused=lambda code, message: ctx.page("error.html", code, status=code, message=message),
                  done=download)


@router.get("/applications", response_class=HTMLResponse)
def application_list(request: Request, ctx: Staff) -> HTMLResponse:
    q = request.query_params
    try:
        filters = _filters(request, ctx)
    except SearchExpired:  # nothing rather than the unfiltered list, which would pass for the search's result
        filters, expired = listing.ListFilters(), True
        result = listing.ApplicationPage([], 0, 1, 1)
    else:
        expired = False
        result = listing.list_applications(ctx.session, ctx.principal, filters,
                                           page_size=ctx.state.settings.page_size, at=ctx.now())
    today = ctx.now().astimezone(JST).date()
    procedures = sorted((p for p in ctx.state.runtime.procedures.procedures.values()
                         if ctx.principal.covers(p.id)), key=lambda p: p.id)
    params = {k: v for k, v in q.items() if k != "page"}
    query_base = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    return ctx.page("list.html", result=result, filters=filters, procedures=procedures, statuses=list(Status),
                    linkage_states=list(LinkageState), query_base=query_base,
                    may_export=ctx.principal.has_any(EXPORT_ROLES), version_filters=VERSION_LABELS,
                    colleagues=listing.colleagues(ctx.session, ctx.principal), today=today,
                    search_id=q.get("search", "")[:64], search_expired=expired,
                    may_change=ctx.principal.has_any(CHANGE_ROLES), bulk_actions=BULK_ACTIONS)


VERSION_LABELS = {listing.VersionFilter.SINGLE: "初回の版のみ", listing.VersionFilter.RESUBMITTED: "再申請・補正あり",
                  listing.VersionFilter.NEW_UNREVIEWED: "新しい版が未確認"}


_detail = render_detail


@router.get("/applications/{app_id}", response_class=HTMLResponse)
def application_detail(request: Request, app_id: int, ctx: Staff) -> HTMLResponse:
    q = request.query_params
    version = parse_int(q.get("version"), 0) or None
    compare = parse_int(q.get("compare"), 0) or None
    return _detail(ctx, app_id, version=version, compare=compare)


def _on_detail(ctx: Ctx, app_id: int, form: Form, action: object, refusals: Refusals, *,
               version: int | None = None) -> Response:
    """A POST on the detail page: back to the page, or the page again with the refusal's message."""
    return ctx.submit(form, action, refusals=refusals,
                      refused=lambda code, message: _detail(ctx, app_id, status_code=code, error=message,
                                                            version=version),
                      done=lambda _result: RedirectResponse(f"/staff/applications/{app_id}", status_code=303))


_DENIED = "この操作を行う権限がありません。"
_STATUS_REFUSALS = Refusals([
    (IllegalTransition, 409, "現在のステータスではこの操作はできません。"),
    (NotPermitted, 403, _DENIED),
    (CommentRequired, 400, "この操作には理由（コメント）の入力が必要です。"),
    (CommentTooLong, 400, f"申請者へのコメントは{COMMENT_MAX_CHARS}文字以内で入力してください。"),
    (StatusError, 400, "操作できません。"),
    (InvalidRequest, 400, "操作が正しくありません。"),
])


@router.post("/applications/{app_id}/status", response_model=None)
def post_status(app_id: int, ctx: Staff, form: Form) -> Response:
    def act() -> object:
        action = parse_enum(Action, form.get("action"))
        if action is None:
            raise InvalidRequest("unknown action", code="UNKNOWN_ACTION")
        return change_status(ctx.session, application_id=app_id, action=action, actor=ctx.principal,
                             comment=form.get("comment", "")[:4000], at=ctx.now())

    return _on_detail(ctx, app_id, form, act, _STATUS_REFUSALS)


@router.post("/applications/{app_id}/reviewed", response_model=None)
def post_reviewed(app_id: int, ctx: Staff, form: Form) -> Response:
    return _on_detail(ctx, app_id, form,
                      lambda: mark_reviewed(ctx.session, application_id=app_id, actor=ctx.principal, at=ctx.now()),
                      Refusals([(NotPermitted, 403, _DENIED)]))


@router.post("/applications/{app_id}/atena", response_model=None)
def post_atena(app_id: int, ctx: Staff, form: Form) -> Response:
    return _on_detail(ctx, app_id, form, lambda: apps.set_atena(
        ctx.session, ctx.principal, app_id, atena_number=form.get("atena_number", "").strip()[:32],
        reason=form.get("reason", "")[:2000], at=ctx.now()), Refusals([
            (LinkagePermissionDenied, 403, "宛名番号を設定する権限がありません。"),
            (InvalidAtenaNumber, 400, "宛名番号は10桁の数字で入力してください。"),
            (ReasonRequired, 400, "処理事由を入力してください。"),
        ]))


@router.post("/applications/{app_id}/versions/{version_id}/decision", response_model=None)
def post_version_decision(app_id: int, version_id: int, ctx: Staff, form: Form) -> Response:
    """Accept or reject a held version (「本人確認要」) with a 処理事由."""
    def act() -> object:
        decision = parse_enum(Decision, form.get("decision"))
        if decision is None:
            raise InvalidRequest("unknown decision", code="UNKNOWN_DECISION")
        runtime = ctx.state.runtime
        return decide(ctx.session, ctx.principal, Rules(runtime.routes, runtime.procedures),
                      application_id=app_id, version_id=version_id, decision=decision,
                      reason=form.get("reason", "")[:2000], at=ctx.now())

    return _on_detail(ctx, app_id, form, act, Refusals([
        (ReasonRequired, 400, "処理事由を入力してください。"),
        (IllegalStateChange, 409, "この版はこの操作の対象ではありません（受け付けられるのは、署名者が申請者と同一人と"
                                  "確認できない版だけです）。"),
        (InvalidRequest, 400, "操作が正しくありません。"),
    ]), version=version_id)


@router.post("/applications/{app_id}/assign", response_model=None)
def post_assign(app_id: int, ctx: Staff, form: Form) -> Response:
    return _on_detail(ctx, app_id, form, lambda: apps.assign(
        ctx.session, ctx.principal, app_id, to_me=form.get("to") != "none", at=ctx.now()),
        Refusals([(PermissionDenied, 403, "担当を変更する権限がありません。")]))


@router.post("/applications/{app_id}/my-number", response_model=None)
def post_reveal(app_id: int, ctx: Staff, form: Form) -> Response:
    """Shows the number once, in this response only (never stored in the session or a redirect)."""
    version_id, position = parse_int(form.get("version_id"), 0), parse_int(form.get("position"), -1)

    def refused(code: int, message: str) -> Response:
        # A missing reason keeps the version the form was on; a missing permission shows the chain.
        return _detail(ctx, app_id, status_code=code, error=message, version=version_id if code == 400 else None)

    return ctx.submit(form, lambda: apps.reveal(
        ctx.session, ctx.principal, app_id, version_id=version_id, position=position,
        reason=form.get("reason", "")[:2000], at=ctx.now(), sealer=ctx.state.runtime.my_number_sealer),
        refusals=Refusals([(MyNumberAccessDenied, 403, "個人番号を表示する権限がありません。"),
                           (ReasonRequired, 400, "処理事由を入力してください。")]),
        refused=refused,
        done=lambda number: _detail(ctx, app_id, version=version_id, revealed={(version_id, position): number}))


@router.get("/attachments/{attachment_id}", response_model=None)
def attachment(attachment_id: int, ctx: Staff) -> Response:
    download = apps.download_attachment(ctx.session, ctx.principal, attachment_id, at=ctx.now(),
                                        sealer=ctx.state.runtime.package_sealer)
    # Always a download, never rendered in our origin (a hostile HTML or SVG attachment stays inert).
    return Response(download.data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(download.name)}"})


def _outbox(ctx: Ctx, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    return ctx.page("outbox.html", status_code, items=outbox.failed_items(ctx.session, ctx.principal),
                    set_aside=set_aside_items(ctx.session, ctx.principal), error=error)


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(ctx: Staff) -> HTMLResponse:
    return _outbox(ctx)


@router.post("/outbox/{item_id}/retry", response_model=None)
def outbox_retry(item_id: int, ctx: Staff, form: Form) -> Response:
    return ctx.submit(
        form, lambda: outbox.retry_item(ctx.session, ctx.principal, item_id, at=ctx.now()),
        # No longer FAILED: retried by someone else meanwhile.
        refusals=Refusals([(IllegalStateChange, 409, "この転送はすでに再送待ちか、送信済みです。")]),
        refused=lambda code, message: _outbox(ctx, code, message),
        done=lambda _r: RedirectResponse("/staff/outbox", status_code=303))
