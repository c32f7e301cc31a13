"""``python -m dmz_relay``: see :mod:`dmz_relay.cli`."""

import sys

try:
    from dmz_relay.cli import main

    code = main()
except ImportError as exc:
    # signature.libxml2.LibxmlMismatch (lxml and xmlsec on different libxml2) or xmlsec missing: one
    # clear line instead of a traceback. Other import errors are bugs and keep their traceback.
    if exc.name != "xmlsec":
        raise
    sys.exit(f"dmz_relay: cannot start: {exc}")
sys.exit(code)
