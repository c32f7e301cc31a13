"""The intake's one typed settings class. Nothing else in `intake/` reads the environment.

Values come from environment variables prefixed ``SHINSEI_INTAKE_`` (or a ``.env`` file). In
``development`` the embedded defaults work out of the box (SQLite, generated dev keys, a loud
warning); in ``production`` insecure or missing values are refused at start-up.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signature.policy import RevocationMode

__all__ = ["IntakeSettings"]

_log = logging.getLogger(__name__)


def _dev_key(label: str) -> SecretStr:
    # Deterministic and public: usable only in development, refused in production.
    return SecretStr(base64.b64encode(hashlib.sha256(b"shinsei-development-key:" + label.encode()).digest()).decode())


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
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'intake.db'}"
