"""``python -m demo [--headless]``: see :mod:`demo.chain`."""

import sys

from demo.chain import main

sys.exit(main())
