"""The relay server (連携サーバ) in the DMZ: verify, scan, forward once, erase.

Entry points: :class:`dmz_relay.runtime.Relay` (assembly), :func:`dmz_relay.push.create_app` (HTTP
API), ``python -m dmz_relay`` (:mod:`dmz_relay.cli`). See docs/relay.md.
"""

__version__ = "0.1.0"  # the release; pyproject.toml says the same (tests/test_cli_conventions.py)
