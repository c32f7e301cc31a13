"""The relay keeps its mutual-TLS connection to the intake: one handshake per connection, not per package.

Issue 19 asked for TLS session reuse between relay and intake. What the relay does instead is keep the
connection itself (httpx's pool; uvicorn keeps an idle connection 5 s): packages forwarded one after
another go over the connection already open, so the full handshake — two certificate paths, the
key exchange — is paid once, not per package. A change that broke that (a client per package, a
``Connection: close``) would cost a handshake per package without failing anything else; this
counts the connections the intake saw, it times nothing.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from dmz_relay.forwarder import IntakeClient, build_intake_http
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from tests.conftest import PackageFactory, World
from tests.dmz_relay.conftest import Sleeps, count_deliveries, relay_settings
from tests.support.servers import serve_in_thread
from tests.support.tlscerts import RelayIntakeTls, relay_intake_tls


@pytest.fixture
def pki(tmp_path_factory: pytest.TempPathFactory) -> RelayIntakeTls:
    return relay_intake_tls(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def counted_intake(intake_engine: Engine, intake_runtime: Runtime, pki: RelayIntakeTls) -> Iterator[tuple[str, set]]:
    """The intake's machine API over mutual TLS, as ``intake serve`` runs it, and the set of the
    client ports (connections) its requests came on."""
    settings = intake_runtime.settings.model_copy(update={"client_auth": "dedicated-ca"})
    app = create_intake_app(replace(intake_runtime, settings=settings), make_session_factory(intake_engine))
    connections: set[int] = set()

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/deliveries":
            connections.add(scope["client"][1])
        await app(scope, receive, send)

    with serve_in_thread(counting, ssl_certfile=str(pki.server.cert), ssl_keyfile=str(pki.server.key),
                         ssl_ca_certs=str(pki.relay_ca.cert), ssl_cert_reqs=ssl.CERT_REQUIRED,
                         loop="tlsreload.alerting:listener_loop") as url:
        yield url, connections


def test_packages_forwarded_in_a_row_share_one_connection(
    world: World, tmp_path: Path, pki: RelayIntakeTls, counted_intake: tuple[str, set], intake_engine: Engine,
    make_package: PackageFactory, spec: ApplicationSpec, sleeps: Sleeps,
) -> None:
    url, connections = counted_intake
    settings = relay_settings(world, tmp_path, url, intake_ca=pki.server_ca.cert, client_cert=pki.relay.cert,
                              client_key=pki.relay.key)
    packages = [make_package(spec=replace(spec, receipt_number=f"20261125-{i:010d}")) for i in range(1, 11)]
    with build_intake_http(settings) as http:
        client = IntakeClient(http, sleep=sleeps)
        receipts = [client.deliver(body) for body in packages]
    assert len({r.delivery_id for r in receipts}) == len(packages)  # each stored, for real
    assert count_deliveries(intake_engine) == len(packages)
    assert len(connections) == 1, connections  # one handshake for ten packages
