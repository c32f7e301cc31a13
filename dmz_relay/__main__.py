"""``python -m dmz_relay``: see :mod:`dmz_relay.cli`."""

import sys

from dmz_relay.cli import main

sys.exit(main())
