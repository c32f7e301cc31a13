"""Every random choice of the simulator comes from here: named, seeded, reproducible generators.

Each part of a generation (population, stream, one package's content…) draws from its own
generator, derived from the run's seed and the part's name, so that changing one part does not
shift the numbers every other part sees. ``random.Random`` seeded with a string hashes it with
SHA-512 (not Python's per-process ``hash()``), so the sequence is the same in every process.
"""

from __future__ import annotations

import random

__all__ = ["rng_for"]


def rng_for(seed: int, *names: object) -> random.Random:
    """The generator for the part ``names`` of the run with ``seed``."""
    label = "/".join(["portal_sim", str(seed), *map(str, names)])
    return random.Random(label)  # noqa: S311 - reproducible synthetic data, never secrets
