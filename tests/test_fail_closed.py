"""Issue 16 §4 and §5 — every listener fails closed, and production is the default.

Each case starts the real process (``python -m intake`` / ``python -m dmz_relay``) with an unsafe
configuration and checks that it refuses: a non-zero exit and exactly one line on stderr, no
traceback. The last tests check /metrics and /readyz of the relay's real app.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.keypolicy import key_problem
from intake.settings import development_keys

ROOT = Path(__file__).resolve().parents[1]


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update(values)
    return env


def _refused(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, done.stderr  # one clear line (JSON log lines of the loud dev warning aside)
    assert "Traceback" not in done.stderr
    return lines[0]


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    from tests.support.tlscerts import issue, make_ca

    ca_files, *ca = make_ca(tmp_path, "ca")
    server = issue(tmp_path, "server", tuple(ca), server=True)  # type: ignore[arg-type]
    return server.cert, server.key, ca_files.cert


def test_no_environment_means_production_rules(tmp_path: Path) -> None:
    line = _refused(["intake", "check"], _clean_env(), tmp_path)
    assert line.startswith("intake: cannot start: invalid settings:")
    assert "database_url is required" in line
    assert "my_number_keys is required" in line
    line = _refused(["dmz_relay", "check"], _clean_env(), tmp_path)
    assert line.startswith("dmz_relay: cannot start: invalid settings:")
    assert "scanner" not in line or "intake_url must be https" in line


def test_intake_tls_listener_for_the_machine_api_needs_a_client_ca(tmp_path: Path) -> None:
    cert, key, _ca = _tls_files(tmp_path)
    env = _clean_env(SHINSEI_INTAKE_ENVIRONMENT="development", SHINSEI_INTAKE_VAR_DIR=str(tmp_path / "var"))
    line = _refused(["intake", "serve", "--only", "api", "--tls-cert", str(cert), "--tls-key", str(key)], env,
                    tmp_path)
    assert line.startswith("intake: cannot start: a TLS listener that serves the machine API needs --client-ca")
    env["SHINSEI_INTAKE_CLIENT_AUTH"] = "dedicated-ca"
    line = _refused(["intake", "serve"], env, tmp_path)
    assert "dedicated-ca needs --tls-cert, --tls-key and --client-ca" in line


def test_relay_push_api_needs_client_certificates_in_production(tmp_path: Path) -> None:
    cert, key, ca = _tls_files(tmp_path)
    roots = tmp_path / "roots"
    roots.mkdir()
    env = _clean_env(SHINSEI_RELAY_ENVIRONMENT="production", SHINSEI_RELAY_INTAKE_URL="https://intake:8443",
                     SHINSEI_RELAY_INTAKE_CA=str(ca), SHINSEI_RELAY_CLIENT_CERT=str(cert),
                     SHINSEI_RELAY_CLIENT_KEY=str(key), SHINSEI_RELAY_TLS_CERT=str(cert),
                     SHINSEI_RELAY_TLS_KEY=str(key), SHINSEI_RELAY_JPKI_ROOTS=json.dumps([str(roots)]),
                     SHINSEI_RELAY_PORTAL_ROOTS=json.dumps([str(roots)]),
                     SHINSEI_RELAY_CRLS=json.dumps([str(roots)]), SHINSEI_RELAY_DATA_DIR=str(tmp_path / "relay"))
    line = _refused(["dmz_relay", "serve"], env, tmp_path)
    assert line.startswith("dmz_relay: cannot start: invalid settings:")
    assert "tls_client_ca is required in production" in line
    assert line.count(";") == 0  # that is the only problem of this configuration


def test_weak_metrics_token_is_refused(tmp_path: Path) -> None:
    env = _clean_env(SHINSEI_RELAY_ENVIRONMENT="development", SHINSEI_RELAY_METRICS_TOKEN="short",  # noqa: S106 - a refused token
                     SHINSEI_RELAY_SCANNER="none", SHINSEI_RELAY_DATA_DIR=str(tmp_path / "relay"))
    assert "metrics_token must be at least 32" in _refused(["dmz_relay", "serve"], env, tmp_path)


def _production_intake_env(tmp_path: Path, my_number_key: str) -> dict[str, str]:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"my_number_keys": {"k2026": my_number_key}, "my_number_active_key": "k2026",
                                "package_keys": {"p2026": base64.b64encode(os.urandom(32)).decode()},
                                "package_active_key": "p2026"}), encoding="ascii")
    return _clean_env(SHINSEI_INTAKE_KEYS_FILE=str(keys), SHINSEI_INTAKE_DATABASE_URL="sqlite:///x.db",
                      SHINSEI_INTAKE_CLIENT_AUTH="dedicated-ca", SHINSEI_INTAKE_JPKI_ROOTS='["/r"]',
                      SHINSEI_INTAKE_PORTAL_ROOTS='["/r"]', SHINSEI_INTAKE_MAIL__ENABLED="false",
                      SHINSEI_INTAKE_UI__COOKIE_SECURE="true", SHINSEI_INTAKE_VAR_DIR=str(tmp_path / "var"))


def test_production_refuses_the_development_key_by_value_under_any_id(tmp_path: Path) -> None:
    public = development_keys()["my-number"]
    line = _refused(["intake", "check"], _production_intake_env(tmp_path, public), tmp_path)
    assert "my_number_keys[k2026] is a public key from the source or the tests" in line


def test_development_is_loud(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "intake", "db", "current"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False,
                          env=_clean_env(SHINSEI_INTAKE_ENVIRONMENT="development",
                                         SHINSEI_INTAKE_VAR_DIR=str(tmp_path / "var")))
    assert done.returncode == 0, done.stderr
    assert "DEVELOPMENT MODE" in done.stderr
    assert "PUBLIC DEVELOPMENT KEYS" in done.stderr


_KEY_LITERAL = re.compile(r"(?<![A-Za-z0-9+/])([A-Za-z0-9+/]{43}=)(?![A-Za-z0-9+/=])")
_REPEATED = re.compile(r"""["']([A-Za-z0-9+/])["']\s*\*\s*44""")


def _repository_key_candidates() -> set[str]:
    found = set(development_keys().values())
    for path in ROOT.rglob("*"):
        if any(part in {".git", ".venv", ".uv", "var", ".deploy-cache", "node_modules"} for part in path.parts):
            continue
        if not path.is_file() or path.suffix not in {".py", ".md", ".yaml", ".yml", ".env", ".json", ".conf", ".sh",
                                                     ".service", ".toml"} or path.name == "uv.lock":
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for match in _KEY_LITERAL.finditer(text):
            try:
                if len(base64.b64decode(match.group(1), validate=True)) == 32:
                    found.add(match.group(1))
            except ValueError:
                continue
        found |= {m.group(1) * 44 for m in _REPEATED.finditer(text)}
    return found


def test_every_key_written_in_the_repository_is_refused_in_production() -> None:
    """A key that appears in the source, the tests or the docs is public: production refuses it."""
    candidates = _repository_key_candidates()
    assert len(candidates) >= 2
    accepted = [c[:6] + "…" for c in candidates if key_problem(c) is None]
    assert not accepted, f"keys in the repository that production would accept: {accepted} (intake/keypolicy.py)"
    assert key_problem(base64.b64encode(os.urandom(32)).decode()) is None  # a real key is accepted


@pytest.fixture
def relay_app(tmp_path: Path, trust: object) -> Iterator[tuple[object, object]]:
    from dmz_relay.push import create_app
    from dmz_relay.runtime import Relay
    from dmz_relay.settings import RelaySettings
    from malware import NullScanner
    from signature.verify import TrustConfig
    from tests.support.servers import free_port

    settings = RelaySettings(environment="development", data_dir=tmp_path / "relay", scanner="none",
                             intake_url=f"http://127.0.0.1:{free_port()}", readiness_interval=300)
    import httpx

    assert isinstance(trust, TrustConfig)
    relay = Relay.build(settings, trust=trust,
                        scanner=NullScanner(), intake_http=httpx.Client(base_url=settings.intake_url, timeout=1))
    yield create_app(relay), relay
    relay.close()


def test_relay_metrics_need_credentials_and_readiness_is_cached(relay_app: tuple[object, object]) -> None:
    import httpx

    from tests.support.servers import serve_in_thread

    app, relay = relay_app
    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 40}
        assert httpx.get(f"{url}/metrics", headers=wrong, timeout=10).status_code == 401
        answers = [httpx.get(f"{url}/readyz", timeout=30) for _ in range(20)]
    assert {a.status_code for a in answers} == {503}  # the intake is not there
    assert relay.monitor is not None
    assert relay.monitor.runs == 1
