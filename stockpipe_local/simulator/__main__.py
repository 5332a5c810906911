"""``python -m stockpipe_local.simulator``."""

from stockpipe_local.simulator.cli import main

raise SystemExit(main())
