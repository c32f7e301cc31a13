"""Issue 17 §6: the operations documentation — English (the reference) and the Japanese 運用手順書 —
names only commands, options, make targets, settings and metrics that exist.

Commands and make targets are read from code (inline spans and fenced blocks); each command is
walked through the real argparse tree (sub-commands, then every ``--option`` named after them).
``SHINSEI_*`` names are read from the whole text and resolved against the pydantic settings classes
(``__`` descends into a nested model); a settings table under a prefix (``SHINSEI_INTAKE_`` …) is
resolved with it. Metric names are checked against what the services register.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import demo.chain
import dmz_relay.cli
import intake.cli
import portal_sim.cli
import signature.cli
from dmz_relay.settings import RelaySettings
from intake.metrics import METRIC_NAMES
from intake.settings import IntakeSettings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "operations.md", ROOT / "docs" / "運用手順書.md"]
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "intake": intake.cli.parser,
    "dmz_relay": dmz_relay.cli._parser,
    "portal_sim": portal_sim.cli.build_parser,
    "demo": demo.chain.parser,
    "signature": signature.cli._parser,
}
SETTINGS: dict[str, type[BaseModel]] = {"SHINSEI_INTAKE_": IntakeSettings, "SHINSEI_RELAY_": RelaySettings}
#: Read outside the settings classes, on purpose: the demo's and the deploy check's folders.
OTHER_SETTINGS = {"SHINSEI_VAR_DIR": ROOT / "Makefile", "SHINSEI_SCREENSHOT_DIR": ROOT / "Makefile"}

_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")
_COMMAND = re.compile(r"python3? -m (\w+)([^\n]*)")
# Where a command's words end: code punctuation, a comment, or Japanese prose around it.
_END = re.compile(r"[`#|;()（）、。「」]|&&|…|\.\.\.")
#: Not ours: Python's own modules an installation step names.
_OTHERS = {"venv", "pip"}
_MAKE = re.compile(r"(?<![\w-])make ([a-z][a-z-]*)")
_SETTING = re.compile(r"\bSHINSEI_[A-Z0-9_]+")
_PREFIX = re.compile(r"`(SHINSEI_[A-Z_]+?_)(?:…|\*|<[A-Z]+>)?`")
_METRIC = re.compile(r"\b(?:intake|relay)_[a-z]+(?:_[a-z]+){1,}")


def _code(text: str) -> Iterator[str]:
    """Every line of code: fenced blocks line by line, inline spans (one may wrap a line)."""
    for block in _FENCE.findall(text):
        yield from block.splitlines()
    for span in _SPAN.findall(_FENCE.sub("", text)):
        yield span.replace("\n", " ")


def _commands(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in _code(text):
        for module, rest in _COMMAND.findall(line):
            words = _END.split(rest, maxsplit=1)[0].split()
            if (ROOT / module).is_dir() or module not in _OTHERS:
                yield module, [w.strip("[]") for w in words if w.strip("[]")]


def _check_command(module: str, words: list[str]) -> str | None:
    """Why ``python -m module words…`` is not a command of ours, or None."""
    if module not in PARSERS:
        ours = (ROOT / module / "__main__.py").exists()
        return f"{module}'s command line is not checked here" if ours else f"no command line called {module}"
    parser = PARSERS[module]()
    rest = list(words)
    while rest and not rest[0].startswith("-"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            break  # a positional argument (a file, a 受付番号 …)
        if rest[0] not in subs[0].choices:
            return f"{rest[0]!r} is not a sub-command (choices: {', '.join(subs[0].choices)})"
        parser = subs[0].choices[rest.pop(0)]
    options = {s for a in parser._actions for s in a.option_strings}
    unknown = [w.split("=")[0] for w in rest if w.startswith("--") and w.split("=")[0] not in options]
    return f"no option {', '.join(unknown)}" if unknown else None


def _field(model: type[BaseModel], name: str) -> bool:
    outer, _, inner = name.partition("__")
    field = model.model_fields.get(outer)
    if field is None:
        return False
    if not inner:
        return True
    nested = field.annotation
    return isinstance(nested, type) and issubclass(nested, BaseModel) and _field(nested, inner)


def _check_setting(name: str) -> str | None:
    for prefix, model in SETTINGS.items():
        if name.startswith(prefix):
            return None if _field(model, name.removeprefix(prefix).lower()) else f"{model.__name__} has no such field"
    if name in OTHER_SETTINGS:
        return None if name in OTHER_SETTINGS[name].read_text(encoding="utf-8") else "not read anywhere"
    return "not a setting of any service"


def _settings(text: str) -> Iterator[str]:
    """Full names anywhere, and the bare names of a settings table under a prefix (``SHINSEI_INTAKE_``)."""
    for name in _SETTING.findall(text):
        if not name.endswith("_"):  # a prefix (``SHINSEI_INTAKE_*``), not a name
            yield name
    for section in re.split(r"^#+ ", text, flags=re.MULTILINE):
        prefix = None
        for line in section.splitlines():
            if found := _PREFIX.findall(line):
                prefix = found[-1]
            elif prefix and line.startswith("| `"):
                first_cell = line.split("|")[1]
                for bare in re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell):
                    yield bare if bare.startswith("SHINSEI_") else prefix + bare


def _relay_metrics() -> set[str]:
    # Every metric the relay constructs, wherever (metrics.py; the CRL collector in crls.py).
    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "dmz_relay").glob("*.py")))
    names = set(re.findall(r'(?:Counter|Gauge|Histogram|GaugeMetricFamily|CounterMetricFamily)\(\s*"(relay_[a-z_]+)"',
                           source))
    return names | {f"{n}_total" for n in names}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_named_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    commands = list(_commands(text))
    assert len(commands) >= 15  # the parser found them (a broken pattern must not pass vacuously)
    wrong = {f"python -m {m} {' '.join(w)}": why for m, w in commands if (why := _check_command(m, w))}
    assert not wrong, wrong


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_make_target_named_exists(doc: Path) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    named = {t for line in _code(doc.read_text(encoding="utf-8")) for t in _MAKE.findall(line)}
    assert named  # deploy-check and audit at least
    assert named <= targets, named - targets


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_setting_named_exists(doc: Path) -> None:
    names = set(_settings(doc.read_text(encoding="utf-8")))
    assert len(names) >= 10
    wrong = {name: why for name in sorted(names) if (why := _check_setting(name))}
    assert not wrong, wrong


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_metric_named_exists(doc: Path) -> None:
    known = set(METRIC_NAMES) | _relay_metrics()
    # three words at least: a metric is <service>_<thing>_<unit or kind>; `intake_channel` is a readyz key
    named = {m for line in _code(doc.read_text(encoding="utf-8")) for m in _METRIC.findall(line)}
    assert any(m.startswith("intake_") for m in named)
    assert named <= known, named - known


def test_the_japanese_manual_covers_what_the_issue_asks() -> None:
    text = (ROOT / "docs" / "運用手順書.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    for topic in ("導入", "コンテナ", "systemd", "設定", "鍵", "失効リスト", "監視", "日次・週次", "バックアップと復元",
                  "障害対応", "連携サーバが停止", "申請管理システムが停止", "失効リストの期限", "メールが送信できない",
                  "ディスクが一杯", "改ざん", "更新手順"):
        assert any(topic in h for h in headings), topic
    assert "operations.md" in text  # English stays the reference
    assert all(m in text for m in METRIC_NAMES if m != "intake_metrics_scrape_errors_total")


def test_the_checks_catch_what_does_not_exist() -> None:
    """The checker itself: names that do not exist are reported."""
    assert _check_command("intake", ["keys", "rotate", "--batch", "5"]) is None
    assert _check_command("intake", ["keys", "rotate", "--size", "5"]) == "no option --size"
    assert _check_command("intake", ["db", "migrate"]) is not None
    assert _check_command("dmz_relay", ["retry", "20261125-0000000123"]) is None
    assert _check_command("nosuch", []) is not None
    assert _check_setting("SHINSEI_INTAKE_UI__COOKIE_SECURE") is None
    assert _check_setting("SHINSEI_INTAKE_UI__COOKIE_SECURED") is not None
    assert _check_setting("SHINSEI_INTAKE_COOKIE_SECURE") is not None
    assert _check_setting("SHINSEI_RELAY_OPS_PORT") is None
    assert _check_setting("SHINSEI_INTAKE_OPS_PORT") is not None
    assert list(_commands("`python -m intake keys retire-check m1`（古い鍵）")) == [
        ("intake", ["keys", "retire-check", "m1"])]
    assert set(_settings("## s\nSettings (`SHINSEI_INTAKE_UI__…`):\n\n| `TRUSTED_PROXIES` | x |\n")) == {
        "SHINSEI_INTAKE_UI__TRUSTED_PROXIES"}
