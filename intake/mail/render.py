"""The daily mail as bytes: Japanese, ``multipart/alternative`` (text/plain + text/html), UTF-8 in
base64 (safe through 7-bit relays), RFC 2047 subject, CRLF line ends.

The result is a pure function of the :class:`~intake.mail.counting.Report` and the configuration:
the ``Message-ID`` is ``<daily-YYYYMMDD-<department>@<domain>>``, the MIME boundary is derived from it
and ``Date`` is the report's ``as_of``. The sent-log keeps these bytes, so a resend is the same mail.

Staff-UI links (``staff_ui_base_url``; none when it is not set) use the staff UI's own list filters
(the UI scopes every list to the reader's departments, so no department parameter is needed):

- not yet reviewed: ``{base}/applications?queue=1`` (``&procedure=<手続ID>`` for one procedure);
- waiting for 宛名番号: ``{base}/applications?linkage=unresolved``;
- signature errors: ``{base}/applications?sigerr=1``;
- failed forwards: the dashboard ``{base}/`` (its 失敗した連携 panel).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2

from intake.mail.config import Department, MailConfig
from intake.mail.counting import Report
from intake.wareki import format_date

__all__ = ["STATUS_KEYS", "ComposedMail", "compose", "message_id_for", "preview_text"]

#: Open-work kinds: (field of OpenWork, the staff UI's list filter (None: the dashboard), Japanese label).
STATUS_KEYS: tuple[tuple[str, dict[str, str] | None, str], ...] = (
    ("unreviewed", {"queue": "1"}, "未審査"),
    ("unlinked", {"linkage": "unresolved"}, "宛名番号待ち"),
    ("signature_errors", {"sigerr": "1"}, "署名検証エラー"),
    ("failed_forwards", None, "業務システムへの転送失敗"),
    ("held", {"held": "1"}, "本人確認要（署名者が申請者と確認できない版）"),
    ("overdue", {"overdue": "1", "sort": "due"}, "処理期限（標準処理期間）超過"),
)
_WEEKDAYS = "月火水木金土日"
_BAR_COLOR = "#1f5fa8"
_TEXT_BAR_WIDTH = 20

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)


@dataclass(frozen=True)
class ComposedMail:
    day: date
    department: str
    message_id: str
    subject: str
    recipients: tuple[str, ...]
    text: str
    html: str
    data: bytes  # the complete message as sent
    total: int  # the day's applications
    first_day: date | None = None  # the first day covered (None: ``day`` alone)


def message_id_for(day: date, department: Department | str, domain: str) -> str:
    dept = department.id if isinstance(department, Department) else department
    return f"<daily-{day:%Y%m%d}-{dept}@{domain}>"


def jp_date(d: date, *, year: bool = True, wareki: bool = False) -> str:
    """``2026年11月24日（火）``, or in 和暦 ``令和8年11月24日（火）`` (:mod:`intake.wareki`)."""
    if wareki and year:
        return format_date(d, weekday=True)
    text = f"{d.year}年{d.month}月{d.day}日" if year else f"{d.month}月{d.day}日"
    return f"{text}（{_WEEKDAYS[d.weekday()]}）"


def period_label(first: date, last: date, *, wareki: bool = False) -> str:
    """One day, or ``11月20日（金）〜11月22日（日）`` (the year once, on the first day)."""
    if first == last:
        return jp_date(last, wareki=wareki)
    return f"{jp_date(first, wareki=wareki)}〜{jp_date(last, year=first.year != last.year, wareki=wareki)}"


def compose(report: Report, config: MailConfig) -> ComposedMail:
    department = report.department
    message_id = message_id_for(report.day, department, config.message_id_domain)
    total = report.day_total.total
    subject = (f"【電子申請 日次件数】{period_label(report.period_start, report.day, wareki=config.wareki)} "
               f"{total}件 {department.name}")
    context = _context(report, config)
    text = _env.get_template("daily.txt.j2").render(context)
    html = _env.get_template("daily.html.j2").render(context)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=config.sender_name, addr_spec=config.sender)
    msg["To"] = ", ".join(department.recipients)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(report.as_of)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg["Content-Language"] = "ja"
    msg["X-Shinsei-Mail"] = f"daily-count; day={report.day.isoformat()}; department={department.id}"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    # A fixed boundary (base64 lines never start with "--") keeps the bytes a function of the report.
    msg.set_boundary(f"=_daily-{report.day:%Y%m%d}-{department.id}")
    return ComposedMail(day=report.day, department=department.id, message_id=message_id, subject=subject,
                        recipients=department.recipients, text=text, html=html, data=msg.as_bytes(policy=SMTP),
                        total=total, first_day=report.first_day)


def preview_text(mail: ComposedMail | bytes) -> str:
    """Headers and the text/plain part, for a person (``mail send --dry-run``)."""
    if isinstance(mail, ComposedMail):
        return (f"Message-ID: {mail.message_id}\nTo: {', '.join(mail.recipients)}\nSubject: {mail.subject}\n\n"
                f"{mail.text}")
    msg = message_from_bytes(mail, policy=default_policy)
    body = msg.get_body(preferencelist=("plain",)) if isinstance(msg, EmailMessage) else None
    text = str(body.get_content()).replace("\r\n", "\n") if isinstance(body, EmailMessage) else ""
    return f"Message-ID: {msg['Message-ID']}\nTo: {msg['To']}\nSubject: {msg['Subject']}\n\n{text}"


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _link(config: MailConfig, view: dict[str, str] | None, procedure: str | None = None) -> str | None:
    if config.staff_ui_base_url is None:
        return None
    if view is None:
        return f"{config.staff_ui_base_url}/"
    query = {"procedure": procedure, **view} if procedure else view
    return f"{config.staff_ui_base_url}/applications?{urlencode(query)}"


def _context(report: Report, config: MailConfig) -> dict[str, Any]:
    peak = max((n for _, n in report.series), default=0)
    series = [
        {"label": jp_date(d, year=False), "count": n, "percent": (max(1, round(100 * n / peak)) if n else 0),
         "text_bar": "■" * (max(1, round(_TEXT_BAR_WIDTH * n / peak)) if n else 0)}
        for d, n in report.series
    ]
    open_rows = [
        {"key": key, "label": label, "count": getattr(report.open_total, key),
         "url": _link(config, view),
         "by_procedure": [
             {"name": line.name, "count": getattr(line.open, key),
              "url": _link(config, view, line.procedure_id) if line.procedure_id else None}
             for line in report.lines if getattr(line.open, key)
         ]}
        for key, view, label in STATUS_KEYS
    ]
    wareki = config.wareki
    closed = ([(jp_date(d, year=False), reason) for d in _days(report.period_start, report.day)
               if (reason := config.calendar.closed_reason(d))] if config.calendar is not None else [])
    late = [{"day": jp_date(a.day, wareki=wareki), "name": a.name, "count": a.counts.total,
             "url": _link(config, {"from": a.day.isoformat(), "to": a.day.isoformat()}, a.procedure_id)}
            for a in report.late]
    return {
        "report": report,
        "department": report.department,
        "day_label": period_label(report.period_start, report.day, wareki=wareki),
        "multi_day": report.period_start != report.day,
        "closed_days": closed,
        "late": late,
        "processed_total": report.processed_total,
        "week_label": f"{jp_date(report.week_start, year=False)}〜{jp_date(report.day, year=False)}",
        "month_label": f"{report.day.month}月1日〜{jp_date(report.day, year=False)}",
        "as_of_label": f"{jp_date(report.as_of.date(), wareki=wareki)} {report.as_of:%H:%M}",
        "lines": report.lines,
        "day_total": report.day_total,
        "series": series,
        "open_rows": open_rows,
        "has_links": config.staff_ui_base_url is not None,
        "bar_color": _BAR_COLOR,
    }
