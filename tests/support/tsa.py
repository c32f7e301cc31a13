"""A real RFC 3161 time-stamping authority for tests: ``openssl ts -reply`` behind a tiny HTTP
server on a free loopback port. Its CA and signing certificate are made here (EKU timeStamping,
critical); the tokens are OpenSSL's own, so the intake's client and verifier meet an independent
implementation."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LocalTsa", "local_tsa", "make_tsa_files"]

# The TSA signs with the real clock (it is an outside party): certificates valid far around it.
_FROM = datetime(2000, 1, 1, tzinfo=UTC)
_TO = datetime(2099, 1, 1, tzinfo=UTC)

_CONFIG = """[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {dir}/serial
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
certs = {dir}/tsa.pem
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tsa_files(directory: Path) -> Path:
    """A CA (``ca.pem``), the TSA's certificate and key, the openssl config; the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test TSA CA")).issuer_name(_name("test TSA CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(_FROM).not_valid_after(_TO)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("test TSA")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(_FROM).not_valid_after(_TO)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "tsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tsa.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (directory / "serial").write_text("01\n")
    config = directory / "tsa.cnf"
    config.write_text(_CONFIG.format(dir=directory))
    return config


@dataclass(frozen=True)
class LocalTsa:
    url: str
    ca_file: Path
    #: how many tokens it issued
    issued: list[int]


@contextlib.contextmanager
def local_tsa(directory: Path) -> Iterator[LocalTsa]:
    """Serve ``openssl ts -reply`` at ``http://127.0.0.1:<port>/tsa`` until the block ends."""
    config = make_tsa_files(directory)
    issued: list[int] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            query = self.rfile.read(length)
            with lock, tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "q.tsq").write_bytes(query)
                done = subprocess.run(["openssl", "ts", "-reply", "-config", str(config), "-queryfile",
                                       str(Path(tmp) / "q.tsq"), "-out", str(Path(tmp) / "r.tsr")],
                                      capture_output=True, timeout=30, check=False)
                answer = (Path(tmp) / "r.tsr").read_bytes() if done.returncode == 0 else b""
            if not answer:
                self.send_response(500)
                self.end_headers()
                return
            issued.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalTsa(f"http://127.0.0.1:{server.server_address[1]}/tsa", directory / "ca.pem", issued)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
