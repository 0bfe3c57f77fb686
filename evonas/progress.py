"""When to draw progress bars: the one rule every bar in evonas follows.

A bar is drawn only when the user did not ask for quiet and stderr is a terminal;
a piped or redirected log would otherwise fill with carriage-return updates.
"""

from __future__ import annotations

import sys
from typing import IO


def progress_enabled(quiet: bool = False, stream: IO | None = None) -> bool:
    """True when a progress bar should be drawn on ``stream`` (default stderr)."""
    if quiet:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
