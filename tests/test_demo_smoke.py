"""`make smoke`: the whole chain as the demo runs it (real processes, mTLS, linkage, daily mail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_headless_runs_the_whole_chain(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env["SHINSEI_VAR_DIR"] = str(tmp_path / "var")
    result = subprocess.run([sys.executable, "-m", "demo", "--headless", "--residents", "8", "--applications", "16"],
                            env=env, capture_output=True, text=True, timeout=900, check=False,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke: OK" in result.stdout
    var = tmp_path / "var"
    for sub in ("relay", "intake", "mail", "portal", "pki", "log"):
        assert (var / sub).is_dir(), sub
    assert list((var / "mail").rglob("*.eml"))
