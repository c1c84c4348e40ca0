"""The one glob rule for histogram paths (checks, layouts).

A pattern is a shell-style glob matched against the WHOLE path, case-sensitively:
``*`` matches any text, ``/`` included (``EMCal/SM*/cellHits`` and ``EMCal/*``
both reach ``EMCal/SM03/cellHits``), ``?`` one character, ``[...]`` a set. A
pattern without any of ``*?[`` is a plain path and matches only itself.
"""

from __future__ import annotations

import fnmatch
import re

__all__ = ["compile_glob", "is_glob"]

_SPECIAL = frozenset("*?[")


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression of ``pattern``; use ``fullmatch`` (or ``match``: it is anchored)."""
    return re.compile(fnmatch.translate(pattern))


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` can match more than one path."""
    return not _SPECIAL.isdisjoint(pattern)
