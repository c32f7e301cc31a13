"""The HTML part of a real daily mail, saved as an artifact and looked at in Chromium: a screenshot
that is not blank and shows the bar chart's colour.

Artifacts: ``<pytest tmp>/…/daily-mail.html`` and ``daily-mail.png`` (kept by pytest for the last
runs). Chromium is Debian's (``make install`` installs it); playwright's own browser is not used.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake.db import make_session_factory
from intake.jst import JST
from intake.mail.service import DailyMailer
from intake.models import Application
from intake.procedures import load_procedures
from tests.intake.conftest import Clock
from tests.support.dailymail import HOIKU, JIDOTEATE, add_application_event, mail_settings
from tests.support.smtp import SmtpSink, smtp_server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BAR = (0x1F, 0x5F, 0xA8)  # intake.mail.render._BAR_COLOR

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not installed at /usr/bin/chromium (make install does it)"),
    pytest.mark.usefixtures("chromium_watchdog"),
]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0)
    assert colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def test_html_mail_renders_in_chromium(
    engine: Engine, session: Session, tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    from playwright.sync_api import sync_playwright

    day = date(2026, 11, 24)
    for back, n in enumerate([4, 0, 2, 7, 1, 3, 5]):
        add_application_event(session, "新規申請", datetime.combine(day - timedelta(days=back), datetime.min.time(),
                                                                JST) + timedelta(hours=10), JIDOTEATE, n=n)
    add_application_event(session, "補正", datetime(2026, 11, 24, 16, tzinfo=JST), JIDOTEATE, n=2)
    add_application_event(session, "新規申請", datetime(2026, 11, 24, 16, tzinfo=JST), HOIKU, n=9)
    session.add(Application(first_receipt_number="r-1", procedure_id=JIDOTEATE, procedure_name="児童手当 認定請求",
                            created_at=clock.now, updated_at=clock.now))
    session.commit()
    settings = mail_settings(None, tmp_path, smtp)
    mailer = DailyMailer.from_settings(settings, load_procedures(settings.procedures_file),
                                       make_session_factory(engine), clock=clock)
    mailer.send(day, department="kodomo-katei")
    (received,) = smtp.received
    part = received.parsed().get_body(preferencelist=("html",))
    assert isinstance(part, EmailMessage)
    artifact = tmp_path / "daily-mail.html"
    artifact.write_text(str(part.get_content()), encoding="utf-8")
    assert "<img" not in artifact.read_text(encoding="utf-8")  # no external (or any) images
    shot = tmp_path / "daily-mail.png"

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 420, "height": 900}, offline=True,  # a phone-sized window, no network
        )
        try:
            page = browser.new_page()
            page.goto(artifact.as_uri())
            assert page.title() == "電子申請 日次件数 2026年11月24日（火）"
            bars = page.locator("td[bgcolor='#1f5fa8']")
            assert bars.count() == 6  # one bar per day with applications (one day had none)
            widths = [bars.nth(i).bounding_box() for i in range(6)]
            assert all(w is not None and w["width"] > 0 for w in widths)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    width, height, rows = read_png(shot.read_bytes())
    assert width == 420
    assert height >= 600
    assert shot.stat().st_size > 10_000
    pixels = {tuple(row[i:i + 3]) for row in rows[::4] for i in range(0, len(row) - 3, 12)}
    non_white = [px for px in pixels if px != (255, 255, 255)]
    assert len(non_white) > 50, "the screenshot is blank"
    assert BAR in pixels, "the bar chart is not drawn"
