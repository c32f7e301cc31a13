"""Structured logs carry allow-listed fields only; settings refuse insecure production values."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from dmz_relay.logs import ALLOWED_FIELDS, JsonFormatter, event
from dmz_relay.settings import RelaySettings


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test-relay-logs")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_an_event_is_one_json_line_with_its_fields() -> None:
    logger, stream = _capture()
    event("package.erased", logger=logger, receipt_number="20261125-0000000001", sha256="ab" * 32,
          outcome="stored", duration_ms=12.5, signatures=["Eicar-Test-Signature"])
    line = json.loads(stream.getvalue())
    assert line["event"] == "package.erased"
    assert line["receipt_number"] == "20261125-0000000001"
    assert line["signatures"] == ["Eicar-Test-Signature"]
    assert set(line) - {"time", "level", "logger", "event"} <= ALLOWED_FIELDS


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"name": "山田 太郎"}, id="field-not-allowed"),
        pytest.param({"file_name": "住民票.pdf"}, id="file-names-are-not-allowed"),
    ],
)
def test_fields_outside_the_allow_list_are_refused(fields: dict[str, object]) -> None:
    logger, stream = _capture()
    with pytest.raises((ValueError, TypeError)):
        event("x", logger=logger, **fields)
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("detail", "line one\nline two", id="free-text-with-newline"),
        pytest.param("detail", "<個人番号>123456789018</個人番号>", id="markup"),
        pytest.param("detail", "山田 太郎", id="a-name-in-kanji"),
        pytest.param("detail", "やまだ たろう", id="a-name-in-hiragana"),
        pytest.param("detail", "ﾔﾏﾀﾞ ﾀﾛｳ", id="a-name-in-half-width-katakana"),
        pytest.param("reason_code", "山田太郎_住民票.pdf", id="a-japanese-file-name"),
        pytest.param("detail", "Ｙａｍａｄａ", id="full-width-latin"),
        pytest.param("status", "山田", id="not-a-portal-status"),
        pytest.param("count", object(), id="an-object"),
    ],
)
def test_free_text_of_any_script_is_dropped(field: str, value: object) -> None:
    logger, stream = _capture()
    event("x", logger=logger, **{field: value})
    line = json.loads(stream.getvalue())
    assert line[field] == "[dropped]"
    for part in ("山田", "やまだ", "ﾔﾏﾀﾞ", "住民票", "Ｙａｍａｄａ", "123456789018", "line two"):
        assert part not in stream.getvalue()


def test_tokens_and_the_status_vocabulary_pass() -> None:
    logger, stream = _capture()
    event("x", logger=logger, status="補正依頼", detail="the intake answered HTTP_500", reason_code="HTTP_500",
          receipt_number="20261125-0000000001")
    line = json.loads(stream.getvalue())
    assert (line["status"], line["detail"], line["reason_code"]) == ("補正依頼", "the intake answered HTTP_500",
                                                                     "HTTP_500")


def test_other_libraries_messages_are_dropped_when_they_hold_free_text() -> None:
    logger, stream = _capture()
    logger.warning("upload of %s failed", "山田太郎_住民票.pdf")
    logger.warning("GET /api/v1/applications/20261125-0000000001/package 200")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "[dropped]"
    assert second["message"] == "GET /api/v1/applications/20261125-0000000001/package 200"


def test_exceptions_are_logged_by_type_only() -> None:
    logger, stream = _capture()
    try:
        raise ValueError("<申請者氏名>山田 太郎</申請者氏名>")
    except ValueError:
        logger.exception("failure")
    line = json.loads(stream.getvalue())
    assert line["exception"] == "ValueError"
    assert "山田" not in stream.getvalue()


def _production(tmp_path: Path, **overrides: object) -> dict[str, object]:
    pem = tmp_path / "x.pem"
    pem.write_text("")
    values: dict[str, object] = {
        "environment": "production", "intake_url": "https://intake.example:8443", "intake_ca": pem,
        "client_cert": pem, "client_key": pem, "jpki_roots": [pem], "portal_roots": [pem], "crls": [pem],
        "tls_cert": pem, "tls_key": pem, "tls_client_ca": pem, "scanner": "clamd",
    }
    values.update(overrides)
    return values


def test_production_settings_are_accepted_when_complete(tmp_path: Path) -> None:
    RelaySettings(**_production(tmp_path))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        pytest.param({"scanner": "none"}, "scanner=none", id="no-malware-scan"),
        pytest.param({"intake_url": "http://intake.example"}, "https", id="plain-http-intake"),
        pytest.param({"client_cert": None, "client_key": None}, "mutual TLS", id="no-client-certificate"),
        pytest.param({"crls": []}, "crls", id="no-crls"),
        pytest.param({"revocation": "soft-fail"}, "revocation", id="soft-fail"),
        pytest.param({"portal_url": "http://portal.example", "municipality_code": "131032",
                      "portal_api_key": "k" * 32}, "portal_url must be https", id="plain-http-portal"),
        pytest.param({"tls_cert": None, "tls_key": None}, "push API", id="plain-http-push-api"),
        pytest.param({"tls_client_ca": None}, "client certificates only", id="push-api-without-client-ca"),
        pytest.param({"dev_clock": "2026-12-07T08:45:00+09:00"}, "dev_clock is for development only",
                     id="development-clock"),
    ],
)
def test_production_refuses_insecure_values(tmp_path: Path, override: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RelaySettings(**_production(tmp_path, **override))  # type: ignore[arg-type]


def test_development_without_a_scanner_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        RelaySettings(scanner="none")
    assert "MALWARE SCANNING IS OFF" in caplog.text


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHINSEI_RELAY_MAX_PACKAGE_BYTES", "5000000")
    monkeypatch.setenv("SHINSEI_RELAY_SCANNER", "none")
    monkeypatch.setenv("SHINSEI_RELAY_JPKI_ROOTS", '["/etc/shinsei/jpki"]')
    settings = RelaySettings()
    assert settings.max_package_bytes == 5_000_000
    assert settings.jpki_roots == [Path("/etc/shinsei/jpki")]


def test_a_portal_needs_its_credentials() -> None:
    with pytest.raises(ValidationError, match="municipality_code"):
        RelaySettings(scanner="none", portal_url="http://127.0.0.1:8700")
