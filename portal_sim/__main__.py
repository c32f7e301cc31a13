"""``python -m portal_sim``: see :mod:`portal_sim.cli`."""

from portal_sim.cli import main

raise SystemExit(main())
