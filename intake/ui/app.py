"""The staff UI as its own ASGI app, mounted by :func:`intake.api.create_app` at ``/staff``.

Its own middleware (security headers) and error pages: no traceback, no exception text, no
internal identifiers ever reach the browser.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from intake.errors import MyNumberInText, NotFound, PermissionDenied
from intake.runtime import Runtime
from intake.ui import admin_views, audit_views, casework_views, linkage_views, views
from intake.ui.deps import UIState
from intake.ui.errors import FormTooLarge, LoginRequired, TerminalRefused
from intake.ui.rendering import Renderer
from intake.ui.security import SESSION_COOKIE, SecurityHeaders, delete_cookie

__all__ = ["create_ui_app"]

_log = logging.getLogger(__name__)

_MESSAGES = {
    400: "リクエストが正しくありません。",
    403: "この操作を行う権限がありません。",
    404: "ページまたは申請が見つかりません。",
    405: "この操作はできません。",
    413: "送信された内容が大きすぎます。",
    500: "システムエラーが発生しました。時間をおいて再度お試しください。",
}


def create_ui_app(runtime: Runtime, session_factory: sessionmaker[Session]) -> FastAPI:
    ui = FastAPI(title="職員画面", docs_url=None, redoc_url=None, openapi_url=None)
    state = UIState(runtime, session_factory, Renderer())
    ui.state.ui = state
    ui.add_middleware(SecurityHeaders)
    # casework first: its /applications/search and /applications/bulk are not application ids
    for module in (casework_views, views, admin_views, linkage_views, audit_views):
        ui.include_router(module.router)
    ui.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    def error_page(status: int) -> HTMLResponse:
        return state.render("error.html", status, status=status, message=_MESSAGES.get(status, _MESSAGES[400]))

    @ui.exception_handler(TerminalRefused)
    def _refused(_request: Request, _exc: TerminalRefused) -> HTMLResponse:
        # P12: the refusal itself is evidence (the unit of work logged it: TerminalRefused is
        # recorded after the rollback); the page says nothing about why or how to get in.
        return state.render("refused.html", 403)

    @ui.exception_handler(LoginRequired)
    def _login(_request: Request, _exc: LoginRequired) -> Response:
        response = RedirectResponse("/staff/login?expired=1", status_code=303)
        delete_cookie(response, SESSION_COOKIE)
        return response

    @ui.exception_handler(MyNumberInText)
    def _my_number_in_text(_request: Request, _exc: MyNumberInText) -> HTMLResponse:
        # Whatever the form (note, hand-over, comment, 処理事由): nothing was saved (the unit of work
        # rolled back), and the page does not repeat the text.
        return state.render("error.html", 400, status=400, message=(
            "個人番号（マイナンバー）と思われる12桁の番号が含まれています。メモ・引継ぎ・コメント・処理事由には"
            "個人番号を書けません（個人番号は申請の個人番号欄で確認できます）。番号を除いてもう一度入力してください。"))

    @ui.exception_handler(NotFound)
    def _not_found(_request: Request, _exc: NotFound) -> HTMLResponse:
        return error_page(404)

    @ui.exception_handler(PermissionDenied)
    def _denied(_request: Request, exc: PermissionDenied) -> HTMLResponse:
        _log.info("staff UI refused: %s", exc.code)
        return error_page(403)

    @ui.exception_handler(FormTooLarge)
    def _too_large(_request: Request, exc: FormTooLarge) -> HTMLResponse:
        return error_page(413 if exc.code == "FORM_TOO_LARGE" else 400)

    @ui.exception_handler(RequestValidationError)
    def _invalid(_request: Request, _exc: RequestValidationError) -> HTMLResponse:
        return error_page(404)  # a malformed id is just an id that does not exist

    @ui.exception_handler(StarletteHTTPException)
    def _http(_request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return error_page(exc.status_code if exc.status_code in _MESSAGES else 400)

    @ui.exception_handler(Exception)
    def _crash(_request: Request, exc: Exception) -> HTMLResponse:
        _log.error("staff UI error: %s", type(exc).__name__)
        return error_page(500)

    return ui
