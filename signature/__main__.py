"""``python -m signature``: see :mod:`signature.cli`."""

import sys

from signature.cli import main

sys.exit(main())
