"""Routes of the staff UI. Thin: parse, call a service (which checks roles, scope and logs), render.

Every route first checks the terminal (:func:`intake.ui.web.terminal_of`); every route but the login
pages needs a live session bound to that terminal; every POST carries the session's CSRF token.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from intake.applications import outbox
from intake.applications import service as apps
from intake.applications.status import change_status, mark_reviewed
from intake.authz import EXPORT_ROLES
from intake.errors import ExportTooLarge, InvalidRequest, PermissionDenied, ReasonRequired
from intake.errors import IllegalTransition as ForwardingTransitionError
from intake.linkage.errors import InvalidAtenaNumber, LinkagePermissionDenied
from intake.models import LinkageState
from intake.mynumbers.service import MyNumberAccessDenied
from intake.staff.errors import AccountLocked, LoginFailed
from intake.staff.service import end_session, login_with_certificate, login_with_password
from intake.ui.common import (
    DB,
    LINKAGE_LABELS,
    Ctx,
    Form,
    Staff,
    Terminal,
    check_csrf,
    parse_date,
    parse_enum,
    parse_int,
    set_cookie,
    ui_state,
)
from intake.ui.web import (
    COOKIE_PATH,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    UIState,
    csv_download,
    from_trusted_proxy,
    new_token,
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
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, state)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, _terminal: Terminal, expired: int = 0) -> HTMLResponse:
    return _login_page(request, ui_state(request),
                       message="セッションが終了しました。もう一度ログインしてください。" if expired else None)


def _check_login_csrf(request: Request, form: dict[str, str]) -> None:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(form.get("csrf", ""), cookie):
        raise PermissionDenied("CSRF token mismatch", code="CSRF")


def _logged_in(request: Request, state: UIState, token: str) -> RedirectResponse:
    response = RedirectResponse("/staff/", status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token, state)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/login", response_model=None)
def login(request: Request, session: DB, terminal: Terminal, form: Form) -> Response:
    state = ui_state(request)
    _check_login_csrf(request, form)
    try:
        token, _row = login_with_password(
            session, login=form.get("login", "")[:64], password=form.get("password", "")[:256],
            totp_code=form.get("totp", "")[:16], terminal=terminal, at=state.runtime.clock(),
            settings=state.settings, sealer=state.runtime.package_sealer)
    except AccountLocked:
        session.commit()
        return _login_page(request, state, status_code=401,
                           error="ログインの失敗が続いたため、このアカウントは一時的にロックされています。")
    except LoginFailed:
        session.commit()
        return _login_page(request, state, status_code=401,
                           error="ログインID、パスワードまたは確認コードが正しくありません。")
    session.commit()
    return _logged_in(request, state, token)


@router.post("/login/certificate", response_model=None)
def login_certificate(request: Request, session: DB, terminal: Terminal, form: Form) -> Response:
    """IC-card login: only a trusted front proxy may assert the verified certificate (docs/operations.md)."""
    state = ui_state(request)
    _check_login_csrf(request, form)
    fingerprint = request.headers.get(state.settings.staff_cert_header, "")
    if not from_trusted_proxy(request, state.settings):
        fingerprint = ""  # anyone else could simply send the header
    try:
        if not fingerprint:
            raise LoginFailed("no certificate from a trusted proxy")
        token, _row = login_with_certificate(session, fingerprint=fingerprint, terminal=terminal,
                                             at=state.runtime.clock(), settings=state.settings)
    except (LoginFailed, AccountLocked):
        session.commit()
        return _login_page(request, state, status_code=401, error="ICカードによるログインができませんでした。")
    session.commit()
    return _logged_in(request, state, token)


@router.post("/logout", response_model=None)
def logout(ctx: Staff, form: Form) -> Response:
    check_csrf(ctx, form)
    end_session(ctx.session, ctx.row, ctx.user, at=ctx.now())
    ctx.session.commit()
    response = RedirectResponse("/staff/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


# --- pages ------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(ctx: Staff) -> HTMLResponse:
    now = ctx.now()
    board = apps.dashboard(ctx.session, ctx.principal, at=now)
    return ctx.page("dashboard.html", board=board, today=now.astimezone(apps.JST).date().isoformat())


def _filters(request: Request) -> apps.ListFilters:
    q = request.query_params
    return apps.ListFilters(
        procedure=q.get("procedure") or None, status=parse_enum(Status, q.get("status")),
        date_from=parse_date(q.get("from")), date_to=parse_date(q.get("to")),
        linkage=parse_enum(LinkageState, q.get("linkage")),
        needs_review=q.get("queue") == "1", signature_errors=q.get("sigerr") == "1",
        query=(q.get("q") or "")[:64] or None, kana=(q.get("kana") or "")[:64] or None,
        version=parse_enum(apps.VersionFilter, q.get("version")), assigned=(q.get("assigned") or "")[:64] or None,
        page=parse_int(q.get("page")),
    )


# Registered before /applications/{app_id}: "applications.csv" is not an id.
@router.get("/applications.csv", response_model=None)
def application_export(request: Request, ctx: Staff) -> Response:
    """The filtered list as CSV (all pages; :func:`intake.ui.web.csv_download`)."""
    try:
        rows = apps.export_applications(ctx.session, ctx.principal, _filters(request), at=ctx.now(),
                                        max_rows=ctx.state.settings.export_max_rows)
    except ExportTooLarge as exc:
        ctx.session.rollback()
        return ctx.page("error.html", 400, status=400, message=(
            f"該当する申請がCSV出力の上限（{exc.limit:,} 件）を超えています。"
            "手続・期間などで絞り込んでから出力してください。"))
    ctx.session.commit()
    stamp = ctx.now().astimezone(apps.JST).strftime("%Y%m%d-%H%M")
    return csv_download(EXPORT_HEADER, ((
        r.receipt_number, r.first_receipt_number, r.procedure_name,
        "新規" if r.receipt_number == r.first_receipt_number else "再申請", r.status,
        r.created_at.astimezone(apps.JST).strftime("%Y-%m-%d %H:%M"),
        LINKAGE_LABELS[r.linkage_state], "要確認" if r.needs_review else "") for r in rows),
        name=f"applications-{stamp}.csv")


#: No My Numbers, no 4情報: the list page's columns. 申請種別: 新規 or 再申請 (the newest version is a
#: resubmission); 宛名番号: the linkage state (自動/手動/未設定/競合) as listed, not the number itself.
EXPORT_HEADER = ["受付番号", "初回受付番号", "手続", "申請種別", "状態", "到達日時", "宛名番号", "要確認"]


@router.get("/applications", response_class=HTMLResponse)
def application_list(request: Request, ctx: Staff) -> HTMLResponse:
    q = request.query_params
    filters = _filters(request)
    result = apps.list_applications(ctx.session, ctx.principal, filters, page_size=ctx.state.settings.page_size,
                                    at=ctx.now())
    ctx.session.commit()
    procedures = sorted((p for p in ctx.state.runtime.procedures.procedures.values()
                         if ctx.principal.covers(p.id)), key=lambda p: p.id)
    params = {k: v for k, v in q.items() if k != "page"}
    query_base = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    return ctx.page("list.html", result=result, filters=filters, procedures=procedures, statuses=list(Status),
                    linkage_states=list(LinkageState), query_base=query_base,
                    may_export=ctx.principal.has_any(EXPORT_ROLES), version_filters=VERSION_LABELS,
                    colleagues=apps.colleagues(ctx.session, ctx.principal))


VERSION_LABELS = {apps.VersionFilter.SINGLE: "初回の版のみ", apps.VersionFilter.RESUBMITTED: "再申請・補正あり",
                  apps.VersionFilter.NEW_UNREVIEWED: "新しい版が未確認"}


def _detail(ctx: Ctx, app_id: int, *, status_code: int = 200, version: int | None = None,
            compare: int | None = None, error: str | None = None,
            revealed: dict[tuple[int, int], str] | None = None) -> HTMLResponse:
    detail = apps.application_detail(ctx.session, ctx.principal, app_id, at=ctx.now(), version_id=version,
                                     compare_id=compare)
    ctx.session.commit()
    return ctx.page("detail.html", status_code, d=detail, error=error, revealed=revealed or {})


@router.get("/applications/{app_id}", response_class=HTMLResponse)
def application_detail(request: Request, app_id: int, ctx: Staff) -> HTMLResponse:
    q = request.query_params
    version = parse_int(q.get("version"), 0) or None
    compare = parse_int(q.get("compare"), 0) or None
    return _detail(ctx, app_id, version=version, compare=compare)


def _back(app_id: int) -> RedirectResponse:
    return RedirectResponse(f"/staff/applications/{app_id}", status_code=303)


_STATUS_ERRORS: list[tuple[type[StatusError], int, str]] = [
    (IllegalTransition, 409, "現在のステータスではこの操作はできません。"),
    (NotPermitted, 403, "この操作を行う権限がありません。"),
    (CommentRequired, 400, "この操作には理由（コメント）の入力が必要です。"),
]


@router.post("/applications/{app_id}/status", response_model=None)
def post_status(app_id: int, ctx: Staff, form: Form) -> Response:
    check_csrf(ctx, form)
    action = parse_enum(Action, form.get("action"))
    try:
        if action is None:
            raise InvalidRequest("unknown action", code="UNKNOWN_ACTION")
        change_status(ctx.session, application_id=app_id, action=action, actor=ctx.principal,
                      comment=form.get("comment", "")[:2000], at=ctx.now())
    except StatusError as exc:
        ctx.session.rollback()
        code, message = next(((c, m) for t, c, m in _STATUS_ERRORS if isinstance(exc, t)), (400, "操作できません。"))
        return _detail(ctx, app_id, status_code=code, error=message)
    except InvalidRequest:
        ctx.session.rollback()
        return _detail(ctx, app_id, status_code=400, error="操作が正しくありません。")
    ctx.session.commit()
    return _back(app_id)


@router.post("/applications/{app_id}/reviewed", response_model=None)
def post_reviewed(app_id: int, ctx: Staff, form: Form) -> Response:
    check_csrf(ctx, form)
    try:
        mark_reviewed(ctx.session, application_id=app_id, actor=ctx.principal, at=ctx.now())
    except NotPermitted:
        ctx.session.rollback()
        return _detail(ctx, app_id, status_code=403, error="この操作を行う権限がありません。")
    ctx.session.commit()
    return _back(app_id)


@router.post("/applications/{app_id}/atena", response_model=None)
def post_atena(app_id: int, ctx: Staff, form: Form) -> Response:
    check_csrf(ctx, form)
    try:
        apps.set_atena(ctx.session, ctx.principal, app_id, atena_number=form.get("atena_number", "").strip()[:32],
                       reason=form.get("reason", "")[:2000], at=ctx.now())
    except LinkagePermissionDenied:
        ctx.session.rollback()
        return _detail(ctx, app_id, status_code=403, error="宛名番号を設定する権限がありません。")
    except InvalidAtenaNumber:
        ctx.session.rollback()
        return _detail(ctx, app_id, status_code=400, error="宛名番号は10桁の数字で入力してください。")
    except ReasonRequired:
        ctx.session.rollback()
        return _detail(ctx, app_id, status_code=400, error="処理事由を入力してください。")
    ctx.session.commit()
    return _back(app_id)


@router.post("/applications/{app_id}/assign", response_model=None)
def post_assign(app_id: int, ctx: Staff, form: Form) -> Response:
    check_csrf(ctx, form)
    try:
        apps.assign(ctx.session, ctx.principal, app_id, to_me=form.get("to") != "none", at=ctx.now())
    except PermissionDenied:
        ctx.session.rollback()
        return _detail(ctx, app_id, status_code=403, error="担当を変更する権限がありません。")
    ctx.session.commit()
    return _back(app_id)


@router.post("/applications/{app_id}/my-number", response_model=None)
def post_reveal(app_id: int, ctx: Staff, form: Form) -> Response:
    """Shows the number once, in this response only (never stored in the session or a redirect)."""
    check_csrf(ctx, form)
    version_id, position = parse_int(form.get("version_id"), 0), parse_int(form.get("position"), -1)
    try:
        number = apps.reveal(ctx.session, ctx.principal, app_id, version_id=version_id, position=position,
                             reason=form.get("reason", "")[:2000], at=ctx.now(),
                             sealer=ctx.state.runtime.my_number_sealer)
    except MyNumberAccessDenied:
        ctx.session.rollback()
        return _detail(ctx, app_id, status_code=403, error="個人番号を表示する権限がありません。")
    except ReasonRequired:
        ctx.session.rollback()
        return _detail(ctx, app_id, version=version_id, status_code=400, error="処理事由を入力してください。")
    ctx.session.commit()
    return _detail(ctx, app_id, version=version_id, revealed={(version_id, position): number})


@router.get("/attachments/{attachment_id}", response_model=None)
def attachment(attachment_id: int, ctx: Staff) -> Response:
    download = apps.download_attachment(ctx.session, ctx.principal, attachment_id, at=ctx.now(),
                                        sealer=ctx.state.runtime.package_sealer)
    ctx.session.commit()
    # Always a download, never rendered in our origin (a hostile HTML or SVG attachment stays inert).
    return Response(download.data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(download.name)}"})


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(ctx: Staff) -> HTMLResponse:
    return ctx.page("outbox.html", items=outbox.failed_items(ctx.session, ctx.principal))


@router.post("/outbox/{item_id}/retry", response_model=None)
def outbox_retry(item_id: int, ctx: Staff, form: Form) -> Response:
    check_csrf(ctx, form)
    try:
        outbox.retry_item(ctx.session, ctx.principal, item_id, at=ctx.now())
    except ForwardingTransitionError:
        ctx.session.rollback()  # no longer FAILED (retried by someone else meanwhile)
        return ctx.page("outbox.html", 409, items=outbox.failed_items(ctx.session, ctx.principal),
                        error="この転送はすでに再送待ちか、送信済みです。")
    ctx.session.commit()
    return RedirectResponse("/staff/outbox", status_code=303)
