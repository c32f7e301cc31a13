"""The two transports against real servers and a real folder: STARTTLS, implicit TLS, AUTH, refusals,
and the ``.eml`` folder (the embedded default)."""

from __future__ import annotations

import os
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from intake.mail.errors import PermanentTransportError, TransientTransportError
from intake.mail.transport import EmlDirTransport, SmtpTransport, make_transport
from intake.settings import IntakeSettings, MailSettings
from tests.support.servers import free_port
from tests.support.smtp import smtp_server, tls_files

MESSAGE = (b"From: shinsei-intake@ward.example.lg.jp\r\nTo: hoiku@ward.example.lg.jp\r\n"
           b"Subject: =?utf-8?b?5pel5qyh5Lu25pWw?=\r\nMessage-ID: <daily-20261124-hoiku@intake.example>\r\n"
           b"\r\nbody\r\n")
MID = "<daily-20261124-hoiku@intake.example>"
SEND = {"data": MESSAGE, "sender": "shinsei-intake@ward.example.lg.jp", "recipients": ["hoiku@ward.example.lg.jp"],
        "message_id": MID}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tls_files(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tls_files(tmp_path_factory.mktemp("other-ca"))[0]


def test_starttls_with_auth(tls: tuple[Path, Path]) -> None:
    with smtp_server(security="starttls", tls=tls, user=("intake", "s3cret")) as sink:
        SmtpTransport(host="localhost", port=sink.port, security="starttls", username="intake", password="s3cret",  # noqa: S106
                      ca_file=tls[0], timeout=10).send(**SEND)
    (received,) = sink.received
    assert (received.tls, received.authenticated_as) == (True, "intake")
    assert received.data == MESSAGE


def test_implicit_tls(tls: tuple[Path, Path]) -> None:
    with smtp_server(security="tls", tls=tls) as sink:
        transport = SmtpTransport(host="127.0.0.1", port=sink.port, security="tls", ca_file=tls[0], timeout=10)
        result = transport.send(**SEND)
    assert result.refused == 0
    assert [r.tls for r in sink.received] == [True]


def test_wrong_password_is_a_permanent_refusal(tls: tuple[Path, Path]) -> None:
    with (smtp_server(security="starttls", tls=tls, user=("intake", "s3cret")) as sink,
          pytest.raises(PermanentTransportError) as info):
        SmtpTransport(host="localhost", port=sink.port, username="intake", password="wrong",  # noqa: S106
                      ca_file=tls[0], timeout=10).send(**SEND)
    assert info.value.code == "SMTP_AUTH"
    assert "wrong" not in str(info.value)
    assert sink.received == []


def test_starttls_is_never_skipped() -> None:
    """A server that does not offer STARTTLS gets nothing — no fall-back to plain text."""
    with smtp_server() as sink, pytest.raises(PermanentTransportError) as info:
        SmtpTransport(host="127.0.0.1", port=sink.port, security="starttls", timeout=10).send(**SEND)
    assert info.value.code == "SMTP_NO_STARTTLS"
    assert sink.received == []


def test_an_untrusted_certificate_is_refused(tls: tuple[Path, Path], other_ca: Path) -> None:
    with smtp_server(security="tls", tls=tls) as sink, pytest.raises(PermanentTransportError) as info:
        SmtpTransport(host="127.0.0.1", port=sink.port, security="tls", ca_file=other_ca, timeout=10).send(**SEND)
    assert info.value.code == "TLS_VERIFY"
    assert sink.received == []


def test_nobody_listening_is_transient() -> None:
    with pytest.raises(TransientTransportError) as info:
        SmtpTransport(host="127.0.0.1", port=free_port(), security="none", timeout=5).send(**SEND)
    assert info.value.code == "CONNECT_ERROR"


def test_smtp_4xx_and_5xx() -> None:
    with smtp_server() as sink:
        transport = SmtpTransport(host="127.0.0.1", port=sink.port, security="none", timeout=10)
        sink.faults = ["451", "550"]
        with pytest.raises(TransientTransportError) as temporary:
            transport.send(**SEND)
        with pytest.raises(PermanentTransportError) as refused:
            transport.send(**SEND)
        transport.send(**SEND)
    assert (temporary.value.code, temporary.value.smtp_code) == ("SMTP_451", 451)
    assert (refused.value.code, refused.value.smtp_code) == ("SMTP_550", 550)
    assert len(sink.received) == 1


def test_lost_reply_is_transient() -> None:
    with smtp_server() as sink:
        sink.faults = ["accept-then-drop"]
        with pytest.raises(TransientTransportError) as info:
            SmtpTransport(host="127.0.0.1", port=sink.port, security="none", timeout=10).send(**SEND)
    assert info.value.code == "SMTP_DISCONNECTED"
    assert len(sink.received) == 1  # the server has it: only a Message-ID tells the repeat


@pytest.fixture
def eml_dir(tmp_path: Path) -> Path:
    return tmp_path / "var" / "mail"


def test_eml_folder_is_written_atomically_and_replaced_identically(eml_dir: Path) -> None:
    transport = EmlDirTransport(eml_dir)
    result = transport.send(**SEND)
    final = eml_dir / "daily-20261124-hoiku.eml"
    assert result.where == str(final)
    assert final.read_bytes() == MESSAGE
    assert os.stat(final).st_mode & 0o777 == 0o640
    transport.send(**SEND)  # a resend after a crash: same name, same bytes
    assert sorted(p.name for p in eml_dir.iterdir()) == ["daily-20261124-hoiku.eml"]  # no temp files left
    msg = message_from_bytes(final.read_bytes(), policy=policy.default)
    assert str(msg["Subject"]) == "日次件数"


def test_eml_folder_that_cannot_be_written_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TransientTransportError) as info:
        EmlDirTransport(blocker / "mail").send(**SEND)
    assert info.value.code == "FILE_WRITE"


def test_the_embedded_default_is_the_eml_folder(tmp_path: Path) -> None:
    transport = make_transport(IntakeSettings(var_dir=tmp_path / "var"))
    assert isinstance(transport, EmlDirTransport)
    assert transport.directory == tmp_path / "var" / "mail"
    smtp = make_transport(IntakeSettings(var_dir=tmp_path, mail=MailSettings(
        transport="smtp", smtp_host="mail.ward.example", smtp_security="tls")))
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.host, smtp.port, smtp.security) == ("mail.ward.example", 465, "tls")
