"""The intake's one typed settings class. Nothing else in `intake/` reads the environment.

Values come from environment variables prefixed ``SHINSEI_INTAKE_`` (or a ``.env`` file). Secrets may
come from files instead (``keys_file``, ``database_url_file``, ``metrics_token_file``: systemd
credentials, container secrets), so they never sit in a process environment.

**No environment means production rules.** ``development`` must be chosen explicitly
(``SHINSEI_INTAKE_ENVIRONMENT=development``) and says so loudly at every start: only there do the
embedded defaults apply (SQLite, the public development keys). Production refuses missing or insecure
values, and any key whose *value* appears in this repository (:mod:`intake.keypolicy`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from datetime import date, time
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from handover import CRL_DEFAULT_MAX_BYTES
from intake.auditkeys import DEVELOPMENT_KEY_ID, AccessLogKeys, development_access_log_key
from intake.keypolicy import key_problem, token_problem
from signature.policy import RevocationMode

__all__ = ["IntakeSettings", "MailSettings", "StaffUISettings"]

_log = logging.getLogger(__name__)


def _dev_key(label: str) -> SecretStr:
    # Deterministic and public: usable only in development, refused in production by value.
    return SecretStr(base64.b64encode(hashlib.sha256(b"shinsei-development-key:" + label.encode()).digest()).decode())


def development_keys() -> dict[str, str]:
    """The public development keys by purpose (for :mod:`intake.keypolicy` and its test)."""
    return {label: _dev_key(label).get_secret_value() for label in ("my-number", "package", "access-log")}


_KEY_FIELDS = ("my_number_keys", "my_number_active_key", "package_keys", "package_active_key")


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
    #: How long a privileged change request (reveal permission, system_admin, IC card, another's
    #: password or TOTP) waits for a second system administrator before it expires (issue 15 §3).
    approval_hours: int = Field(default=24, ge=1, le=24 * 14)

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

    #: ``production`` unless ``development`` is chosen explicitly (issue 16: secure by default).
    environment: Literal["development", "production"] = "production"
    var_dir: Path = Path("var/intake")
    database_url: SecretStr = SecretStr("")
    #: A file holding the database URL (it carries the password): read at start-up, never logged.
    database_url_file: Path | None = None

    #: AES-256-GCM keys by key id (base64, 32 bytes). The active id encrypts; all ids decrypt.
    #: Development without keys uses the public development keys (``dev1``); production requires them.
    my_number_keys: dict[str, SecretStr] = Field(default_factory=dict)
    my_number_active_key: str = ""
    package_keys: dict[str, SecretStr] = Field(default_factory=dict)
    package_active_key: str = ""
    #: A JSON file with the four key settings above (``{"my_number_keys": {...}, "my_number_active_key":
    #: ..., "package_keys": {...}, "package_active_key": ...}``), kept apart from the data (docs/運用手順書.md).
    keys_file: Path | None = None
    #: Bearer token that ``GET /metrics`` requires (at least 32 characters); without one, ``/metrics``
    #: is not served. ``metrics_token_file``: the same, from a file.
    metrics_token: SecretStr | None = None
    metrics_token_file: Path | None = None
    #: Seconds between readiness checks (``/readyz`` answers the last result; it never checks per request).
    readiness_interval: float = Field(default=10.0, gt=0, le=300)
    #: Seconds between checks of the TLS certificate and key files (changed files are reloaded).
    tls_reload_interval: float = Field(default=30.0, gt=0, le=3600)

    #: HMAC keys of the access log's hash chain by key id (base64, 32 bytes) and the id that keys new
    #: rows (issue 15 §4): a key the database does not hold, so an insider with database access alone
    #: cannot rewrite the log. ``access_log_keys_file``: a JSON file ``{"keys": {...}, "active": ...}``
    #: (exclusive with the two values). Development: the public development key; production: required.
    access_log_keys: dict[str, SecretStr] = Field(default_factory=dict)
    access_log_active_key: str = ""
    access_log_keys_file: Path | None = None
    #: Rows up to this id were written before the keys (an installation upgraded to keyed hashes): they
    #: keep their plain SHA-256 and verify as such; any other unkeyed row is a break. 0 (default): none.
    access_log_unkeyed_through: int = Field(default=0, ge=0)
    #: Seals of the access log's head outside the database (``python -m intake audit seal``): the
    #: directory they are written to, an Ed25519 private key (PEM) that signs each seal, the public key
    #: that verifies them (default: the private key's), and an RFC 3161 time-stamping authority (its
    #: URL and the CA file that verifies its tokens). docs/operations.md, "Access log keys and seals".
    audit_seal_dir: Path | None = None
    audit_seal_key_file: Path | None = None
    audit_seal_public_key_file: Path | None = None
    audit_tsa_url: str | None = None
    audit_tsa_ca_file: Path | None = None
    audit_tsa_timeout: float = Field(default=30.0, gt=0, le=300)

    #: P13: access-log rows are kept this many years, then purged by ``python -m intake audit purge``
    #: (the ward's rule is 7 years; a shorter setting is refused).
    access_log_retention_years: int = Field(default=7, ge=7, le=100)

    jpki_roots: list[Path] = Field(default_factory=list)
    portal_roots: list[Path] = Field(default_factory=list)
    jpki_intermediates: list[Path] = Field(default_factory=list)
    crls: list[Path] = Field(default_factory=list)
    revocation: RevocationMode = RevocationMode.REQUIRE
    #: The CRL inbox: CRLs the relay delivers (``PUT /api/v1/crls/{name}``) are checked and written
    #: here. Must be one of ``crls`` (refused at start otherwise); none: the endpoint answers 404.
    crl_inbox: Path | None = None
    #: Largest CRL the inbox accepts (a 10^6-entry JPKI CRL is about 43 MB).
    crl_max_bytes: int = Field(default=CRL_DEFAULT_MAX_BYTES, ge=1024, le=1024 * 1024 * 1024)
    #: Seconds between re-scans of the CRL sources by each long-running process (a stat per file).
    crl_watch_interval: float = Field(default=30.0, gt=0, le=3600)
    #: Readiness turns red this many hours before the earliest nextUpdate of the CRLs in use.
    crl_expiry_margin_hours: float = Field(default=6.0, ge=0, le=24 * 30)

    max_package_bytes: int = 120 * 1024 * 1024

    #: P11: the intake scans every file of every delivery itself, besides the relay. ``clamd``
    #: (required in production) or ``none`` (development only: nothing is scanned, loudly); unset:
    #: ``clamd`` in production, ``none`` in development.
    scanner: Literal["clamd", "none"] | None = None
    clamd_socket: Path = Path("/run/clamav/clamd.ctl")
    clamd_timeout: float = Field(default=30.0, gt=0)

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
        self._read_secret_files()
        if self.metrics_token is not None and (why := token_problem(self.metrics_token.get_secret_value())):
            raise ValueError(f"metrics_token {why}")
        if (why := self._crl_inbox_problem()) is not None:
            raise ValueError(why)
        if self.environment != "production":
            if not (self.my_number_keys or self.package_keys):
                self.my_number_keys, self.my_number_active_key = {"dev1": _dev_key("my-number")}, "dev1"
                self.package_keys, self.package_active_key = {"dev1": _dev_key("package")}, "dev1"
            if not self.access_log_keys:
                self.access_log_keys = {DEVELOPMENT_KEY_ID: SecretStr(development_access_log_key())}
                self.access_log_active_key = DEVELOPMENT_KEY_ID
            _log.warning("DEVELOPMENT MODE (SHINSEI_INTAKE_ENVIRONMENT=development): insecure defaults allowed; "
                         "never run a ward's data like this")
            if "dev1" in self.my_number_keys:
                _log.warning("PUBLIC DEVELOPMENT KEYS in use: anything sealed now is readable by anyone")
            return self
        problems = []
        if not self.database_url.get_secret_value():
            problems.append("database_url is required")
        for name, keys in (("my_number_keys", self.my_number_keys), ("package_keys", self.package_keys)):
            if not keys:
                problems.append(f"{name} is required (or keys_file)")
            for kid, value in keys.items():
                if why := key_problem(value.get_secret_value()):
                    problems.append(f"{name}[{kid}] {why}")
        if self.my_number_keys and self.my_number_active_key not in self.my_number_keys:
            problems.append("my_number_active_key must name one of my_number_keys")
        if self.package_keys and self.package_active_key not in self.package_keys:
            problems.append("package_active_key must name one of package_keys")
        mine = {v.get_secret_value() for v in self.my_number_keys.values()}
        if mine & {v.get_secret_value() for v in self.package_keys.values()}:
            problems.append("My Number and package keys must differ")
        if not self.access_log_keys:
            problems.append("access_log_keys is required (or access_log_keys_file): the access log's HMAC key")
        for kid, value in self.access_log_keys.items():
            if why := key_problem(value.get_secret_value()):
                problems.append(f"access_log_keys[{kid}] {why}")
        if self.access_log_keys and self.access_log_active_key not in self.access_log_keys:
            problems.append("access_log_active_key must name one of access_log_keys")
        others = mine | {v.get_secret_value() for v in self.package_keys.values()}
        if others & {v.get_secret_value() for v in self.access_log_keys.values()}:
            problems.append("the access-log keys must differ from the My Number and package keys")
        if self.client_auth == "none":
            problems.append("client_auth must be proxy-header or dedicated-ca")
        if self.client_auth == "proxy-header" and not (self.relay_client_fingerprints and self.trusted_proxies):
            problems.append("proxy-header needs relay_client_fingerprints and trusted_proxies")
        if not self.jpki_roots or not self.portal_roots:
            problems.append("jpki_roots and portal_roots are required")
        if self.scanner == "none":
            problems.append("scanner=none is for development only (P11: the intake scans every file)")
        if self.dev_clock is not None:
            problems.append("dev_clock is for development only (the intake runs on the real clock)")
        problems.extend(self.mail.production_problems())
        problems.extend(self.ui.production_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _crl_inbox_problem(self) -> str | None:
        """The CRL inbox must be one of the CRL sources, or what arrives there would never be used."""
        if self.crl_inbox is None:
            return None
        if self.crl_inbox.resolve() not in {source.resolve() for source in self.crls}:
            return f"crl_inbox {self.crl_inbox} must be one of crls (the CRLs written there are read from there)"
        return None

    @property
    def effective_scanner(self) -> Literal["clamd", "none"]:
        if self.scanner is not None:
            return self.scanner
        return "clamd" if self.environment == "production" else "none"

    def _read_secret_files(self) -> None:
        """Fill the secret settings from their files (a file and the value itself: refused)."""
        if self.keys_file is not None:
            if self.my_number_keys or self.package_keys:
                raise ValueError("keys_file and my_number_keys/package_keys are exclusive")
            try:
                data = json.loads(self.keys_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"keys_file cannot be read: {type(exc).__name__}") from None
            if not isinstance(data, dict) or set(data) != set(_KEY_FIELDS):
                raise ValueError(f"keys_file must hold exactly {', '.join(_KEY_FIELDS)}")
            for name in ("my_number_keys", "package_keys"):
                if not isinstance(data[name], dict) or not all(isinstance(v, str) for v in data[name].values()):
                    raise ValueError(f"keys_file: {name} must map key ids to base64 strings")
                setattr(self, name, {str(k): SecretStr(v) for k, v in data[name].items()})
            self.my_number_active_key = str(data["my_number_active_key"])
            self.package_active_key = str(data["package_active_key"])
        if self.access_log_keys_file is not None:
            if self.access_log_keys:
                raise ValueError("access_log_keys_file and access_log_keys are exclusive")
            try:
                data = json.loads(self.access_log_keys_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"access_log_keys_file cannot be read: {type(exc).__name__}") from None
            if (not isinstance(data, dict) or set(data) != {"keys", "active"} or not isinstance(data["keys"], dict)
                    or not all(isinstance(v, str) for v in data["keys"].values())):
                raise ValueError('access_log_keys_file must hold {"keys": {id: base64}, "active": id}')
            self.access_log_keys = {str(k): SecretStr(v) for k, v in data["keys"].items()}
            self.access_log_active_key = str(data["active"])
        if self.audit_tsa_url is not None and self.audit_tsa_ca_file is None:
            raise ValueError("audit_tsa_url needs audit_tsa_ca_file (the CA that verifies the TSA's tokens)")
        for field_name, file_field in (("database_url", "database_url_file"), ("metrics_token", "metrics_token_file")):
            path = getattr(self, file_field)
            if path is None:
                continue
            current = getattr(self, field_name)
            if current is not None and current.get_secret_value():
                raise ValueError(f"{field_name} and {file_field} are exclusive")
            try:
                setattr(self, field_name, SecretStr(path.read_text(encoding="utf-8").strip()))
            except OSError as exc:
                raise ValueError(f"{file_field} cannot be read: {type(exc).__name__}") from None

    def access_log_keyring(self) -> AccessLogKeys:
        """The access log's HMAC keys (:class:`intake.auditkeys.AccessLogKeys`)."""
        return AccessLogKeys.from_base64({k: v.get_secret_value() for k, v in self.access_log_keys.items()},
                                         self.access_log_active_key,
                                         development=self.environment != "production",
                                         unkeyed_through=self.access_log_unkeyed_through)

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url.get_secret_value() or f"sqlite:///{self.var_dir / 'intake.db'}"
