"""Small TLS PKIs for mutual-TLS tests: a CA, a server certificate for 127.0.0.1, client certificates."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["PROBE_REQUEST", "RelayIntakeTls", "TlsFiles", "issue", "make_ca", "relay_intake_tls", "tls_exchange"]

_NOW = datetime(2026, 1, 1, tzinfo=UTC)  # fixed: certificates valid 2026-01-01 .. 2036-01-01


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the certificate, hex


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> TlsFiles:
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return TlsFiles(directory / f"{stem}.pem", directory / f"{stem}.key", cert.fingerprint(hashes.SHA256()).hex())


def make_ca(directory: Path, name: str) -> tuple[TlsFiles, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_NOW).not_valid_after(_NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _write(directory, name, cert, key), cert, key


def issue(directory: Path, stem: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *,
          server: bool) -> TlsFiles:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(stem)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_NOW).not_valid_after(_NOW + timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                   critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(
            ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class RelayIntakeTls:
    """The mutual-TLS set-up between relay and intake: the intake's server certificate (from its own
    CA), a relay-only client CA with the relay's certificate, and a rogue client from another CA."""

    server_ca: TlsFiles
    server: TlsFiles
    relay_ca: TlsFiles
    relay: TlsFiles
    rogue: TlsFiles


def relay_intake_tls(directory: Path) -> RelayIntakeTls:
    server_ca_files, server_ca_cert, server_ca_key = make_ca(directory, "intake-server-ca")
    relay_ca_files, relay_ca_cert, relay_ca_key = make_ca(directory, "relay-client-ca")
    _, rogue_cert, rogue_key = make_ca(directory, "rogue-ca")
    return RelayIntakeTls(
        server_ca_files, issue(directory, "intake", (server_ca_cert, server_ca_key), server=True),
        relay_ca_files, issue(directory, "relay", (relay_ca_cert, relay_ca_key), server=False),
        issue(directory, "rogue-client", (rogue_cert, rogue_key), server=False),
    )


PROBE_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def tls_exchange(port: int, server_ca: TlsFiles, client: TlsFiles | None, request: bytes = PROBE_REQUEST) -> bytes:
    """Handshake (TLS 1.3 only) with ``client``'s certificate, send ``request``, read until the server
    closes. Returns what was read; raises what the ``ssl`` module raises (an alert: ``ssl.SSLError``).
    A raw ``ssl`` socket, as httpx uses it: the test sees exactly what arrived on the wire."""
    ctx = ssl.create_default_context(cafile=str(server_ca.cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        # Under TLS 1.3 the client's handshake ends before the server has checked its certificate:
        # the refusal can only arrive on the first read.
        assert tls.version() == "TLSv1.3"
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer
