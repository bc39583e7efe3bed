"""``alkana_logging.presets`` is :mod:`alkana_logging.ops.presets`, the same module object.

The LogQL presets live in the ops toolkit; this name stays for the code that imports it. The
module replaces itself in ``sys.modules``, so ``alkana_logging.presets.X`` is
``alkana_logging.ops.presets.X``; type checkers read the star import.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alkana_logging.ops.presets import *  # noqa: F403
else:
    from alkana_logging.ops import presets as _presets

    sys.modules[__name__] = _presets
