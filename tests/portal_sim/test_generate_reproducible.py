"""Same seed and options → byte-identical data directory; another seed → another one.

The first generation starts from an empty key cache and builds its packages in worker processes;
the second reads every key from that cache and builds in-process: identical bytes show that
neither the cache nor the number of processes reaches the output.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

import portal_sim.generate as generate_module
from portal_sim.generate import GenerateOptions, generate

SMALL = GenerateOptions(start=date(2026, 11, 1), residents=5, applications=20, seed=424242, days=10, defect_rate=0.2)


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data directory, key cache) of the first generation: cold cache, packages built by 2 workers."""
    base = tmp_path_factory.mktemp("repro")
    cache = base / "keys"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generate_module, "_PARALLEL_THRESHOLD", 0)
        generate(base / "first", SMALL, key_cache=cache, jobs=2)
    return base / "first", cache


def test_same_seed_gives_a_byte_identical_directory(first: tuple[Path, Path], tmp_path: Path) -> None:
    data, cache = first
    assert any(cache.iterdir()), "the first run should have filled the key cache"
    generate(tmp_path / "second", SMALL, key_cache=cache, jobs=1)
    a, b = digests(data), digests(tmp_path / "second")
    assert len(a) > SMALL.applications  # packages, JSONL files, manifest, PKI, CRLs
    assert a == b


def test_another_seed_gives_other_keys_people_and_packages(first: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = first
    other = GenerateOptions(start=SMALL.start, residents=3, applications=SMALL.applications, seed=SMALL.seed + 1,
                            days=SMALL.days, defect_rate=SMALL.defect_rate)
    generate(tmp_path / "other", other, key_cache=tmp_path / "keys", jobs=2)
    a, b = digests(data), digests(tmp_path / "other")
    for name in ("applications.jsonl", "residents.jsonl", "pki/jpki-roots/jpki-root-g2.pem", "crl/jpki-root-g2.crl"):
        assert a[name] != b[name], name
    assert not set(a.values()) & {v for k, v in b.items() if k.startswith("packages/")}


def test_a_damaged_cache_entry_is_derived_again_without_changing_the_output(
    first: tuple[Path, Path], tmp_path: Path
) -> None:
    data, cache = first
    damaged = tmp_path / "keys"
    damaged.mkdir()
    for entry in sorted(cache.iterdir()):
        (damaged / entry.name).write_bytes(entry.read_bytes())
    victim = sorted(damaged.iterdir())[0]
    victim.write_bytes(b"not a key")
    generate(tmp_path / "again", SMALL, key_cache=damaged, jobs=1)
    assert digests(tmp_path / "again") == digests(data)
    assert victim.read_bytes() != b"not a key"  # rewritten with the derived key
