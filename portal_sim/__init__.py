"""A stand-in for the national portal (マイナポータル) as the ward's systems see it.

* ``python -m portal_sim generate`` — a reproducible synthetic population of 港区, their JPKI-TEST
  certificates, and a stream of signed application packages (good and deliberately defective) in
  a data directory (:mod:`portal_sim.datadir`, the contract with the API);
* ``python -m portal_sim linkage`` — the 番号紐付情報 CSV (certificate serial → 宛名番号) that the
  resident register would give the intake (:mod:`portal_sim.linkage`);
* ``python -m portal_sim serve`` — the portal's receiving API over a data directory
  (:mod:`portal_sim.api`).

Test and demo tooling only: everything in it is synthetic, and its keys are test keys. It may
import :mod:`signature` (for the test PKI and package builder) and nothing else of ours.
See docs/portal-sim.md and docs/portal-api.md.
"""

__version__ = "0.1.0"  # the release; pyproject.toml says the same (tests/test_cli_conventions.py)
