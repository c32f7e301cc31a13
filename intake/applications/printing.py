"""Print and PDF of an application (印刷・PDF): what a ward prints to process an online application
like a paper one.

:func:`print_document` gathers one version as a document — the form laid out by its sections with
dates in 和暦, the applicant as typed, 受付番号 and the portal's 到達日時, the signature result and the
基本4情報 comparison, the version and status history, the attachments listed — and writes one
access-log row (``application.print`` or ``application.pdf``) with the 処理事由 staff gave: a print
is a copy of personal data leaving the screen. My Numbers are never printed (they stay masked; the
reveal is its own logged step). Internal notes are not printed.

:func:`render_pdf` turns the print view's HTML into PDF with WeasyPrint (Debian's pango and Noto CJK
fonts). It fetches nothing: every URL in the document is refused, the stylesheet is handed in.
Services never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.applications.service import ApplicationDetail, application_detail
from intake.authz import Principal
from intake.errors import InvalidDate, ReasonRequired
from intake.wareki import format_with_western, parse_date
from signature.xmlparse import parse_xml

__all__ = ["FormRow", "FormSection", "PrintDocument", "form_sections", "print_document", "render_pdf"]

_ERA_PARTS = ("年号", "年", "月", "日")
_MY_NUMBER = "個人番号"


@dataclass(frozen=True)
class FormRow:
    label: str
    value: str


@dataclass(frozen=True)
class FormSection:
    title: str
    rows: tuple[FormRow, ...]


def _era_value(el: etree._Element) -> str | None:
    """``<生年月日><年号>平成</年号><年>15</年>…`` → ``平成15年8月2日（2003-08-02）``; ``""`` when empty;
    ``None`` when ``el`` is not an era group."""
    children = [c for c in el if isinstance(c.tag, str)]
    if [str(c.tag) for c in children] != list(_ERA_PARTS):
        return None
    era, year, month, day = ((c.text or "").strip() for c in children)
    if not (era and year and month and day):
        return ""
    typed = f"{era}{year}年{month}月{day}日"
    try:
        return format_with_western(parse_date(typed))
    except InvalidDate:
        return typed  # as the resident wrote it, even if it is no real day


def form_sections(form_xml: str) -> list[FormSection]:
    """The (masked) form as sections of rows, in document order: the top-level groups are the
    sections, nested groups prefix their labels, era date groups are one 和暦 row, 個人番号 is
    「（印刷しません）」."""
    root = parse_xml(form_xml.encode())
    sections: list[FormSection] = []
    loose: list[FormRow] = []

    def walk(el: etree._Element, prefix: list[str], rows: list[FormRow]) -> None:
        for child in el:
            if not isinstance(child.tag, str):
                continue
            tag = str(child.tag)
            era = _era_value(child)
            if era is not None:
                rows.append(FormRow(" / ".join([*prefix, tag]), era))
            elif len(child):
                walk(child, [*prefix, tag], rows)
            else:
                value = "（印刷しません）" if tag == _MY_NUMBER else (child.text or "").strip()
                rows.append(FormRow(" / ".join([*prefix, tag]), value))

    for child in root:
        if not isinstance(child.tag, str) or str(child.tag) in ("様式ID", "様式バージョン"):
            continue
        if len(child) and _era_value(child) is None:
            rows: list[FormRow] = []
            walk(child, [], rows)
            sections.append(FormSection(str(child.tag), tuple(rows)))
        else:
            era = _era_value(child)
            loose.append(FormRow(str(child.tag), era if era is not None else (child.text or "").strip()))
    if loose:
        sections.insert(0, FormSection("申請内容", tuple(loose)))
    return sections


@dataclass(frozen=True)
class PrintDocument:
    detail: ApplicationDetail
    sections: list[FormSection]
    printed_at: datetime
    printed_by: str
    reason: str
    kind: str  # print | pdf
    due_on: date | None


def print_document(session: Session, principal: Principal, application_id: int, *, reason: str, at: datetime,
                   kind: str = "print", version_id: int | None = None) -> PrintDocument:
    """One version (default: the current one) as a printable document; one access-log row
    ``application.<kind>`` with ``reason`` (a blank reason is :class:`ReasonRequired`)."""
    why = reason.strip()
    if not why:
        raise ReasonRequired()
    if kind not in ("print", "pdf"):
        raise ValueError("kind is print or pdf")
    detail = application_detail(session, principal, application_id, at=at, version_id=version_id)
    app = detail.app
    append_access(session, actor=principal.access_actor(), at=at, action=f"application.{kind}",
                  subject=f"application:{app.id}:version:{detail.version.id}", reason=why[:2000],
                  atena_number=app.atena_number)
    return PrintDocument(detail, form_sections(detail.version.form_xml), at, principal.login, why, kind, app.due_on)


def _refuse(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ValueError("the PDF of an application fetches nothing")


def render_pdf(html: str, *, stylesheet: Path) -> bytes:
    """The print view's HTML as PDF (A4, WeasyPrint). No URL is fetched."""
    from weasyprint import CSS, HTML  # imported here: only the PDF route needs pango loaded

    document = HTML(string=html, url_fetcher=_refuse, base_url=None)
    pdf = document.write_pdf(stylesheets=[CSS(filename=str(stylesheet), url_fetcher=_refuse)])
    if pdf is None:  # pragma: no cover - write_pdf without a target always returns bytes
        raise RuntimeError("WeasyPrint returned no PDF")
    return bytes(pdf)
