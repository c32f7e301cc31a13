"""The event loop for TLS listeners that refuse client certificates: the refusal says why on the wire.

Shared by the intake's listeners (the relay's client certificate, ``intake serve``) and the relay's
push API (the LGWAN terminals' certificates, ``dmz_relay serve``); both run on :func:`listener_loop`.

CPython issue 98078 (https://github.com/python/cpython/issues/98078): when a server-side TLS
handshake fails, asyncio's TLS transport closes the connection without sending the fatal alert
OpenSSL wrote for it (``unknown_ca``, ``certificate_required``, …). Under TLS 1.3 the client has
finished its side of the handshake before the server checks its certificate, so the client sees only
a closed connection after sending its request — the same as a server that crashed mid-request — and
retries what will never work. :class:`_AlertingSSLProtocol` writes the alert out before the close.

:func:`tls_refusal` is the client's side: the TLS error by which a side refused the handshake (the
alert the server sent, or a server certificate this client refused) in a transport error's cause
chain, ``None`` for a connection that only ended — also where ``ssl`` reports that as an error (a
server that closed mid-handshake while restarting: ``SSLEOFError``), which is worth another attempt.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import sys
from asyncio import selector_events, sslproto
from typing import Any

__all__ = ["alert_fix_applies", "listener_loop", "tls_refusal"]

_log = logging.getLogger(__name__)


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, flushing the fatal alert when a server-side handshake fails.

    When the handshake raises ``ssl.SSLError``, ``SSLProtocol._do_handshake`` goes straight to
    ``_on_handshake_complete`` → ``_fatal_error`` → ``transport._force_close`` without writing out what
    OpenSSL left in the outgoing memory BIO: the alert that says why. Writing the BIO out first is what
    the upstream fix does on this path (python/cpython PR 153620); on a Python that flushes it itself
    the BIO is already empty and this writes nothing. docs/decisions.md says when to remove it.
    """

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None and self._server_side and self._transport is not None:
            # The socket transport sends it at once when its buffer is empty, as it is during a handshake;
            # what it had to buffer would be dropped by the force-close that follows. (A private method:
            # not in typeshed.)
            self._process_outgoing()  # type: ignore[attr-defined]
        super()._on_handshake_complete(handshake_exc)


class _AlertingEventLoop(asyncio.SelectorEventLoop):
    """``asyncio.SelectorEventLoop`` whose TLS connections use :class:`_AlertingSSLProtocol`."""

    def _make_ssl_transport(self, rawsock: Any, protocol: Any, sslcontext: Any, waiter: Any = None, *,
                            server_side: bool = False, server_hostname: Any = None, extra: Any = None,
                            server: Any = None, ssl_handshake_timeout: Any = None,
                            ssl_shutdown_timeout: Any = None) -> Any:
        # The body of SelectorEventLoop._make_ssl_transport (CPython 3.11.7) with the protocol swapped, and
        # the check that 3.12+ make first in theirs (no live transport on this socket already).
        self._ensure_fd_no_transport(rawsock)  # type: ignore[attr-defined]  # private: not in typeshed
        ssl_protocol = _AlertingSSLProtocol(self, protocol, sslcontext, waiter, server_side, server_hostname,
                                            ssl_handshake_timeout=ssl_handshake_timeout,
                                            ssl_shutdown_timeout=ssl_shutdown_timeout)
        transport = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]  # private: not in typeshed
        transport(self, rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport


def alert_fix_applies() -> bool:
    """Whether this Python's asyncio is the one :class:`_AlertingSSLProtocol` was written against (CPython's
    ``SSLProtocol`` of 3.11+, with the private methods it calls); otherwise the stock loop is used."""
    return (sys.implementation.name == "cpython" and sys.version_info >= (3, 11)
            and all(hasattr(sslproto.SSLProtocol, name)
                    for name in ("_on_handshake_complete", "_process_outgoing"))
            and hasattr(selector_events, "_SelectorSocketTransport")
            and hasattr(selector_events.BaseSelectorEventLoop, "_ensure_fd_no_transport"))


def listener_loop() -> asyncio.AbstractEventLoop:
    """The event loop TLS listeners run on (``asyncio.Runner(loop_factory=listener_loop)``, or uvicorn's
    ``loop="tlsreload.alerting:listener_loop"``)."""
    if alert_fix_applies():
        return _AlertingEventLoop()
    _log.warning("this Python's asyncio is not the one the TLS alert fix was written for (CPython issue 98078): "
                 "a refused client certificate may reach the client as a bare close, read as the server unavailable")
    return asyncio.SelectorEventLoop()


#: OpenSSL's reasons that mean a side refused the handshake — the peer's alert about this side's
#: certificate or protocol, or this side finding the peer's protocol wrong (``https://`` to a plain
#: port: ``WRONG_VERSION_NUMBER``). Anything else ``ssl`` raises — a connection that ended
#: (``SSLEOFError``), a record that failed its check after the request was sent — is no refusal:
#: it is retried like any broken connection, and the request may have arrived.
_REFUSED = re.compile(r"CERTIFICATE|UNKNOWN_CA|HANDSHAKE_FAILURE|PROTOCOL_VERSION|WRONG_VERSION_NUMBER"
                      r"|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS_AVAILABLE|INSUFFICIENT_SECURITY|ACCESS_DENIED"
                      r"|UNRECOGNIZED_NAME|NO_SHARED_CIPHER|NO_CIPHERS_AVAILABLE")


def tls_refusal(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error in ``exc``'s cause chain by which a side refused the handshake (the alert the
    server sent, or a server certificate or protocol this client refused), or ``None``: no TLS error,
    or one that only ended the connection."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        if isinstance(seen, ssl.SSLError):
            return seen if _REFUSED.search(seen.reason or "") else None
        seen = seen.__cause__ or seen.__context__
    return None
