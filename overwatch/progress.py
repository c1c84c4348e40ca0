"""Progress bars of long commands (``db rebuild``, ``compare``): one way to make them.

tqdm on stderr, so a command's output on stdout stays clean for scripts. By
default a bar shows only when stderr is a terminal (tqdm's ``disable=None``):
under supervisord, cron, CI or a pipe nothing is written. ``enabled`` forces
it on (True) or off (False).
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm

FALLBACK_SIZE = (80, 24)


def progress_bar(
    total: int | None,
    description: str,
    unit: str,
    *,
    enabled: bool | None = None,
    file: TextIO | None = None,
) -> tqdm:
    """A bar of ``total`` ``unit``s; use as a context manager and ``update(n)``."""
    stream = file if file is not None else sys.stderr
    fixed = _fixed_size(stream)
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=stream,
        disable=None if enabled is None else not enabled,
        ncols=fixed[0] if fixed else None,
        nrows=fixed[1] if fixed else None,
        dynamic_ncols=fixed is None,
        mininterval=0.5,  # a few redraws a second at most: it must not slow the work
        leave=True,
    )


def _fixed_size(stream: TextIO) -> tuple[int, int] | None:
    """None: the bar follows the terminal's size. A terminal that reports no size (a
    bare pseudo-terminal: ``docker exec -t``, ``script``) would get no bar: 80 x 24."""
    try:
        return None if os.get_terminal_size(stream.fileno()).columns else FALLBACK_SIZE
    except (AttributeError, OSError, ValueError):  # not a terminal (a file, a pipe)
        return None
