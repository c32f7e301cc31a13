"""A real SMTP server in the test process (aiosmtpd), with the faults the daily-mail tests need.

``smtp_server()`` yields an :class:`SmtpSink` listening on a free loopback port; every accepted
message is kept (envelope and raw bytes, in arrival order). Optional: STARTTLS or implicit TLS with a
throw-away certificate for ``localhost`` / ``127.0.0.1`` (``tls_files`` makes it), AUTH PLAIN/LOGIN
with one user, and scripted faults per DATA command:

- ``"accept-then-drop"`` — the message is accepted and kept, then the connection is closed before
  the ``250`` reply: the client cannot know (the ambiguous failure of pitfalls.md);
- ``"451"`` / ``"550"`` — a temporary / permanent refusal; nothing is kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port

__all__ = ["Fault", "Received", "SmtpSink", "smtp_server", "tls_files"]

Fault = Literal["accept-then-drop", "451", "550"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    authenticated_as: str | None
    tls: bool

    def parsed(self) -> EmailMessage:
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def message_id(self) -> str:
        return str(self.parsed()["Message-ID"])


@dataclass
class SmtpSink:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    #: faults to apply to the next DATA commands, in order (consumed one per DATA)
    faults: list[Fault] = field(default_factory=list)
    data_commands: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.data_commands += 1
            fault = self.faults.pop(0) if self.faults else None
        if fault == "451":
            return "451 4.3.0 try again later"
        if fault == "550":
            return "550 5.7.1 refused"
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        with self._lock:
            self.received.append(Received(
                mail_from=str(envelope.mail_from), rcpt_tos=tuple(envelope.rcpt_tos), data=content,
                authenticated_as=(session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword)
                                  else None),
                # STARTTLS sets session.ssl; implicit TLS shows on the transport
                tls=session.ssl is not None or (server.transport is not None
                                                and server.transport.get_extra_info("ssl_object") is not None),
            ))
        if fault == "accept-then-drop":
            assert server.transport is not None
            server.transport.abort()  # stored, but the client never sees the 250
        return "250 2.0.0 OK queued"

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [r.parsed() for r in self.received]

    def message_ids(self) -> list[str]:
        with self._lock:
            return [r.message_id for r in self.received]


def tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (also its own CA) for ``localhost`` and ``127.0.0.1``: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextlib.contextmanager
def smtp_server(
    *, security: Literal["none", "starttls", "tls"] = "none", tls: tuple[Path, Path] | None = None,
    user: tuple[str, str] | None = None,
) -> Iterator[SmtpSink]:
    """Run an aiosmtpd server until the block ends. ``user`` = (login, password) requires AUTH."""
    port = free_port()
    sink = SmtpSink("127.0.0.1", port)
    kwargs: dict[str, Any] = {}
    context = None
    if security != "none":
        assert tls is not None, "TLS needs tls_files()"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, tls))
    if security == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if user is not None:
        login, password = user

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login == login.encode()
                  and auth_data.password == password.encode())
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=security != "none")
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10,
                            ssl_context=context if security == "tls" else None, **kwargs)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
