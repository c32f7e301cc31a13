"""malware.clamd against a real clamd (Debian's clamav-daemon with a tiny EICAR database), and
against a fake one for the protocol's failure cases."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import signal
import socket
import socketserver
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from malware import ClamdScanner, NullScanner, ScanLimitExceeded, Scanner, ScannerUnavailable, ScanVerdict
from tests.support.clamd import EICAR, ClamdInfo, clamd_daemon

CLEAN = ScanVerdict(infected=False, signature=None)
CANARY = "CANARY-山田太郎-123456789012".encode()


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdInfo]:
    with clamd_daemon(tmp_path_factory.mktemp("clamd")) as info:
        yield info


@pytest.fixture
def scanner(clamd: ClamdInfo) -> ClamdScanner:
    return ClamdScanner(clamd.socket_path, timeout=10.0)


def test_eicar_constant_is_the_standard_test_file() -> None:
    assert len(EICAR) == 68
    assert hashlib.md5(EICAR, usedforsecurity=False).hexdigest() == "44d88612fea8a8f36de82e1278abb02f"


def test_clamd_scanner_is_a_scanner(scanner: ClamdScanner) -> None:
    typed: Scanner = scanner  # checked by mypy where tests are type-checked; the Protocol's shape
    assert typed.ping() is True


def test_ping_and_version(scanner: ClamdScanner, clamd: ClamdInfo) -> None:
    assert scanner.ping() is True
    assert scanner.version().startswith("ClamAV 1.")
    assert clamd.start_seconds < 30


def test_clean_file_is_ok(scanner: ClamdScanner) -> None:
    assert scanner.scan("申請書.pdf", b"%PDF-1.7\n% a perfectly boring attachment\n%%EOF\n") == CLEAN


def test_empty_file_is_ok(scanner: ClamdScanner) -> None:
    assert scanner.scan("empty.txt", b"") == CLEAN


def test_eicar_is_infected_with_the_signature_name(scanner: ClamdScanner, clamd: ClamdInfo) -> None:
    verdict = scanner.scan("eicar.com", EICAR)
    assert verdict.infected
    # Both signatures match the exact file; clamd 1.4.6 reports the body (.ndb) one first.
    assert verdict.signature in clamd.eicar_signatures


@pytest.mark.parametrize("offset", [
    pytest.param(0, id="at-start"),
    pytest.param(300_000, id="middle"),
    pytest.param(4096 - 30, id="straddling-a-chunk-boundary"),
    pytest.param(1_000_000 - 68, id="at-end"),
])
def test_eicar_inside_a_bigger_buffer_is_found_by_the_body_signature(
    clamd: ClamdInfo, offset: int,
) -> None:
    data = bytearray(random.Random(offset).randbytes(1_000_000))
    data[offset:offset + len(EICAR)] = EICAR
    verdict = ClamdScanner(clamd.socket_path, timeout=10.0, chunk=4096).scan("attachment.bin", data)
    # Only the .ndb body signature can match here (the .hdb one is a hash of the whole file).
    assert verdict == ScanVerdict(infected=True, signature=clamd.body_signature)


def test_eicar_inside_a_deflated_zip_is_found(scanner: ClamdScanner, clamd: ClamdInfo) -> None:
    """clamd unpacks archives; its verdict does not say which member, so to replace only the
    infected attachment the relay scans member by member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("kousei.xml", "<構成情報/>")
        archive.writestr("添付/eicar.txt", EICAR)
    assert scanner.scan("package.zip", buffer.getvalue()) == ScanVerdict(True, clamd.body_signature)


def test_five_megabytes_stream_in_chunks(scanner: ClamdScanner) -> None:
    data = random.Random(5).randbytes(5 * 1024 * 1024)
    started = time.monotonic()
    assert scanner.scan("scan.tiff", data) == CLEAN
    assert time.monotonic() - started < 10


def test_a_bytearray_can_be_zeroed_and_dropped_after_a_scan(scanner: ClamdScanner, tmp_path: Path) -> None:
    data = bytearray(CANARY * 1000)
    scanner.scan("a.txt", data)
    data.clear()  # raises BufferError if the scanner still held a view
    data = bytearray(CANARY * 1000)
    with pytest.raises(ScannerUnavailable) as raised:
        ClamdScanner(tmp_path / "nothing.sock").scan("a.txt", data)
    data.clear()  # also while the exception (and its traceback) is alive
    assert raised.value.retryable


def test_one_scanner_serves_several_threads(scanner: ClamdScanner, clamd: ClamdInfo) -> None:
    files = [EICAR if i % 3 == 0 else random.Random(i).randbytes(200_000) for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        verdicts = list(pool.map(lambda data: scanner.scan("f", data), files))
    assert [v.infected for v in verdicts] == [i % 3 == 0 for i in range(12)]


def test_clamd_stream_limit_is_an_error_not_a_verdict(scanner: ClamdScanner, clamd: ClamdInfo) -> None:
    data = bytes(clamd.stream_max_length + 1024 * 1024)
    with pytest.raises(ScanLimitExceeded) as raised:
        scanner.scan("huge.bin", data)
    assert "size limit exceeded" in raised.value.reason
    assert raised.value.retryable is False
    assert raised.value.size == len(data)
    assert scanner.ping()  # clamd is fine afterwards


def test_our_stream_limit_refuses_before_connecting(tmp_path: Path) -> None:
    scanner = ClamdScanner(tmp_path / "never-dialled.sock", max_stream=1000)
    with pytest.raises(ScanLimitExceeded) as raised:
        scanner.scan("big.bin", bytes(1001))
    assert (raised.value.size, raised.value.limit, raised.value.retryable) == (1001, 1000, False)


def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition another process will make true, with a deadline (not a blind sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.005)
    return True


def _spool_files(clamd: ClamdInfo) -> list[Path]:
    return [p for p in clamd.temp_dir.iterdir() if p.is_file()]


def test_clamd_unlinks_its_spool_files(scanner: ClamdScanner, clamd: ClamdInfo) -> None:
    scanner.scan("a.bin", CANARY * 10_000)
    scanner.scan("b.bin", EICAR)
    # clamd answers first and unlinks right after (microseconds later): wait for it, bounded.
    assert _eventually(lambda: _spool_files(clamd) == [])


def test_clamd_spools_an_instream_to_its_temporary_directory(clamd: ClamdInfo) -> None:
    """Why scan.py says clamd's TemporaryDirectory must be RAM-backed in production."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(clamd.socket_path))
        sock.sendall(b"zINSTREAM\0" + struct.pack(">I", len(CANARY)) + CANARY)
        # clamd's thread writes the chunk to its spool file: wait for it, bounded.
        assert _eventually(lambda: any(p.read_bytes() == CANARY for p in _spool_files(clamd))), \
            "clamd did not spool the stream"  # plaintext, on clamd's disk
        sock.sendall(struct.pack(">I", 0))
        assert sock.recv(100) == b"stream: OK\0"
    assert _eventually(lambda: _spool_files(clamd) == [])


def test_clamd_stopped_means_unavailable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with clamd_daemon(tmp_path) as info:
        scanner = ClamdScanner(info.socket_path, timeout=5.0)
        assert scanner.scan("a.txt", b"hello") == CLEAN
    caplog.set_level(logging.DEBUG, logger="malware.clamd")
    with pytest.raises(ScannerUnavailable) as raised:
        scanner.scan("山田太郎の住民票.pdf", CANARY)
    assert type(raised.value) is ScannerUnavailable
    assert raised.value.retryable
    assert "cannot connect to clamd" in raised.value.reason
    assert raised.value.name == "山田太郎の住民票.pdf"
    assert scanner.ping() is False
    # No content in the exception or the logs, and the (possibly personal) name only as a field.
    for text in (str(raised.value), repr(raised.value), caplog.text):
        assert "CANARY" not in text
        assert "山田" not in text


def test_clamd_killed_means_unavailable(tmp_path: Path) -> None:
    with clamd_daemon(tmp_path) as info:
        os.kill(info.pid, signal.SIGKILL)
        scanner = ClamdScanner(info.socket_path, timeout=5.0)
        # Bounded: the socket file stays behind, connecting to it is refused once the process is gone.
        assert _eventually(lambda: not scanner.ping())
        with pytest.raises(ScannerUnavailable, match="ConnectionRefusedError"):
            scanner.scan("a.txt", b"hello")


# -- a fake clamd, for what the real one will not do on demand --------------------------------------

Handler = Callable[[socket.socket], None]


class _FakeClamd(socketserver.ThreadingUnixStreamServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, path: Path, handler: Handler) -> None:
        self.handler = handler
        outer = self

        class Request(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.handler(self.request)

        super().__init__(str(path), Request)


@pytest.fixture
def fake_clamd(tmp_path: Path) -> Iterator[Callable[[Handler], Path]]:
    servers: list[tuple[_FakeClamd, threading.Thread]] = []

    def start(handler: Handler) -> Path:
        path = tmp_path / f"fake{len(servers)}.sock"
        server = _FakeClamd(path, handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        servers.append((server, thread))
        return path

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            raise EOFError
        data += piece
    return bytes(data)


def _read_instream(sock: socket.socket) -> list[bytes]:
    assert _read_exact(sock, len(b"zINSTREAM\0")) == b"zINSTREAM\0"
    chunks = []
    while length := struct.unpack(">I", _read_exact(sock, 4))[0]:
        chunks.append(_read_exact(sock, length))
    return chunks


def _until_eof(sock: socket.socket) -> None:
    while sock.recv(65536):
        pass


def test_stream_framing_chunks_and_terminator(fake_clamd: Callable[[Handler], Path]) -> None:
    received: list[list[bytes]] = []

    def handler(sock: socket.socket) -> None:
        received.append(_read_instream(sock))
        sock.sendall(b"stream: OK\0")

    data = random.Random(1).randbytes(5 * 1024 * 1024 + 7)
    assert ClamdScanner(fake_clamd(handler), timeout=5.0).scan("x", memoryview(data)) == CLEAN
    (chunks,) = received
    assert [len(c) for c in chunks] == [64 * 1024] * 80 + [7]
    assert b"".join(chunks) == data


@pytest.mark.parametrize(("reply", "reason"), [
    pytest.param(b"stream: Can't allocate memory ERROR\0", "clamd: stream: Can't allocate memory", id="error"),
    pytest.param(b"HELLO\0", "protocol error: unexpected reply", id="garbage"),
    pytest.param(b"stream:  FOUND\0", "protocol error", id="found-without-name"),
    pytest.param(b"x" * 5000, "protocol error: clamd reply longer", id="endless-reply"),
    pytest.param(b"", "closed the connection without replying", id="silent-close"),
])
def test_bad_replies_are_unavailable_not_clean(
    fake_clamd: Callable[[Handler], Path], reply: bytes, reason: str,
) -> None:
    def handler(sock: socket.socket) -> None:
        _read_instream(sock)
        sock.sendall(reply)

    with pytest.raises(ScannerUnavailable) as raised:
        ClamdScanner(fake_clamd(handler), timeout=5.0).scan("x", CANARY)
    assert type(raised.value) is ScannerUnavailable
    assert reason in raised.value.reason
    assert "CANARY" not in str(raised.value)


def test_found_reply_with_signature(fake_clamd: Callable[[Handler], Path]) -> None:
    def handler(sock: socket.socket) -> None:
        _read_instream(sock)
        sock.sendall(b"stream: Win.Test.EICAR_HDB-1 FOUND\0")

    assert ClamdScanner(fake_clamd(handler), timeout=5.0).scan("x", b"x") == ScanVerdict(True, "Win.Test.EICAR_HDB-1")


def test_a_silent_clamd_times_out(fake_clamd: Callable[[Handler], Path]) -> None:
    path = fake_clamd(_until_eof)  # reads everything, never answers
    started = time.monotonic()
    with pytest.raises(ScannerUnavailable, match="timed out") as raised:
        ClamdScanner(path, timeout=0.3).scan("x", CANARY)
    assert 0.3 <= time.monotonic() - started < 5
    assert raised.value.retryable
    assert ClamdScanner(path, timeout=0.3).ping() is False


def test_clamd_closing_mid_stream_is_unavailable(fake_clamd: Callable[[Handler], Path]) -> None:
    def handler(sock: socket.socket) -> None:
        _read_exact(sock, 100)  # then hang up without a word

    with pytest.raises(ScannerUnavailable, match="closed the connection during INSTREAM"):
        ClamdScanner(fake_clamd(handler), timeout=5.0).scan("x", bytes(10 * 1024 * 1024))


def test_verdict_invariant() -> None:
    with pytest.raises(ValueError, match="signature"):
        ScanVerdict(infected=True, signature=None)
    with pytest.raises(ValueError, match="signature"):
        ScanVerdict(infected=False, signature="Eicar")


def test_null_scanner_warns_loudly_once_and_reports_clean(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="malware.clamd")
    scanner: Scanner = NullScanner()
    assert scanner.scan("eicar.com", EICAR) == CLEAN
    assert scanner.scan("other", b"x") == CLEAN
    assert scanner.ping() is True
    warnings = [r for r in caplog.records if r.name == "malware.clamd"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "malware scanning is OFF" in warnings[0].getMessage()
