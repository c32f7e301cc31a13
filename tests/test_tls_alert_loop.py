"""The listener loop both zones' TLS listeners run on (tlsreload/alerting.py), and the bug it works around.

A listener that requires client certificates from its CA refuses another CA's certificate either way;
the difference is what the client reads. On asyncio's stock loop (CPython issue 98078) it reads only
an end of file, which a client must take for a server that went away; on :func:`listener_loop` it
reads the fatal alert, which says why. The services' own listeners are tested as processes:
tests/intake/test_serving_tls_alert.py (the intake) and tests/dmz_relay/test_push_tls_alert.py (the
relay's push API).

The pin test fails once this Python sends the alert itself: then the workaround is to be removed
(docs/decisions.md says how).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.servers import free_port, serve_in_thread
from tests.support.tlscerts import RelayIntakeTls, relay_intake_tls, tls_exchange
from tests.support.tlsfaults import breaking_the_answer, cause_chain, closing_after_hello
from tlsreload import alerting

APP = Starlette(routes=[Route("/healthz", lambda _request: PlainTextResponse("ok"))])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RelayIntakeTls:
    return relay_intake_tls(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def listening(pki: RelayIntakeTls, loop: str) -> Iterator[int]:
    with serve_in_thread(APP, loop=loop, ssl_certfile=str(pki.server.cert), ssl_keyfile=str(pki.server.key),
                         ssl_ca_certs=str(pki.relay_ca.cert), ssl_cert_reqs=ssl.CERT_REQUIRED) as url:
        yield int(url.rsplit(":", 1)[1])


def test_asyncio_on_this_python_still_drops_the_alert(pki: RelayIntakeTls) -> None:
    """Why tlsreload/alerting.py exists: uvicorn on asyncio's own loop closes without the alert. If this
    fails, this Python sends it itself (CPython issue 98078 fixed here): remove the workaround as
    docs/decisions.md says."""
    with listening(pki, "asyncio") as port:
        assert tls_exchange(port, pki.server_ca, pki.relay).startswith(b"HTTP/1.1 200")  # the listener works …
        assert tls_exchange(port, pki.server_ca, pki.rogue) == b""  # … and refuses another CA's with a bare close


@pytest.mark.parametrize(("who", "alert"), [
    ("certificate-from-another-ca", "TLSV1_ALERT_UNKNOWN_CA"),
    ("no-certificate", "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
])
def test_the_listener_loop_sends_the_alert(pki: RelayIntakeTls, who: str, alert: str) -> None:
    with listening(pki, "tlsreload.alerting:listener_loop") as port:
        assert tls_exchange(port, pki.server_ca, pki.relay).startswith(b"HTTP/1.1 200")
        with pytest.raises(ssl.SSLError) as refused:
            tls_exchange(port, pki.server_ca, pki.rogue if who == "certificate-from-another-ca" else None)
        assert refused.value.reason == alert


def test_an_asyncio_the_fix_was_not_written_for_gets_the_stock_loop_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    assert alerting.alert_fix_applies()  # this Python is the one it was written for; another is simulated
    monkeypatch.setattr(alerting, "alert_fix_applies", lambda: False)
    with caplog.at_level(logging.WARNING, logger="tlsreload.alerting"):
        loop = alerting.listener_loop()
    try:
        assert type(loop) is asyncio.SelectorEventLoop
    finally:
        loop.close()
    assert any("CPython issue 98078" in r.getMessage() for r in caplog.records)


def test_a_client_finds_the_tls_error_in_what_httpx_raises(pki: RelayIntakeTls) -> None:
    """``tls_refusal`` is how the relay and the terminal client tell a refused handshake (do not retry)
    from a disconnect (retry): httpx wraps the ``ssl.SSLError`` in its own transport errors."""
    with listening(pki, "tlsreload.alerting:listener_loop") as port:
        rogue = ssl.create_default_context(cafile=str(pki.server_ca.cert))
        rogue.minimum_version = ssl.TLSVersion.TLSv1_3
        rogue.load_cert_chain(str(pki.rogue.cert), str(pki.rogue.key))
        with pytest.raises(httpx.TransportError) as refused:
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=rogue, timeout=10)
        found = alerting.tls_refusal(refused.value)
        assert found is not None
        assert found.reason == "TLSV1_ALERT_UNKNOWN_CA"
        untrusting = ssl.create_default_context(cafile=str(pki.relay_ca.cert))  # not the server's CA
        with pytest.raises(httpx.TransportError) as untrusted:
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=untrusting, timeout=10)
        assert isinstance(alerting.tls_refusal(untrusted.value), ssl.SSLCertVerificationError)
    with pytest.raises(httpx.TransportError) as closed:  # nothing listens: no TLS error in the chain
        httpx.get(f"https://127.0.0.1:{free_port()}/healthz", timeout=2)
    assert alerting.tls_refusal(closed.value) is None


def test_a_server_that_closes_during_the_handshake_is_a_disconnect_not_a_refusal() -> None:
    """A server stopping or restarting can close a connection in the middle of its handshake. ``ssl``
    reports that as ``SSLEOFError``, an ``ssl.SSLError``; it must not stop the relay as misconfigured
    or keep the terminal from retrying."""
    with closing_after_hello() as port, pytest.raises(httpx.TransportError) as ended:
        httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=10)
    assert any(isinstance(e, ssl.SSLEOFError) for e in cause_chain(ended.value))  # what the check must see through
    assert alerting.tls_refusal(ended.value) is None


def test_a_record_that_fails_its_check_after_the_request_is_no_refusal(pki: RelayIntakeTls) -> None:
    """After the whole request was sent (and perhaps stored), the answer's record arrives corrupted — a
    faulty middlebox or card. ``ssl`` raises an ``SSLError`` (bad record MAC), but nobody refused
    anything: it is a broken connection, retried, and the request may have arrived."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    received: list[int] = []
    client = ssl.create_default_context(cafile=str(pki.server_ca.cert))
    with breaking_the_answer(context, received) as port, pytest.raises(httpx.TransportError) as broken:
        httpx.get(f"https://127.0.0.1:{port}/healthz", verify=client, timeout=10)
    assert received == [0]  # the request arrived whole
    assert any(isinstance(e, ssl.SSLError) for e in cause_chain(broken.value))  # what the check must see through
    assert alerting.tls_refusal(broken.value) is None


def test_https_to_a_plain_port_is_a_refusal(pki: RelayIntakeTls) -> None:
    """``https://`` to a listener that speaks plain HTTP is a configuration error (``WRONG_VERSION_NUMBER``),
    which waiting does not heal."""
    with serve_in_thread(APP) as url, pytest.raises(httpx.TransportError) as wrong:
        httpx.get(url.replace("http://", "https://") + "/healthz",
                  verify=ssl.create_default_context(cafile=str(pki.server_ca.cert)), timeout=10)
    refusal = alerting.tls_refusal(wrong.value)
    assert refusal is not None
    assert refusal.reason == "WRONG_VERSION_NUMBER"
