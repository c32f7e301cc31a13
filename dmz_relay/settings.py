"""The relay's one typed settings class. Nothing else in ``dmz_relay/`` reads the environment.

Values come from environment variables prefixed ``SHINSEI_RELAY_`` (lists as JSON) or a ``.env``
file; secrets may come from files (``portal_api_key_file``, ``metrics_token_file``).

**No environment means production rules**: ``production`` refuses every insecure or missing value
at start-up (docs/relay.md, "Configuration"). ``development`` must be chosen explicitly
(``SHINSEI_RELAY_ENVIRONMENT=development``) and says so loudly at every start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from handover import CRL_DEFAULT_MAX_BYTES, CRL_NAME_PATTERN
from signature.policy import RevocationMode

__all__ = ["CrlSource", "RelaySettings"]

_log = logging.getLogger(__name__)

MiB = 1024 * 1024


class CrlSource(BaseModel):
    """One CRL distribution point the relay fetches (``CRL_SOURCES``, a JSON list of these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Names the installed copy (``<crl_dir>/<name>.crl``) and the CRL at the intake.
    name: str = Field(pattern=CRL_NAME_PATTERN)
    #: ``http://`` (CRLs are signed; what J-LIS publishes) or ``https://`` (needs ``crl_ca``).
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    #: The issuer's certificate (PEM/DER): the CRL must then be signed by it. Without it, a CRL of an
    #: issuer that is not configured (a signing CA that reaches the relay only in packages) is
    #: installed unverified and verified at first use.
    issuer: Path | None = None


class RelaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHINSEI_RELAY_", env_file=".env", extra="ignore")

    #: ``production`` unless ``development`` is chosen explicitly (secure by default).
    environment: Literal["development", "production"] = "production"

    # --- disk: the tombstone database and the private temp directory (docs/relay.md, "On disk") ---
    data_dir: Path = Path("var/relay")
    #: Private (0700) and empty at start-up; becomes TMPDIR / tempfile.tempdir. Default data_dir/tmp.
    temp_dir: Path | None = None

    # --- the intake (My Number zone), mutual TLS ---
    intake_url: str = "http://127.0.0.1:8600"
    #: CA bundle that verifies the intake's server certificate (never the public web CAs).
    intake_ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    intake_connect_timeout: float = 5.0
    intake_read_timeout: float = 120.0  # the intake verifies and stores before it answers
    intake_write_timeout: float = 60.0
    #: Forwarding: attempts in all (the first included), exponential backoff with jitter between them.
    forward_attempts: int = Field(default=5, ge=1, le=20)
    forward_backoff_initial: float = Field(default=0.5, gt=0)
    forward_backoff_max: float = Field(default=10.0, gt=0)
    forward_jitter: float = Field(default=0.5, ge=0)

    # --- the portal (LGWAN side): pull channel and status updates; both off without portal_url ---
    portal_url: str | None = None
    municipality_code: str | None = None
    portal_api_key: SecretStr | None = None
    #: The portal API key from a file (container secret, systemd credential) instead.
    portal_api_key_file: Path | None = None
    #: CA bundle for an https portal URL (never the public web CAs).
    portal_ca: Path | None = None
    portal_timeout: float = 30.0
    #: How often one request may be answered 429/503/transport error before the round gives up.
    portal_max_waits: int = Field(default=8, ge=0)
    #: A Retry-After above this is capped to it (a broken header must not park the relay for days).
    portal_max_retry_after: float = Field(default=120.0, gt=0)
    poll_interval: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=50, ge=1, le=100)
    #: A package that keeps failing is set aside after this many failed attempts (across rounds) …
    item_max_attempts: int = Field(default=5, ge=1, le=1000)
    #: … or once it was first listed this many hours ago, so that the ones behind it go on.
    item_max_age_hours: float = Field(default=72.0, gt=0)
    #: Package failures in a row that stop a round (then the channel, not the packages, is failing).
    max_consecutive_failures: int = Field(default=3, ge=1, le=100)
    #: Tell the portal what became of every offered 受付番号 (taken, refused, failed), where its API
    #: has the call (``POST …/reception``; the simulator has it).
    report_reception: bool = True
    status_interval: float = Field(default=30.0, gt=0)

    # --- verification: trust material from configuration only ---
    jpki_roots: list[Path] = Field(default_factory=list)
    jpki_intermediates: list[Path] = Field(default_factory=list)
    portal_roots: list[Path] = Field(default_factory=list)
    crls: list[Path] = Field(default_factory=list)
    revocation: RevocationMode = RevocationMode.REQUIRE
    #: Development only (refused in production): the relay's clock starts at this moment and runs on
    #: from there — what it verifies, scans and records is judged at that time — so a demo or a test
    #: can run a chosen moment through the real processes (the intake's ``dev_clock``, portal_sim's
    #: ``--clock``).
    dev_clock: AwareDatetime | None = None

    # --- CRL lifecycle: fetch from the distribution points, install, deliver to the intake ---
    crl_sources: list[CrlSource] = Field(default_factory=list)
    #: Where fetched CRLs are installed; must be one of ``crls`` (so the store reads them).
    crl_dir: Path | None = None
    #: CA bundle for https sources (never the public web CAs).
    crl_ca: Path | None = None
    crl_max_bytes: int = Field(default=CRL_DEFAULT_MAX_BYTES, ge=1024, le=1024 * MiB)
    #: Seconds one download may take in all (connect, headers and body).
    crl_fetch_timeout: float = Field(default=120.0, gt=0, le=3600)
    #: ``serve`` runs a round every this many seconds (and once at start), unless ``crl_fetch_in_serve``
    #: is false (a timer runs ``python -m dmz_relay crl refresh`` instead).
    crl_refresh_interval: float = Field(default=3600.0, ge=60, le=7 * 24 * 3600)
    crl_fetch_in_serve: bool = True
    #: Seconds between re-scans of the CRL files by ``serve`` and ``pull`` (a stat per file).
    crl_watch_interval: float = Field(default=30.0, gt=0, le=3600)
    #: Send installed CRLs to the intake (``PUT /api/v1/crls/{name}`` over the mTLS channel).
    crl_deliver: bool = True
    #: Readiness turns red this many hours before the earliest nextUpdate of the CRLs in use …
    crl_expiry_margin_hours: float = Field(default=6.0, ge=0, le=24 * 30)
    #: … and when a source was not fetched successfully for this many hours.
    crl_fetch_max_age_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    # --- malware scan ---
    #: ``clamd`` (production) or ``none`` (development only: scans nothing, warns loudly).
    scanner: Literal["clamd", "none"] = "clamd"
    clamd_socket: Path = Path("/run/clamav/clamd.ctl")
    clamd_timeout: float = Field(default=30.0, gt=0)

    # --- caps ---
    max_package_bytes: int = Field(default=120 * MiB, ge=1024)
    #: Packages in memory at once (push and pull together); more pushes get 503 + Retry-After.
    max_concurrent_packages: int = Field(default=4, ge=1, le=64)
    #: Packages the pull channel downloads ahead while one is verified, scanned and forwarded (0: one
    #: at a time). Each holds one of the ``max_concurrent_packages`` slots while it waits.
    pull_prefetch: int = Field(default=1, ge=0, le=8)
    #: Retry-After (seconds) sent with 503 answers on the push channel.
    retry_after: int = Field(default=30, ge=1)

    # --- the push API server (``serve``) ---
    listen_host: str = "127.0.0.1"
    listen_port: int = 8500
    #: TLS for the push API (LGWAN terminals); ``tls_client_ca`` makes uvicorn require client certs.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    #: Seconds uvicorn waits for in-flight requests on shutdown before closing them.
    shutdown_grace: float = Field(default=60.0, gt=0)
    #: Operations listener (plain HTTP, loopback only): ``/healthz``, ``/readyz`` and ``/metrics``
    #: for the local health check and a local scraper; none when unset.
    ops_port: int | None = Field(default=None, ge=1, le=65535)
    #: Bearer token ``GET /metrics`` requires on the push API listener (at least 32 characters);
    #: without one, metrics are served only on the operations listener.
    metrics_token: SecretStr | None = None
    metrics_token_file: Path | None = None
    #: Seconds between readiness checks; ``/readyz`` answers the last result (never checks per request).
    readiness_interval: float = Field(default=10.0, gt=0, le=300)
    #: Seconds between checks of the push API's certificate and key files (changed files are reloaded).
    tls_reload_interval: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _check(self) -> RelaySettings:
        problems: list[str] = []
        for name in ("portal_api_key", "metrics_token"):
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            if getattr(self, name) is not None:
                problems.append(f"{name} and {name}_file are exclusive")
                continue
            try:
                setattr(self, name, SecretStr(path.read_text(encoding="utf-8").strip()))
            except OSError as exc:
                problems.append(f"{name}_file cannot be read ({type(exc).__name__})")
        if self.metrics_token is not None:
            token = self.metrics_token.get_secret_value()
            if len(token) < 32 or len(set(token)) < 10:
                problems.append("metrics_token must be at least 32 random characters (openssl rand -hex 32)")
        if bool(self.client_cert) != bool(self.client_key):
            problems.append("client_cert and client_key go together")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("tls_cert and tls_key go together")
        if self.portal_url and not (self.municipality_code and self.portal_api_key):
            problems.append("portal_url needs municipality_code and portal_api_key")
        if self.forward_backoff_initial > self.forward_backoff_max:
            problems.append("forward_backoff_initial must not exceed forward_backoff_max")
        problems.extend(self._crl_problems())
        if self.environment == "production":
            problems.extend(self._production_problems())
        if problems:
            raise ValueError("; ".join(problems))
        if self.environment != "production":
            _log.warning("DEVELOPMENT MODE (SHINSEI_RELAY_ENVIRONMENT=development): insecure settings are allowed; "
                         "never relay a ward's applications like this")
            if self.scanner == "none":
                _log.warning("MALWARE SCANNING IS OFF (scanner=none): development only, never in production")
            if not self.intake_url.startswith("https://"):
                _log.warning("the relay talks to the intake over plain HTTP: development only")
        return self

    def _production_problems(self) -> list[str]:
        problems = []
        if self.scanner == "none":
            problems.append("scanner=none (no malware scan) is refused in production")
        if not self.intake_url.startswith("https://"):
            problems.append("intake_url must be https in production")
        if not (self.client_cert and self.client_key and self.intake_ca):
            problems.append("client_cert, client_key and intake_ca are required in production (mutual TLS)")
        if self.portal_url and not self.portal_url.startswith("https://"):
            problems.append("portal_url must be https in production")
        if not self.jpki_roots or not self.portal_roots:
            problems.append("jpki_roots and portal_roots are required")
        if not self.crls:
            problems.append("crls are required in production")
        if self.revocation is not RevocationMode.REQUIRE:
            problems.append("revocation must be 'require' in production")
        if self.dev_clock is not None:
            problems.append("dev_clock is for development only (the relay runs on the real clock)")
        if not (self.tls_cert and self.tls_key):
            problems.append("tls_cert and tls_key are required in production (the push API is TLS only)")
        if not self.tls_client_ca:
            problems.append("tls_client_ca is required in production (the push API takes LGWAN terminals' "
                            "client certificates only)")
        return problems

    def _crl_problems(self) -> list[str]:
        problems = []
        names = [source.name for source in self.crl_sources]
        if len(set(names)) != len(names):
            problems.append("crl_sources: each name only once")
        if self.crl_sources and self.crl_dir is None:
            problems.append("crl_sources need crl_dir (where fetched CRLs are installed)")
        if self.crl_dir is not None and self.crl_dir.resolve() not in {c.resolve() for c in self.crls}:
            problems.append(f"crl_dir {self.crl_dir} must be one of crls (the CRLs installed there are read "
                            "from there)")
        if any(source.url.startswith("https://") for source in self.crl_sources) and self.crl_ca is None:
            problems.append("https CRL sources need crl_ca (never the public web CAs)")
        return problems

    @property
    def effective_temp_dir(self) -> Path:
        return self.temp_dir if self.temp_dir is not None else self.data_dir / "tmp"

    @property
    def tombstone_path(self) -> Path:
        return self.data_dir / "tombstones.db"
