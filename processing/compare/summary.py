"""Roll results up per directory: counts per status, worst first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from processing.compare.results import STATUS_ORDER, ComparisonResult, Status


def directory_of(path: str) -> str:
    """The directory holding a histogram path ("" at the top of the file)."""
    return path.rsplit("/", 1)[0] if "/" in path else ""


def parent_of(directory: str) -> str | None:
    if not directory:
        return None
    return directory.rsplit("/", 1)[0] if "/" in directory else ""


@dataclass
class DirectorySummary:
    """One directory: its own results and the counts of everything below it."""

    path: str
    counts: Counter = field(default_factory=Counter)
    results: list[ComparisonResult] = field(default_factory=list)
    subdirectories: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def worst(self) -> Status:
        for status in STATUS_ORDER:
            if self.counts.get(status):
                return status
        return Status.SUCCESS

    def sort_key(self) -> tuple:
        """Worst first: by worst status, then by how many of each bad status, then name."""
        return (
            -self.worst.severity,
            *(-self.counts.get(s, 0) for s in STATUS_ORDER[:-1]),
            self.path,
        )


def worst_first(results: Iterable[ComparisonResult]) -> list[ComparisonResult]:
    return sorted(results, key=lambda r: (-r.status.severity, r.pvalue or 0.0, r.path, r.test))


def rollup(results: Iterable[ComparisonResult]) -> dict[str, DirectorySummary]:
    """Summaries of every directory holding results (and its parents), by path."""
    summaries: dict[str, DirectorySummary] = {"": DirectorySummary("")}
    for result in results:
        directory = directory_of(result.path)
        summary = summaries.setdefault(directory, DirectorySummary(directory))
        summary.results.append(result)
        current: str | None = directory
        while current is not None:
            node = summaries.setdefault(current, DirectorySummary(current))
            node.counts[result.status] += 1
            parent = parent_of(current)
            if parent is not None:
                parent_node = summaries.setdefault(parent, DirectorySummary(parent))
                if current not in parent_node.subdirectories:
                    parent_node.subdirectories.append(current)
            current = parent
    for summary in summaries.values():
        summary.results = worst_first(summary.results)
        summary.subdirectories.sort(key=lambda d: summaries[d].sort_key())
    return summaries


def ordered(summaries: dict[str, DirectorySummary]) -> list[DirectorySummary]:
    """Every directory, worst first."""
    return sorted(summaries.values(), key=DirectorySummary.sort_key)


def totals(results: Iterable[ComparisonResult]) -> Counter:
    return Counter(result.status for result in results)
