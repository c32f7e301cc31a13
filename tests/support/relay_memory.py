"""One package through a relay's :meth:`Pipeline.process` in a fresh process; prints its peak memory.

Run by tests/dmz_relay/test_memory.py as ``python -m tests.support.relay_memory CONFIG.json`` so that
nothing but the relay (not the intake serving in the test process, not pytest) is measured. The
package is read from a file in 1 MiB chunks into one ``bytearray``, as the push channel reads a body,
with ``tracemalloc`` already tracing: the peak counts the body as read, the immutable copy, the
inflated files, the scan and the forward, until ``process`` returns (the package is erased).

Prints one JSON line: ``size``, ``outcome``, ``traced_peak`` (bytes above what was traced before the
read) and ``hwm_increase`` (``VmHWM`` at the end minus ``VmRSS`` before the read, for information).
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from datetime import datetime
from pathlib import Path

import httpx

from dmz_relay.runtime import Relay
from dmz_relay.settings import RelaySettings
from dmz_relay.tombstones import Channel
from malware import ClamdScanner
from signature.verify import TrustConfig


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    now = datetime.fromisoformat(config["now"])
    settings = RelaySettings(data_dir=Path(config["data_dir"]), intake_url=config["intake_url"], scanner="clamd",
                             clamd_socket=Path(config["clamd_socket"]), max_package_bytes=config["max_package_bytes"])
    trust = TrustConfig.load(jpki_roots=[Path(config["jpki_roots"])], portal_roots=[Path(config["portal_roots"])],
                             crls=[Path(config["crls"])], intermediates=[Path(config["intermediates"])])
    relay = Relay.build(settings, trust=trust, scanner=ClamdScanner(settings.clamd_socket, timeout=60),
                        intake_http=httpx.Client(base_url=config["intake_url"], timeout=120, trust_env=False),
                        clock=lambda: now)
    package = Path(config["package"])
    gc.collect()
    rss_before = _status("VmRSS")
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    buffer = bytearray()
    with package.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            buffer += chunk
    size = len(buffer)
    result = relay.pipeline.process(buffer, channel=Channel.PUSH)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _status("VmHWM")
    relay.close()
    print(json.dumps({"size": size, "outcome": result.outcome.value, "reason_code": result.reason_code,
                      "traced_peak": peak - base, "hwm_increase": hwm - rss_before}))


if __name__ == "__main__":
    main(sys.argv[1])
