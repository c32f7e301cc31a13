"""A private ``clamd`` (Debian's clamav-daemon) for tests, with a tiny local signature database.

``freshclam`` cannot download signatures here (pitfalls.md), and the tests must not depend on a
system clamd: each daemon gets its own generated ``clamd.conf``, its own ``DatabaseDirectory`` holding
only two signatures for the EICAR test file, its own ``TemporaryDirectory`` and a ``LocalSocket`` —
no TCP. It runs in the foreground as a child of the test process and is stopped at the end.

The signatures (clamd appends ``.UNOFFICIAL`` to names from non-official databases):

- ``Shinsei.Test.EICAR.HDB`` in ``eicar.hdb``: MD5 and size of the exact 68-byte EICAR file;
- ``Shinsei.Test.EICAR.NDB`` in ``eicar.ndb``: the 68 bytes as a body signature, matching anywhere in
  any file, so EICAR embedded in a bigger buffer is found too. clamd 1.4.6 reports this one first
  even for the exact file.

clamd runs as the invoking user when ``User`` is not set; as root it does not refuse (checked with
1.4.6). It spools every INSTREAM to a temporary file in ``TemporaryDirectory`` while receiving it
(see ``malware/clamd.py``): pass ``temp_dir`` to put that somewhere a test controls.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLAMD", "EICAR", "ClamdInfo", "ClamdUnavailable", "clamd_daemon"]

CLAMD = Path("/usr/sbin/clamd")

# The EICAR anti-virus test file, assembled at run time so that this source file is not itself
# reported by a scanner on a developer's machine.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-" + b"TEST-FILE!$H+H*")

HASH_SIGNATURE = "Shinsei.Test.EICAR.HDB"
BODY_SIGNATURE = "Shinsei.Test.EICAR.NDB"
_UNOFFICIAL = ".UNOFFICIAL"

# sun_path holds 108 bytes including the NUL; pytest's temporary directories can be deep.
_MAX_SOCKET_PATH = 100
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0


class ClamdUnavailable(Exception):
    """clamd is not installed or did not start; the message says why (with the end of its log)."""


@dataclass(frozen=True)
class ClamdInfo:
    """A running test clamd."""

    socket_path: Path
    config_path: Path
    database_dir: Path
    temp_dir: Path
    log_path: Path
    pid: int
    stream_max_length: int
    start_seconds: float  # from spawning to the first PONG

    @property
    def hash_signature(self) -> str:
        """The name clamd reports for the ``.hdb`` (exact file) signature."""
        return HASH_SIGNATURE + _UNOFFICIAL

    @property
    def body_signature(self) -> str:
        """The name clamd reports for the ``.ndb`` (anywhere in the body) signature."""
        return BODY_SIGNATURE + _UNOFFICIAL

    @property
    def eicar_signatures(self) -> frozenset[str]:
        return frozenset({self.hash_signature, self.body_signature})


def write_signature_db(directory: Path) -> None:
    """Write the two EICAR signatures into ``directory`` (which should hold nothing else)."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(EICAR, usedforsecurity=False).hexdigest()
    (directory / "eicar.hdb").write_text(f"{digest}:{len(EICAR)}:{HASH_SIGNATURE}\n", encoding="ascii")
    # name:target type (0 = any file):offset (* = anywhere):hex body
    (directory / "eicar.ndb").write_text(f"{BODY_SIGNATURE}:0:*:{EICAR.hex()}\n", encoding="ascii")


def _ping(socket_path: Path, timeout: float) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(socket_path))
            sock.sendall(b"zPING\0")
            return sock.recv(16) == b"PONG\0"
        except OSError:
            return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def clamd_daemon(
    tmp_dir: Path,
    *,
    stream_max_length: int = 8 * 1024 * 1024,
    temp_dir: Path | None = None,
    start_timeout: float = _START_TIMEOUT,
) -> Iterator[ClamdInfo]:
    """Start a private clamd under ``tmp_dir``; yield once it answers PING; stop it afterwards.

    ``stream_max_length`` is clamd's ``StreamMaxLength`` (INSTREAMs longer than it get
    ``INSTREAM size limit exceeded. ERROR``). ``temp_dir`` defaults to ``tmp_dir / "tmp"``.
    """
    if not CLAMD.exists():
        raise ClamdUnavailable(f"{CLAMD} is missing: install Debian's clamav-daemon (make install does it)")
    tmp_dir = Path(tmp_dir).resolve()
    database_dir = tmp_dir / "db"
    write_signature_db(database_dir)
    temp = (temp_dir or tmp_dir / "tmp").resolve()
    temp.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        socket_path = tmp_dir / "clamd.sock"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            short = Path(tempfile.mkdtemp(prefix="clamd-"))
            cleanup.callback(shutil.rmtree, short, ignore_errors=True)
            socket_path = short / "clamd.sock"
        log_path = tmp_dir / "clamd.log"
        config_path = tmp_dir / "clamd.conf"
        config_path.write_text("\n".join([
            "Foreground yes",
            f"LocalSocket {socket_path}",
            "LocalSocketMode 600",
            "FixStaleSocket yes",
            f"DatabaseDirectory {database_dir}",
            f"TemporaryDirectory {temp}",
            f"LogFile {log_path}",
            "LogTime yes",
            # No PidFile: we hold the process. No database self-checks or reloads during a test.
            "SelfCheck 0",
            f"StreamMaxLength {stream_max_length}",
            "MaxThreads 4",
            "",
        ]), encoding="ascii")
        output = cleanup.enter_context((tmp_dir / "clamd.out").open("wb"))
        spawned = time.monotonic()
        process = subprocess.Popen([str(CLAMD), "--config-file", str(config_path)],
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        cleanup.callback(_stop, process)
        deadline = spawned + start_timeout
        while not _ping(socket_path, timeout=1.0):
            if time.monotonic() > deadline:
                raise ClamdUnavailable(f"clamd did not answer PING within {start_timeout} s:\n{_tail(log_path)}")
            try:
                # Waits on the process rather than sleeping blind: returns at once if clamd died.
                code = process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            raise ClamdUnavailable(f"clamd exited with status {code} during start-up:\n"
                                   f"{_tail(tmp_dir / 'clamd.out')}\n{_tail(log_path)}")
        yield ClamdInfo(
            socket_path=socket_path, config_path=config_path, database_dir=database_dir, temp_dir=temp,
            log_path=log_path, pid=process.pid, stream_max_length=stream_max_length,
            start_seconds=time.monotonic() - spawned,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT)
