"""Only the relay may deliver: mutual TLS with a relay-only CA (uvicorn), or a trusted front proxy."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from intake.api import create_app
from intake.db import make_session_factory
from intake.deliveries.service import expected_key
from intake.models import Delivery
from intake.runtime import Runtime
from tests.conftest import PackageFactory
from tests.support.servers import serve_in_thread
from tests.support.tlscerts import RelayIntakeTls, TlsFiles, relay_intake_tls

Pki = RelayIntakeTls


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return relay_intake_tls(tmp_path_factory.mktemp("tls"))


def client_context(pki: Pki, client: TlsFiles | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.server_ca.cert))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def delivered(engine: Engine) -> int:
    with make_session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(Delivery)) or 0)


@pytest.fixture
def mtls_url(engine: Engine, runtime: Runtime, pki: Pki) -> Iterator[str]:
    strict = replace(runtime, settings=runtime.settings.model_copy(update={"client_auth": "dedicated-ca"}))
    app = create_app(strict, make_session_factory(engine))
    with serve_in_thread(app, ssl_certfile=str(pki.server.cert), ssl_keyfile=str(pki.server.key),
                         ssl_ca_certs=str(pki.relay_ca.cert), ssl_cert_reqs=ssl.CERT_REQUIRED) as url:
        yield url


def _post(url: str, body: bytes, ctx: ssl.SSLContext) -> httpx.Response:
    with httpx.Client(verify=ctx, timeout=30) as c:
        return c.post(f"{url}/api/v1/deliveries", content=body,
                      headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})


def test_relay_certificate_is_accepted(mtls_url: str, pki: Pki, engine: Engine, make_package: PackageFactory) -> None:
    assert _post(mtls_url, make_package(), client_context(pki, pki.relay)).status_code == 201
    assert delivered(engine) == 1


@pytest.mark.parametrize("who", ["rogue", "none"])
def test_other_clients_fail_the_handshake(
    mtls_url: str, pki: Pki, engine: Engine, make_package: PackageFactory, who: str
) -> None:
    ctx = client_context(pki, pki.rogue if who == "rogue" else None)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        _post(mtls_url, make_package(), ctx)
    assert delivered(engine) == 0


def test_dedicated_ca_mode_refuses_plain_http(engine: Engine, runtime: Runtime, make_package: PackageFactory) -> None:
    strict = replace(runtime, settings=runtime.settings.model_copy(update={"client_auth": "dedicated-ca"}))
    body = make_package()
    with serve_in_thread(create_app(strict, make_session_factory(engine))) as url:
        response = httpx.post(f"{url}/api/v1/deliveries", content=body, timeout=30,
                              headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "CLIENT_CERT_REQUIRED"
    assert delivered(engine) == 0


@pytest.mark.parametrize(
    ("client_host", "fingerprint", "status"),
    [
        pytest.param("127.0.0.1", "relay", 201, id="trusted-proxy-relay-cert"),
        pytest.param("127.0.0.1", "rogue", 403, id="trusted-proxy-other-cert"),
        pytest.param("127.0.0.1", None, 403, id="trusted-proxy-no-header"),
        pytest.param("192.0.2.10", "relay", 403, id="header-from-untrusted-peer"),
    ],
)
def test_proxy_header_mode(
    engine: Engine, runtime: Runtime, pki: Pki, make_package: PackageFactory,
    client_host: str, fingerprint: str | None, status: int,
) -> None:
    settings = runtime.settings.model_copy(update={
        "client_auth": "proxy-header", "trusted_proxies": ["127.0.0.1"],
        "relay_client_fingerprints": [pki.relay.fingerprint]})
    app = create_app(replace(runtime, settings=settings), make_session_factory(engine))
    body = make_package()
    headers = {"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)}
    if fingerprint is not None:
        headers[settings.client_cert_header] = (pki.relay if fingerprint == "relay" else pki.rogue).fingerprint
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as c:
            return await c.post("/api/v1/deliveries", content=body, headers=headers)

    response = asyncio.run(send())
    assert response.status_code == status
    assert delivered(engine) == (1 if status == 201 else 0)


def test_settings_refuse_production_without_client_auth(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from intake.settings import IntakeSettings

    with pytest.raises(ValidationError, match="client_auth"):
        IntakeSettings(environment="production", database_url="sqlite:///x", jpki_roots=[tmp_path],
                       portal_roots=[tmp_path], my_number_keys={"k1": "A" * 44}, package_keys={"k2": "B" * 44},
                       my_number_active_key="k1", package_active_key="k2")
