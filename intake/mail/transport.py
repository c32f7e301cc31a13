"""Handing a finished message over: to an SMTP server, or (the embedded default) to a folder of
``.eml`` files. One call is one attempt; retries are the caller's (:mod:`intake.mail.service`).

Both take the stored bytes as they are — never re-generated — and translate every smtplib, ssl and
OS error into :class:`~intake.mail.errors.TransientTransportError` (worth retrying) or
:class:`~intake.mail.errors.PermanentTransportError` (refused; retrying the same thing cannot help).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from intake.durable import publish_file
from intake.mail.errors import PermanentTransportError, TransientTransportError, TransportError
from intake.settings import IntakeSettings

__all__ = ["EmlDirTransport", "SendResult", "SmtpTransport", "Transport", "make_transport"]

_log = logging.getLogger(__name__)
_FILE_MODE = 0o640
_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True)
class SendResult:
    """Accepted. ``refused`` counts recipients the server refused while accepting the others."""

    refused: int = 0
    where: str = ""


class Transport(Protocol):
    name: str

    def send(self, *, data: bytes, sender: str, recipients: Sequence[str], message_id: str) -> SendResult:
        """Hand the message over once, or raise :class:`TransportError`."""
        ...


class EmlDirTransport:
    """``<directory>/<daily-YYYYMMDD-dept>.eml``, atomically: dot-named temp file in the same
    directory → fsync → ``os.replace`` → fsync the directory. A resend replaces the file with the
    same bytes. The directory is created (mode 0750) if missing. Nothing leaves the machine."""

    name = "eml"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, *, data: bytes, sender: str, recipients: Sequence[str], message_id: str) -> SendResult:
        name = message_id.strip("<>").partition("@")[0] + ".eml"
        final = self.directory / name
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
            publish_file(self.directory, name, data, mode=_FILE_MODE)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "OSError")
            raise TransientTransportError(f"cannot write the .eml file ({code})", code="FILE_WRITE") from exc
        return SendResult(where=str(final))


class SmtpTransport:
    """SMTP with STARTTLS (never falling back to plain text), implicit TLS or none; optional AUTH.
    TLS verifies the server against ``ca_file`` (or the system store when none is given) and its name."""

    name = "smtp"

    def __init__(
        self, *, host: str, port: int | None = None, security: Literal["starttls", "tls", "none"] = "starttls",
        username: str | None = None, password: str | None = None, ca_file: Path | None = None,
        timeout: float = 30.0, local_hostname: str | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host = host
        self.port = port or _DEFAULT_PORTS[security]
        self.security = security
        self.username = username
        self._password = password
        self.ca_file = ca_file
        self.timeout = timeout
        # socket.getfqdn() (smtplib's default) may wait on DNS: the host name is enough for EHLO.
        self.local_hostname = local_hostname or socket.gethostname()

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def send(self, *, data: bytes, sender: str, recipients: Sequence[str], message_id: str) -> SendResult:
        try:
            client = self._connect()
        except OSError as exc:  # smtplib's and ssl's errors are OSErrors too
            raise _translate(exc, "connect") from exc
        try:
            try:
                if self.security == "starttls":
                    client.ehlo()
                    if not client.has_extn("starttls"):
                        raise PermanentTransportError("the server does not offer STARTTLS", code="SMTP_NO_STARTTLS")
                    client.starttls(context=self._context())
                    client.ehlo()
                if self.username is not None and self._password is not None:
                    client.login(self.username, self._password)
                refused = client.sendmail(sender, list(recipients), data)
            except OSError as exc:
                raise _translate(exc, "send") from exc
            if refused:
                _log.warning("daily mail %s: the server refused %d of %d recipient(s)", message_id, len(refused),
                             len(recipients))
            return SendResult(refused=len(refused), where=f"{self.host}:{self.port}")
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()  # the message is accepted already: a failing QUIT changes nothing
            with contextlib.suppress(OSError):
                client.close()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout,
                                    context=self._context())
        return smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)


def _translate(exc: OSError, stage: str) -> TransportError:
    """smtplib / ssl / OS errors (all OSErrors) → our two kinds."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return PermanentTransportError("SMTP authentication failed", code="SMTP_AUTH", smtp_code=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentTransportError(f"the server does not support a needed extension ({exc})",
                                       code="SMTP_NOT_SUPPORTED")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        transient = bool(codes) and all(400 <= c < 500 for c in codes)
        cls = TransientTransportError if transient else PermanentTransportError
        first = codes[0] if codes else None
        return cls(f"all {len(codes)} recipient(s) refused", code=f"SMTP_{first}_RECIPIENTS", smtp_code=first)
    if isinstance(exc, smtplib.SMTPResponseException):
        cls = TransientTransportError if 400 <= exc.smtp_code < 500 else PermanentTransportError
        return cls(f"the server answered {exc.smtp_code} during {stage}", code=f"SMTP_{exc.smtp_code}",
                   smtp_code=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientTransportError(f"connection lost during {stage}", code="SMTP_DISCONNECTED")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentTransportError(f"the server's certificate did not verify ({exc.verify_message})",
                                       code="TLS_VERIFY")
    if isinstance(exc, ssl.SSLError):
        return TransientTransportError(f"TLS failed during {stage} ({exc.reason})", code="TLS_ERROR")
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransientTransportError(f"timed out during {stage}", code="TIMEOUT")
    if isinstance(exc, smtplib.SMTPException):
        return TransientTransportError(f"SMTP error during {stage} ({type(exc).__name__})", code="SMTP_ERROR")
    name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    return TransientTransportError(f"network error during {stage} ({name})", code="CONNECT_ERROR")


def make_transport(settings: IntakeSettings) -> Transport:
    """The transport the settings choose: ``eml`` (default, ``<var_dir>/mail``) or ``smtp``."""
    mail = settings.mail
    if mail.transport == "eml":
        if settings.environment == "production":
            _log.warning("the daily mail is written to files (%s), NOT sent: set mail.transport=smtp to e-mail it",
                         mail.eml_dir or settings.var_dir / "mail")
        return EmlDirTransport(mail.eml_dir or settings.var_dir / "mail")
    if mail.smtp_security == "none":
        _log.warning("the daily mail goes to %s WITHOUT TLS", mail.smtp_host)
    return SmtpTransport(
        host=mail.smtp_host, port=mail.smtp_port, security=mail.smtp_security, username=mail.smtp_username,
        password=mail.smtp_password.get_secret_value() if mail.smtp_password else None,
        ca_file=mail.smtp_ca_file, timeout=mail.smtp_timeout_seconds,
    )
