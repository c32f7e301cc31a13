"""The intake's one typed settings class. Nothing else in `intake/` reads the environment.

Values come from environment variables prefixed ``SHINSEI_INTAKE_`` (or a ``.env`` file). In
``development`` the embedded defaults work out of the box (SQLite, generated dev keys, a loud
warning); in ``production`` insecure or missing values are refused at start-up.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import date, time
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signature.policy import RevocationMode

__all__ = ["IntakeSettings", "MailSettings", "StaffUISettings"]

_log = logging.getLogger(__name__)


def _dev_key(label: str) -> SecretStr:
    # Deterministic and public: usable only in development, refused in production.
    return SecretStr(base64.b64encode(hashlib.sha256(b"shinsei-development-key:" + label.encode()).digest()).decode())


class MailSettings(BaseModel):
    """The daily count e-mail (通知機能, docs/intake.md "Daily count e-mail"). Environment variables
    ``SHINSEI_INTAKE_MAIL__<FIELD>``, e.g. ``SHINSEI_INTAKE_MAIL__SMTP_HOST``.

    The embedded default writes ``.eml`` files to ``<var_dir>/mail`` (nothing leaves the machine).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    #: JSON: departments, their recipients (docs/intake.md). Without it, in development only, one
    #: department ``all`` gets every procedure at ``shinsei-dev@localhost``.
    departments_file: Path | None = None
    #: ``eml``: atomic files in ``eml_dir`` (default ``<var_dir>/mail``); ``smtp``: the SMTP server below.
    transport: Literal["eml", "smtp"] = "eml"
    eml_dir: Path | None = None
    smtp_host: str = "localhost"
    #: Default: 587 for ``starttls``, 465 for ``tls`` (implicit TLS), 25 for ``none``.
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: PEM bundle that verifies the SMTP server (required in production with TLS: no public CA bundle).
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    sender: str = "shinsei-intake@localhost"
    sender_name: str = "申請管理システム"
    #: Right-hand side of the deterministic Message-ID; default: the sender's domain.
    message_id_domain: str | None = None
    #: Send time of the previous day's mail, Asia/Tokyo.
    send_time: time = time(8, 30)
    #: How many days back missed mails are caught up (a day older than this is not sent any more).
    catch_up_days: int = Field(default=7, ge=1, le=62)
    #: No mail for days before this one (default: no catch-up before a department's first mail).
    start_date: date | None = None
    #: Base URL of the staff UI for the open-work links (``{base}/applications?...``); none: no links.
    staff_ui_base_url: str | None = None
    #: In-call SMTP retries (tenacity): attempts, exponential wait base and cap (seconds).
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_base_seconds: float = Field(default=2.0, ge=0, le=300)
    retry_cap_seconds: float = Field(default=60.0, ge=0, le=3600)
    #: The scheduler also runs a catch-up pass this often (minutes), and once at start-up.
    pass_interval_minutes: int = Field(default=10, ge=1, le=1440)
    #: A due mail not sent this many minutes after its send time counts as overdue in the status.
    overdue_after_minutes: int = Field(default=60, ge=1, le=1440)
    #: ``business``: a mail on each business day (土日・祝日・年末年始 and the catalogue's closed days
    #: have none), covering every day since the previous one; ``every_day``: one mail per calendar day.
    calendar: Literal["business", "every_day"] = "business"
    #: Dates in the mail in 和暦 (令和8年11月24日（火）) instead of the Western calendar.
    wareki: bool = False

    def production_problems(self) -> list[str]:
        if not self.enabled:
            return []
        problems = []
        if self.departments_file is None:
            problems.append("mail.departments_file is required (or set mail.enabled=false)")
        if self.transport == "smtp":
            if self.smtp_security != "none" and self.smtp_ca_file is None:
                problems.append("mail.smtp_ca_file is required for STARTTLS / TLS")
            if self.smtp_security == "none" and (self.smtp_username or self.smtp_password):
                problems.append("mail.smtp_username/password need STARTTLS or TLS (no password in clear)")
        return problems


class StaffUISettings(BaseModel):
    """The staff UI (職員画面, docs/intake.md "Staff UI"). ``SHINSEI_INTAKE_UI__<FIELD>``.

    Secure by default: only the loopback terminal, 5 failures lock an account for 15 minutes,
    15 minutes idle / 8 hours absolute session lifetime.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Terminals allowed to reach the UI, by client address (CIDR). Default: this machine only.
    terminal_networks: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    #: Terminals allowed by terminal-certificate id, set by a trusted front proxy in ``terminal_cert_header``.
    terminal_cert_ids: list[str] = Field(default_factory=list)
    terminal_cert_header: str = "X-Terminal-Cert-Id"
    #: Front proxies (exact addresses) whose headers the UI believes: the client address in
    #: ``forwarded_for_header``, the terminal certificate id and the staff certificate fingerprint.
    trusted_proxies: list[str] = Field(default_factory=list)
    forwarded_for_header: str = "X-Forwarded-For"
    #: Header carrying the SHA-256 fingerprint of the staff IC-card certificate the proxy verified.
    staff_cert_header: str = "X-Staff-Cert-Sha256"
    max_failed_logins: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    idle_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    absolute_timeout_hours: int = Field(default=8, ge=1, le=24)
    #: ``None``: the cookie is ``Secure`` when the request came over https (directly or, from a
    #: trusted proxy, ``X-Forwarded-Proto: https``). Production requires ``True``.
    cookie_secure: bool | None = None
    #: Largest accepted form body (staff forms are small; nothing is spooled to disk).
    max_form_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    page_size: int = Field(default=50, ge=10, le=500)
    #: Most rows one CSV export of the application list may hold; a larger result is refused with
    #: a request to narrow the filters (an export is a copy of personal data leaving the system).
    export_max_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    #: Folder the 住基 side drops 番号紐付情報 files into; the linkage import page lists its files
    #: (nothing is uploaded through a browser). ``None``: the page says imports are not set up.
    linkage_inbox: Path | None = None
    totp_issuer: str = "申請管理システム"

    def production_problems(self) -> list[str]:
        problems = []
        if self.cookie_secure is not True:
            problems.append("ui.cookie_secure must be true (the UI is served over https)")
        if not (self.terminal_networks or self.terminal_cert_ids):
            problems.append("ui.terminal_networks or ui.terminal_cert_ids must name the staff terminals")
        return problems


class IntakeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHINSEI_INTAKE_", env_file=".env", extra="ignore",
                                      env_nested_delimiter="__")

    environment: Literal["development", "production"] = "development"
    var_dir: Path = Path("var/intake")
    database_url: str = ""

    #: AES-256-GCM keys by key id (base64, 32 bytes). The active id encrypts; all ids decrypt.
    my_number_keys: dict[str, SecretStr] = Field(default_factory=lambda: {"dev1": _dev_key("my-number")})
    my_number_active_key: str = "dev1"
    package_keys: dict[str, SecretStr] = Field(default_factory=lambda: {"dev1": _dev_key("package")})
    package_active_key: str = "dev1"

    #: P13: access-log rows are kept this many years, then purged by ``python -m intake audit purge``
    #: (the ward's rule is 7 years; a shorter setting is refused).
    access_log_retention_years: int = Field(default=7, ge=7, le=100)

    jpki_roots: list[Path] = Field(default_factory=list)
    portal_roots: list[Path] = Field(default_factory=list)
    jpki_intermediates: list[Path] = Field(default_factory=list)
    crls: list[Path] = Field(default_factory=list)
    revocation: RevocationMode = RevocationMode.REQUIRE

    max_package_bytes: int = 120 * 1024 * 1024

    #: How the relay is authenticated (docs/operations.md, "Mutual TLS"):
    #: ``proxy-header`` — a front proxy terminates mTLS and passes the verified client certificate's
    #: SHA-256 fingerprint in ``client_cert_header``; only ``trusted_proxies`` may set it;
    #: ``dedicated-ca`` — uvicorn itself requires a client certificate from a CA that issues only the
    #: relay's certificate (``--ssl-cert-reqs 2 --ssl-ca-certs relay-ca.pem``); plain HTTP is refused;
    #: ``none`` — development only.
    client_auth: Literal["proxy-header", "dedicated-ca", "none"] = "none"
    #: Relay identities allowed to deliver in ``proxy-header`` mode: certificate SHA-256 fingerprints (hex).
    relay_client_fingerprints: list[str] = Field(default_factory=list)
    #: Header the front proxy sets to the verified client certificate's SHA-256 fingerprint.
    client_cert_header: str = "X-Client-Cert-Sha256"
    #: Addresses of trusted front proxies allowed to set that header (empty: no proxy).
    trusted_proxies: list[str] = Field(default_factory=list)

    routes_file: Path | None = None
    procedures_file: Path | None = None

    #: Development only (refused in production): the intake's clock starts at this moment and runs on
    #: from there, e.g. ``2026-11-24T08:31:00+09:00`` — so a demo or a test can run a chosen day (the
    #: daily mail of a Monday after a 祝日) through the real processes. Like portal_sim's ``--clock``.
    dev_clock: AwareDatetime | None = None

    #: The daily count e-mail (通知機能).
    mail: MailSettings = Field(default_factory=MailSettings)
    #: The staff UI (職員画面).
    ui: StaffUISettings = Field(default_factory=StaffUISettings)

    @model_validator(mode="after")
    def _production_is_strict(self) -> IntakeSettings:
        if self.environment != "production":
            if any(k.startswith("dev") for k in (*self.my_number_keys, *self.package_keys)):
                _log.warning("intake runs with PUBLIC DEVELOPMENT KEYS: never use this outside development")
            return self
        problems = []
        if not self.database_url:
            problems.append("database_url is required")
        for name, keys in (("my_number_keys", self.my_number_keys), ("package_keys", self.package_keys)):
            if any(k.startswith("dev") for k in keys):
                problems.append(f"{name} holds a development key")
        if set(self.my_number_keys.values()) & set(self.package_keys.values()):
            problems.append("My Number and package keys must differ")
        if self.client_auth == "none":
            problems.append("client_auth must be proxy-header or dedicated-ca")
        if self.client_auth == "proxy-header" and not (self.relay_client_fingerprints and self.trusted_proxies):
            problems.append("proxy-header needs relay_client_fingerprints and trusted_proxies")
        if not self.jpki_roots or not self.portal_roots:
            problems.append("jpki_roots and portal_roots are required")
        if self.dev_clock is not None:
            problems.append("dev_clock is for development only (the intake runs on the real clock)")
        problems.extend(self.mail.production_problems())
        problems.extend(self.ui.production_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'intake.db'}"
