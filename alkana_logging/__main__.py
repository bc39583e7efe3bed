"""``python -m alkana_logging``: the ``alkana-logging`` command."""

from __future__ import annotations

from alkana_logging.ops.cli import main

raise SystemExit(main())
