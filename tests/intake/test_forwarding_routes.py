"""Route configuration, retry timing and file names: pure functions, no database, no network."""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tenacity import RetryCallState

from intake.forwarding.backoff import in_call_wait, next_attempt_delay
from intake.forwarding.errors import RouteConfigError
from intake.forwarding.payload import drop_file_name
from intake.forwarding.routes import RetryPolicy, Route, Timeouts, load_routes, parse_routes
from intake.runtime import Runtime
from intake.settings import IntakeSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "intake.md"


def documented_example() -> dict[str, Any]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Forwarding to business systems", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, re.S)
    assert match is not None
    return dict(json.loads(match.group(1)))


def test_the_documented_example_loads_with_defaults_merged() -> None:
    routes = {r.name: r for r in parse_routes(documented_example())}

    assert set(routes) == {"jidoteate", "hoiku-drop", "archive"}
    jidoteate = routes["jidoteate"]
    assert (jidoteate.kind, jidoteate.format, jidoteate.my_number_entitled) == ("http", "json", True)
    assert jidoteate.timeouts == Timeouts(connect=5, read=60, write=30, pool=5)
    assert jidoteate.retry == RetryPolicy(max_attempts=12, backoff_base_seconds=60, backoff_cap_seconds=21600)
    assert jidoteate.serves("KOSODATE-JIDOTEATE-NINTEI")
    assert not jidoteate.serves("OTHER")
    drop = routes["hoiku-drop"]
    assert (drop.kind, drop.format, drop.my_number_entitled) == ("file", "xml", False)
    assert routes["archive"].retry.max_attempts == 20
    assert routes["archive"].serves("ANYTHING")


def test_runtime_reads_the_routes_file_named_in_settings(
    settings: IntakeSettings, tmp_path: Path
) -> None:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(documented_example(), ensure_ascii=False), encoding="utf-8")

    runtime = Runtime.from_settings(settings.model_copy(update={"routes_file": path}))

    assert [r.name for r in runtime.routes] == ["jidoteate", "hoiku-drop", "archive"]


def route(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "r1", "procedures": ["P"], "kind": "http", "target": "http://10.0.0.1/x"}
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"routes": [route(my_number_entitiled=True)]}, "unknown keys ['my_number_entitiled']",
                     id="typo-in-key"),
        pytest.param({"routes": [route(kind="ftp")]}, "kind: must be 'http' or 'file'", id="bad-kind"),
        pytest.param({"routes": [route(format="csv")]}, "format: must be 'json' or 'xml'", id="bad-format"),
        pytest.param({"routes": [route(my_number_entitled="yes")]}, "my_number_entitled: must be true or false",
                     id="entitled-not-bool"),
        pytest.param({"routes": [route(name="a b")]}, "name: name must be", id="bad-name"),
        pytest.param({"routes": [route(), route()]}, "route names must be unique: ['r1']", id="duplicate"),
        pytest.param({"routes": [route(procedures=[])]}, "procedures: must be a non-empty list", id="no-procedures"),
        pytest.param({"routes": [route(procedures="P")]}, "procedures: must be a list", id="procedures-not-list"),
        pytest.param({"routes": [{"name": "r1", "kind": "http"}]}, "missing keys ['procedures', 'target']",
                     id="missing-keys"),
        pytest.param({"routes": [route(target="https://10.0.0.1/x")]}, "https needs ca_file", id="https-no-ca"),
        pytest.param({"routes": [route(target="ftp://10.0.0.1/x")]}, "must be an http:// or https:// URL",
                     id="bad-scheme"),
        pytest.param({"routes": [route(target="http://u:p@10.0.0.1/x")]}, "must not carry credentials",
                     id="credentials"),
        pytest.param({"routes": [route(kind="file", target="relative/dir")]}, "must be an absolute directory",
                     id="relative-drop"),
        pytest.param({"routes": [route(timeouts={"read": 0})]}, "timeouts.read: must be a number of seconds",
                     id="zero-timeout"),
        pytest.param({"routes": [route(timeouts={"read": None})]}, "timeouts.read: must be a number of seconds",
                     id="no-timeout"),
        pytest.param({"routes": [route(retry={"jitter": 1.0})]}, "retry.jitter: must be in [0, 1)", id="jitter"),
        pytest.param({"routes": [route(retry={"max_attempts": 0})]}, "retry.max_attempts: must be in 1..100",
                     id="attempts"),
        pytest.param({"routes": [route(retry={"backoff_cap_seconds": 1})]}, "must be >= backoff_base_seconds",
                     id="cap-below-base"),
        pytest.param({"defaults": {"retry": {"tries": 3}}, "routes": []}, "defaults.retry: unknown keys",
                     id="defaults-typo"),
        pytest.param({"route": []}, "unknown keys ['route']", id="top-level-typo"),
    ],
)
def test_bad_configuration_is_refused_with_route_and_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(RouteConfigError) as info:
        parse_routes(config)
    assert message in str(info.value)


def test_errors_name_the_route() -> None:
    with pytest.raises(RouteConfigError) as info:
        parse_routes({"routes": [route(name="jidoteate", retry={"jitter": -0.1})]})
    assert (info.value.route, info.value.field) == ("jidoteate", "retry.jitter")


def test_https_route_with_its_own_ca_bundle(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    config = {"routes": [route(target="https://bs.example.lg.jp/in", ca_file="ca.pem")]}
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(config), encoding="utf-8")

    (loaded,) = load_routes(path)

    assert loaded.ca_file == tmp_path / "ca.pem"
    with pytest.raises(RouteConfigError, match="is not a file"):
        parse_routes({"routes": [route(target="https://bs.example.lg.jp/in", ca_file="missing.pem")]},
                     base_dir=tmp_path)


def test_unreadable_files_are_configuration_errors(tmp_path: Path) -> None:
    assert load_routes(None) == ()
    with pytest.raises(RouteConfigError, match="cannot read"):
        load_routes(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{routes: []}", encoding="utf-8")
    with pytest.raises(RouteConfigError, match="not UTF-8 JSON"):
        load_routes(bad)


def test_route_objects_are_checked_too() -> None:
    with pytest.raises(RouteConfigError):
        Route(name="x", procedures=frozenset({"P"}), kind="http", target="https://10.0.0.1/")


def test_outbox_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(backoff_base_seconds=60, backoff_factor=2, backoff_cap_seconds=600, jitter=0)
    delays = [next_attempt_delay(policy, n, random.Random(0)) for n in range(1, 8)]
    assert delays == [timedelta(seconds=s) for s in (60, 120, 240, 480, 600, 600, 600)]
    assert next_attempt_delay(policy, 10_000, random.Random(0)) == timedelta(seconds=600)  # no overflow


def test_outbox_backoff_jitter_only_shortens_and_follows_the_random_source() -> None:
    policy = RetryPolicy(backoff_base_seconds=100, backoff_cap_seconds=100, jitter=0.2)
    rng, pinned = random.Random(11), random.Random(11)
    for _ in range(50):
        delay = next_attempt_delay(policy, 3, rng).total_seconds()
        assert delay == pytest.approx(100 * (1 - 0.2 * pinned.random()), abs=1e-6)
        assert 80 < delay <= 100


def _state(attempt_number: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt_number
    return state


def test_in_call_waits_are_short_capped_and_none_after_the_last_request() -> None:
    policy = RetryPolicy(in_call_attempts=5, in_call_base_seconds=1, in_call_cap_seconds=3, jitter=0)
    wait = in_call_wait(policy, random.Random(0))
    assert [wait(_state(n)) for n in range(1, 6)] == [1, 2, 3, 3, 0]


def test_drop_file_names_come_from_the_idempotency_key() -> None:
    assert drop_file_name("20261125-0000000001:hoiku-drop", "xml") == "20261125-0000000001%3Ahoiku-drop.xml"
    assert drop_file_name("a/b:c", "json") == "a%2Fb%3Ac.json"  # never a path separator
