"""Staff UI routes of the admin pages (``/staff/admin/...``): staff accounts, and a read-only view of
the roles, departments, procedures and forwarding routes.

Thin, like every route module: :mod:`intake.staff.admin` checks the role (system_admin only), the
処理事由, the guards and the four eyes, and writes the access log. A new TOTP secret is shown once, in
the answer to the POST that made it (never stored, never put in a redirect), so those POSTs answer
200. A privileged change is filed as a request (承認待ちの申請) that another administrator approves
or denies on ``/staff/admin/requests``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from intake.authz import ROLE_LABELS, ROLE_ORDER
from intake.errors import ReasonRequired
from intake.staff import admin, overview
from intake.staff.errors import (
    AccountStateConflict,
    AdminGuard,
    FingerprintTaken,
    FourEyesRefused,
    InvalidDepartments,
    InvalidDisplayName,
    InvalidFingerprint,
    InvalidLoginId,
    InvalidRoles,
    LoginTaken,
    NoChange,
    PasswordMismatch,
    RequestDecided,
    RequestExpired,
    WeakPassword,
)
from intake.staff.requests import KIND_LABELS, Filed
from intake.ui.deps import Ctx, Form, Staff
from intake.ui.forms import Refusals

__all__ = ["router"]

router = APIRouter(prefix="/admin")

_MAX_TEXT = 2000
_MAX_PASSWORD = 256

_GUARDS = {
    "self_deactivate": "自分自身のアカウントは無効にできません。",
    "self_demote": "自分自身からシステム管理者の役割を外すことはできません。",
    "self_privilege": ("自分自身の役割・所属部署・個人番号の表示権限は変更できません。"
                       "他のシステム管理者に依頼してください。"),
    "last_admin": ("有効なシステム管理者が他にいないため、このアカウントを無効にしたり、"
                   "システム管理者の役割を外したりすることはできません。"),
}
_STATES = {
    "already_active": "このアカウントはすでに有効です。",
    "already_inactive": "このアカウントはすでに無効です。",
    "not_locked": "このアカウントはロックされていません。",
    "no_password": ("このアカウントにはパスワードによるログインが設定されていません。"
                    "先にパスワードを設定してください。"),
}
_FOUR_EYES = {
    "own_request": "自分が申請した変更は承認・却下できません。他のシステム管理者に依頼してください。",
    "own_account": "自分自身のアカウントについての申請は承認・却下できません。他のシステム管理者に依頼してください。",
    "both_factors": ("この操作を行うと、一人の管理者がこの職員のパスワードと二要素認証の両方を知ることになるため、"
                     "行えません。別のシステム管理者に依頼してください。"),
}
_REFUSALS = Refusals([
    (FourEyesRefused, 403, lambda exc: _FOUR_EYES[exc.rule]),
    (RequestExpired, 409, "この申請は承認の期限を過ぎています。必要であれば改めて申請してください。"),
    (RequestDecided, 409, "この申請はすでに承認または却下されています。"),
    (AdminGuard, 409, lambda exc: _GUARDS[exc.rule]),
    (AccountStateConflict, 409, lambda exc: _STATES[exc.state]),
    (ReasonRequired, 400, "処理事由を入力してください。"),
    (InvalidLoginId, 400, "ログインIDは英小文字・数字・「.」「_」「-」の3〜64文字で入力してください。"),
    (InvalidDisplayName, 400, "氏名を入力してください（128文字まで）。"),
    (InvalidRoles, 400, "役割を1つ以上選択してください。"),
    (InvalidDepartments, 400, "部署を1つ以上、手続カタログにある部署から選択してください。"),
    (WeakPassword, 400, f"パスワードは{admin.MIN_PASSWORD_LENGTH}文字以上で入力してください。"),
    (PasswordMismatch, 400, "確認用に入力したパスワードが一致しません。"),
    (InvalidFingerprint, 400, "ICカード証明書のフィンガープリントは SHA-256 の16進数64桁で入力してください。"),
    (NoChange, 400, "変更された項目がありません。"),
    (LoginTaken, 409, "このログインIDはすでに使われています。"),
    (FingerprintTaken, 409, "このICカード証明書は別のアカウントに登録されています。"),
])
#: ``?done=`` after a redirect: fixed keys to fixed texts (nothing from the query reaches the page).
_DONE = {
    "update": "アカウントを更新しました。",
    "deactivate": "アカウントを無効にしました。ログイン中のセッションは終了しました。",
    "reactivate": "アカウントを有効にしました。",
    "unlock": "ロックを解除しました。",
    "password": "パスワードを設定しました。",
    "requested": "承認の申請をしました。他のシステム管理者が承認すると反映されます。",
    "approved": "申請を承認しました。",
    "denied": "申請を却下しました。",
}


def _text(form: dict[str, str], name: str, limit: int = _MAX_TEXT) -> str:
    return form.get(name, "")[:limit]


def _checked(form: dict[str, str], prefix: str) -> list[str]:
    """Checkboxes are named ``<prefix><value>`` (the form reader keeps one value per name)."""
    return [k[len(prefix):] for k, v in form.items() if k.startswith(prefix) and v]


def _departments(ctx: Ctx, held: tuple[str, ...] = ()) -> dict[str, str]:
    known = admin.known_departments(ctx.state.runtime.procedures)
    return {**known, **{d: "（カタログにない部署）" for d in held if d not in known}}


def _page(ctx: Ctx, name: str, status_code: int = 200, **context: object) -> HTMLResponse:
    return ctx.page(name, status_code, role_labels=ROLE_LABELS, role_order=ROLE_ORDER, kind_labels=KIND_LABELS,
                    **context)


def _ttl(ctx: Ctx) -> timedelta:
    return timedelta(hours=ctx.state.settings.approval_hours)


# --- accounts ---------------------------------------------------------------------------------------


@router.get("", response_model=None)
def admin_home(ctx: Staff) -> Response:
    admin.require_admin(ctx.principal)
    return RedirectResponse("/staff/admin/users", status_code=303)


@router.get("/users", response_class=HTMLResponse)
def user_list(ctx: Staff) -> HTMLResponse:
    return _page(ctx, "admin_users.html", users=admin.list_users(ctx.session, ctx.principal, at=ctx.now()))


def _new_form(ctx: Ctx, *, status_code: int = 200, error: str | None = None,
              values: dict[str, str] | None = None) -> HTMLResponse:
    admin.require_admin(ctx.principal)
    return _page(ctx, "admin_user_new.html", status_code, error=error, values=values or {},
                 departments=_departments(ctx), min_password=admin.MIN_PASSWORD_LENGTH)


@router.get("/users/new", response_class=HTMLResponse)
def user_new(ctx: Staff) -> HTMLResponse:
    return _new_form(ctx)


@router.post("/users", response_model=None)
def user_create(ctx: Staff, form: Form) -> Response:
    kept = {k: v for k, v in form.items() if k not in {"csrf", "password", "password_confirm"}}
    return ctx.submit(form, lambda: admin.create_account(
        # An over-long login id is cut well past the limit, so it is refused rather than shortened.
        ctx.session, ctx.principal, login=_text(form, "login", 256).strip(),
        display_name=_text(form, "display_name", 256), roles=_checked(form, "role_"),
        departments=_checked(form, "dept_"), may_reveal_my_number=bool(form.get("reveal")),
        password=_text(form, "password", _MAX_PASSWORD),
        password_confirm=_text(form, "password_confirm", _MAX_PASSWORD),
        client_cert_sha256=_text(form, "cert", 128), reason=_text(form, "reason"), at=ctx.now(),
        catalogue=ctx.state.runtime.procedures, sealer=ctx.state.runtime.package_sealer,
        issuer=ctx.state.settings.totp_issuer, ttl=_ttl(ctx)),
        refusals=_REFUSALS,
        refused=lambda code, message: _new_form(ctx, status_code=code, error=message, values=kept),
        done=lambda created: _page(ctx, "admin_secret.html", totp=created.totp, user_id=created.user_id,
                                   heading="アカウントを作成しました", filed=created.requests))


def _detail(ctx: Ctx, user_id: int, *, status_code: int = 200, error: str | None = None,
            done: str | None = None) -> HTMLResponse:
    user = admin.get_user(ctx.session, ctx.principal, user_id, at=ctx.now())
    requests = admin.change_requests(ctx.session, ctx.principal, at=ctx.now(), user_id=user_id)
    return _page(ctx, "admin_user.html", status_code, u=user, error=error, done=_DONE.get(done or ""),
                 departments=_departments(ctx, user.departments), is_self=user.login == ctx.principal.login,
                 min_password=admin.MIN_PASSWORD_LENGTH, requests=requests)


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_detail(user_id: int, ctx: Staff, done: str | None = None) -> HTMLResponse:
    return _detail(ctx, user_id, done=done)


def _back(user_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"/staff/admin/users/{user_id}?done={done}", status_code=303)


def _on_account(ctx: Ctx, user_id: int, form: dict[str, str], action: Callable[[], object],
                done: Callable[[object], Response]) -> Response:
    """A POST on an account's page: the page again with the refusal's message, or ``done``."""
    return ctx.submit(form, action, refusals=_REFUSALS,
                      refused=lambda code, message: _detail(ctx, user_id, status_code=code, error=message),
                      done=done)


@router.post("/users/{user_id}", response_model=None)
def user_update(user_id: int, ctx: Staff, form: Form) -> Response:
    return _on_account(ctx, user_id, form, lambda: admin.update_account(
        ctx.session, ctx.principal, user_id, display_name=_text(form, "display_name", 256),
        roles=_checked(form, "role_"), departments=_checked(form, "dept_"),
        may_reveal_my_number=bool(form.get("reveal")), client_cert_sha256=_text(form, "cert", 128),
        reason=_text(form, "reason"), at=ctx.now(), catalogue=ctx.state.runtime.procedures, ttl=_ttl(ctx)),
        lambda updated: _back(user_id, "requested" if isinstance(updated, admin.Updated) and updated.requests
                              else "update"))


def _account_change(ctx: Ctx, user_id: int, form: dict[str, str], change: Callable[..., object], done: str
                    ) -> Response:
    """A POST that changes an account's state with a 処理事由, then back to the account page."""
    return _on_account(ctx, user_id, form,
                       lambda: change(ctx.session, ctx.principal, user_id, reason=_text(form, "reason"), at=ctx.now()),
                       lambda _r: _back(user_id, done))


@router.post("/users/{user_id}/deactivate", response_model=None)
def user_deactivate(user_id: int, ctx: Staff, form: Form) -> Response:
    return _account_change(ctx, user_id, form, admin.deactivate, "deactivate")


@router.post("/users/{user_id}/reactivate", response_model=None)
def user_reactivate(user_id: int, ctx: Staff, form: Form) -> Response:
    return _account_change(ctx, user_id, form, admin.reactivate, "reactivate")


@router.post("/users/{user_id}/unlock", response_model=None)
def user_unlock(user_id: int, ctx: Staff, form: Form) -> Response:
    return _account_change(ctx, user_id, form, admin.unlock, "unlock")


@router.post("/users/{user_id}/totp", response_model=None)
def user_totp_reset(user_id: int, ctx: Staff, form: Form) -> Response:
    def done(result: object) -> Response:
        if isinstance(result, Filed):  # another's account: a request for a second administrator
            return _back(user_id, "requested")
        return _page(ctx, "admin_secret.html", totp=result, user_id=user_id,
                     heading="二要素認証（TOTP）を再設定しました")

    return _on_account(ctx, user_id, form, lambda: admin.reset_totp(
        ctx.session, ctx.principal, user_id, reason=_text(form, "reason"), at=ctx.now(),
        sealer=ctx.state.runtime.package_sealer, issuer=ctx.state.settings.totp_issuer, current_session=ctx.row.id,
        ttl=_ttl(ctx)), done)


@router.post("/users/{user_id}/password", response_model=None)
def user_password(user_id: int, ctx: Staff, form: Form) -> Response:
    def done(result: object) -> Response:
        if isinstance(result, Filed):
            return _back(user_id, "requested")
        if result is None:
            return _back(user_id, "password")
        return _page(ctx, "admin_secret.html", totp=result, user_id=user_id,
                     heading="パスワードを設定しました（二要素認証も設定しました）")

    return _on_account(ctx, user_id, form, lambda: admin.set_password(
        ctx.session, ctx.principal, user_id, password=_text(form, "password", _MAX_PASSWORD),
        password_confirm=_text(form, "password_confirm", _MAX_PASSWORD), reason=_text(form, "reason"),
        at=ctx.now(), sealer=ctx.state.runtime.package_sealer, issuer=ctx.state.settings.totp_issuer,
        current_session=ctx.row.id, ttl=_ttl(ctx)), done)


# --- four eyes: change requests -------------------------------------------------------------------------


def _requests(ctx: Ctx, *, status_code: int = 200, error: str | None = None, done: str | None = None
              ) -> HTMLResponse:
    rows = admin.change_requests(ctx.session, ctx.principal, at=ctx.now())
    return _page(ctx, "admin_requests.html", status_code, requests=rows, error=error, done=_DONE.get(done or ""))


@router.get("/requests", response_class=HTMLResponse)
def request_list(ctx: Staff, done: str | None = None) -> HTMLResponse:
    return _requests(ctx, done=done)


@router.post("/requests/{request_id}/approve", response_model=None)
def request_approve(request_id: int, ctx: Staff, form: Form) -> Response:
    """Apply the request; a TOTP secret the approval made is shown here, once, to the approver."""
    def done(approved: admin.Approved) -> Response:
        if approved.totp is None:
            return RedirectResponse("/staff/admin/requests?done=approved", status_code=303)
        return _page(ctx, "admin_secret.html", totp=approved.totp, user_id=approved.user_id,
                     heading="申請を承認し、二要素認証（TOTP）を発行しました")

    return ctx.submit(form, lambda: admin.approve_request(
        ctx.session, ctx.principal, request_id, reason=_text(form, "reason"), at=ctx.now(),
        sealer=ctx.state.runtime.package_sealer, issuer=ctx.state.settings.totp_issuer, current_session=ctx.row.id),
        refusals=_REFUSALS, refused=lambda code, message: _requests(ctx, status_code=code, error=message), done=done)


@router.post("/requests/{request_id}/deny", response_model=None)
def request_deny(request_id: int, ctx: Staff, form: Form) -> Response:
    return ctx.submit(form, lambda: admin.deny_request(ctx.session, ctx.principal, request_id,
                                                       reason=_text(form, "reason"), at=ctx.now()),
                      refusals=_REFUSALS, refused=lambda code, message: _requests(ctx, status_code=code, error=message),
                      done=lambda _uid: RedirectResponse("/staff/admin/requests?done=denied", status_code=303))


# --- configuration (read-only) ----------------------------------------------------------------------


@router.get("/roles", response_class=HTMLResponse)
def roles_page(ctx: Staff) -> HTMLResponse:
    return _page(ctx, "admin_roles.html", matrix=overview.role_matrix(ctx.session, ctx.principal))


@router.get("/departments", response_class=HTMLResponse)
def departments_page(ctx: Staff) -> HTMLResponse:
    catalogue = ctx.state.runtime.procedures
    return _page(ctx, "admin_departments.html", configured=catalogue.configured,
                 rows=overview.department_overview(ctx.session, ctx.principal, catalogue),
                 source=ctx.state.runtime.settings.procedures_file)


@router.get("/procedures", response_class=HTMLResponse)
def procedures_page(ctx: Staff) -> HTMLResponse:
    runtime = ctx.state.runtime
    return _page(ctx, "admin_procedures.html", configured=runtime.procedures.configured,
                 rows=overview.procedure_overview(ctx.principal, runtime.procedures, runtime.routes),
                 source=runtime.settings.procedures_file, routes_source=runtime.settings.routes_file)


@router.get("/routes", response_class=HTMLResponse)
def routes_page(ctx: Staff) -> HTMLResponse:
    runtime = ctx.state.runtime
    rows = overview.route_overview(ctx.principal, runtime.routes, runtime.procedures)
    return _page(ctx, "admin_routes.html", rows=rows, source=runtime.settings.routes_file)
