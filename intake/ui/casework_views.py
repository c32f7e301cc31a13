"""Routes of the clerk's casework: person search (POST → server-side search id), bulk status change,
hand-over, internal notes, print view and PDF. Thin: parse, call a service (which checks roles,
scope and logs), render; every POST is :meth:`intake.ui.deps.Ctx.submit` with its refusals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from handover import COMMENT_MAX_CHARS
from intake.applications import casework, listing, printing
from intake.applications.deadlines import business_days_left
from intake.applications.errors import BulkTooLarge, CommentTooLong, NotAColleague, NoteInvalid, SearchByMyNumber
from intake.authz import APPLICATION_ROLES
from intake.errors import InvalidDate, InvalidRequest, NotFound, PermissionDenied, ReasonRequired
from intake.jst import jst_day
from intake.statusoutbox.service import notices_for
from intake.ui.deps import Ctx, Form, Staff, ui_state
from intake.ui.detailpage import render_detail, transition_rows
from intake.ui.forms import Refusals, parse_enum, parse_int, read_form_pairs
from intake.ui.searches import PersonSearch, SearchExpired
from intake.wareki import parse_date
from status import Action, NotPermitted

__all__ = ["BULK_ACTIONS", "BULK_REASONS", "person_filters", "router"]

router = APIRouter()

_PRINT_CSS = Path(__file__).parent / "static" / "print.css"
#: What the list's bulk form offers (the system's own actions are not for staff).
BULK_ACTIONS = (Action.ACCEPT, Action.START_REVIEW, Action.COMPLETE, Action.REQUEST_CORRECTION, Action.REJECT)
_DENIED = "この操作を行う権限がありません。"


# --- person search --------------------------------------------------------------------------------


def person_filters(request: Request, ctx: Ctx) -> dict[str, Any]:
    """The list filters a held person search adds (``?search=<id>``); an unknown or expired id is
    :class:`intake.ui.searches.SearchExpired` (never the unfiltered list in its place)."""
    token = request.query_params.get("search", "")[:64]
    if not token:
        return {}
    held = ctx.state.searches.get(token, ctx.row.id, at=ctx.now())
    if held is None:
        raise SearchExpired
    return {"query": held.number, "kana": held.kana, "name": held.name, "phone": held.phone, "birth": held.birth}


@router.post("/applications/search", response_model=None)
def post_search(ctx: Staff, form: Form) -> Response:
    """Keep a person search on the server and show the list with its id (never the text in a URL)."""

    def hold() -> str:
        ctx.principal.require(APPLICATION_ROLES, "search applications")
        birth_text = form.get("birth", "").strip()[:32]
        number = form.get("number", "").strip()[:64]
        search = PersonSearch(
            number=listing.check_number_search(number) if number else None,
            name=form.get("name", "").strip()[:64] or None,
            kana=form.get("kana", "").strip()[:64] or None, phone=form.get("phone", "").strip()[:32] or None,
            birth=parse_date(birth_text) if birth_text else None)
        if search == PersonSearch():
            raise InvalidRequest("no search term", code="SEARCH_EMPTY")
        return ctx.state.searches.put(ctx.row.id, search, at=ctx.now())

    def refused(code: int, message: str) -> Response:
        return ctx.page("error.html", code, status=code, message=message)

    return ctx.submit(form, hold, refusals=Refusals([
        (InvalidDate, 400, "生年月日は 2003-08-02 や 平成15年8月2日 の形で入力してください。"),
        (SearchByMyNumber, 400, "個人番号（マイナンバー）では検索できません。受付番号または宛名番号（10桁）を入力して"
                                "ください。"),
        (InvalidRequest, 400, "検索する内容を入力してください。"),
    ]), refused=refused, done=lambda token: RedirectResponse(f"/staff/applications?search={quote(token)}",
                                                                 status_code=303))


# --- bulk status change ---------------------------------------------------------------------------


@router.post("/applications/bulk", response_model=None)
async def post_bulk(request: Request, ctx: Staff) -> Response:
    """Change the status of the ticked cases, each as if one by one; the result page lists what was
    refused and why."""
    pairs = await read_form_pairs(request, ui_state(request).settings, max_fields=casework.BULK_LIMIT + 10)
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    ids = [parse_int(v, 0) for k, v in pairs if k == "ids"]

    def act() -> casework.BulkResult:
        action = parse_enum(Action, form.get("action"))
        if action not in BULK_ACTIONS:
            raise InvalidRequest("not a bulk action", code="UNKNOWN_ACTION")
        if not [i for i in ids if i > 0]:
            raise InvalidRequest("no case ticked", code="NOTHING_SELECTED")
        comment = form.get("comment", "")
        if len(comment.strip()) > COMMENT_MAX_CHARS:
            raise CommentTooLong(COMMENT_MAX_CHARS)
        return casework.bulk_change(ctx.session, ctx.principal, [i for i in ids if i > 0], action=action,
                                    comment=comment, at=ctx.now())

    def refused(code: int, message: str) -> Response:
        return ctx.page("error.html", code, status=code, message=message)

    return ctx.submit(form, act, refusals=Refusals([
        (CommentTooLong, 400, f"申請者へのコメントは{COMMENT_MAX_CHARS}文字以内で入力してください。"),
        (BulkTooLarge, 400, f"一度に変更できるのは{casework.BULK_LIMIT}件までです。"),
        (InvalidRequest, 400, "変更する申請と操作を選んでください。"),
    ]), refused=refused, done=lambda result: ctx.page("bulk_result.html", result=result, reasons=BULK_REASONS))


#: Why a case of a bulk change was refused, as staff read it (by the error's code).
BULK_REASONS = {
    "ILLEGAL_TRANSITION": "現在のステータスではこの操作はできません",
    "NOT_PERMITTED": "この操作を行う権限がありません",
    "COMMENT_REQUIRED": "この操作には理由（コメント）が必要です",
    "NOT_FOUND": "申請が見つかりません（担当部署外を含む）",
    "COMMENT_TOO_LONG": f"コメントが{COMMENT_MAX_CHARS}文字を超えています",
}


# --- hand-over and notes --------------------------------------------------------------------------


def _back(app_id: int, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/staff/applications/{app_id}{anchor}", status_code=303)


def _detail_page(ctx: Ctx, app_id: int, code: int, message: str) -> Response:
    return render_detail(ctx, app_id, status_code=code, error=message)


@router.post("/applications/{app_id}/handover", response_model=None)
def post_handover(app_id: int, ctx: Staff, form: Form) -> Response:
    return ctx.submit(form, lambda: casework.hand_over(
        ctx.session, ctx.principal, app_id, to_login=form.get("to", "")[:64], message=form.get("message", "")[:2000],
        at=ctx.now()), refusals=Refusals([
            (NotAColleague, 400, "引継ぎ先は、この申請の担当部署で審査を行う職員から選んでください。"),
            (NoteInvalid, 400, f"引継ぎメモは{casework.NOTE_MAX_CHARS}文字以内で入力してください。"),
            (NotPermitted, 403, _DENIED),
            (PermissionDenied, 403, _DENIED),
        ]), refused=lambda code, message: _detail_page(ctx, app_id, code, message),
        done=lambda _login: _back(app_id))


@router.post("/applications/{app_id}/notes", response_model=None)
def post_note(app_id: int, ctx: Staff, form: Form) -> Response:
    return ctx.submit(form, lambda: casework.add_note(
        ctx.session, ctx.principal, app_id, body=form.get("body", "")[:4000], at=ctx.now()),
        refusals=Refusals([(NoteInvalid, 400, f"メモは1〜{casework.NOTE_MAX_CHARS}文字で入力してください。"),
                           (PermissionDenied, 403, _DENIED)]),
        refused=lambda code, message: _detail_page(ctx, app_id, code, message),
        done=lambda _note: _back(app_id, "#notes"))


# --- print and PDF --------------------------------------------------------------------------------


def _print_context(ctx: Ctx, doc: printing.PrintDocument, *, pdf: bool) -> dict[str, Any]:
    today = jst_day(ctx.now())
    calendar = ctx.state.runtime.procedures.calendar
    return {"doc": doc, "d": doc.detail, "pdf": pdf, "left": business_days_left(doc.due_on, today, calendar),
            "notices": notices_for(ctx.session, [t.id for t in transition_rows(ctx, doc.detail)])}


def _print(ctx: Ctx, app_id: int, form: dict[str, str], kind: str) -> Response:
    version = parse_int(form.get("version_id"), 0) or None

    def make() -> printing.PrintDocument:
        return printing.print_document(ctx.session, ctx.principal, app_id, reason=form.get("reason", "")[:2000],
                                       at=ctx.now(), kind=kind, version_id=version)

    def done(doc: printing.PrintDocument) -> Response:
        if kind == "print":
            return ctx.page("print.html", **_print_context(ctx, doc, pdf=False))
        html = ctx.state.renderer.env.get_template("print.html").render(
            **ctx.context(**_print_context(ctx, doc, pdf=True)))
        data = printing.render_pdf(html, stylesheet=_PRINT_CSS)
        name = f"application-{doc.detail.version.receipt_number}.pdf"
        return Response(data, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    refusals = Refusals([(ReasonRequired, 400, "印刷・PDF出力の処理事由を入力してください。"),
                         (NotFound, 404, "申請が見つかりません。")])
    return ctx.submit(form, make, refusals=refusals,
                      refused=lambda code, message: (_detail_page(ctx, app_id, code, message) if code == 400
                                                     else ctx.page("error.html", code, status=code, message=message)),
                      done=done)


@router.post("/applications/{app_id}/print", response_model=None)
def post_print(app_id: int, ctx: Staff, form: Form) -> Response:
    """The print view (the browser prints it with the print stylesheet); logged with the 処理事由."""
    return _print(ctx, app_id, form, "print")


@router.post("/applications/{app_id}/pdf", response_model=None)
def post_pdf(app_id: int, ctx: Staff, form: Form) -> Response:
    """The same view as PDF (WeasyPrint), as a download; logged with the 処理事由."""
    return _print(ctx, app_id, form, "pdf")
