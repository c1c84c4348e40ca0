"""Which group a histogram is shown in on the run page.

Until detector plugins define their own groups, a histogram belongs to the
group named by the first directory of its path (``"EMCal/SM00/cellHits"`` ->
``"EMCal"``); histograms at the top level of the file go to ``"Other"``.
A plugin hook replaces :data:`grouping` (one function of the path and class).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from overwatch.plugins import OTHER_GROUP as OTHER
from overwatch.plugins import first_directory

Grouping = Callable[[str, str], str]


def by_first_directory(path: str, class_name: str = "") -> str:
    """The default grouping: first path component, or "Other" for top-level histograms."""
    return first_directory(path)


#: The grouping in force; replaced by the detector plugins' hook when they define groups.
grouping: Grouping = by_first_directory


def set_grouping(function: Grouping | None) -> None:
    """Install a plugin's grouping function (``None`` restores the default)."""
    global grouping
    grouping = function or by_first_directory


def group_histograms(histograms: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group ``(path, class_name)`` pairs: {group: [paths in the given order]}.

    Groups come out by name, with "Other" last, so the page is stable.
    """
    groups: dict[str, list[str]] = {}
    for path, class_name in histograms:
        groups.setdefault(grouping(path, class_name) or OTHER, []).append(path)
    return dict(sorted(groups.items(), key=lambda item: (item[0] == OTHER, item[0].lower())))
