"""``python -m intake``: see :mod:`intake.cli`."""

import sys

from intake.cli import main

sys.exit(main())
