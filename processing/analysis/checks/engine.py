"""Running the configured checks on one time slice of one subsystem.

Processing calls :meth:`CheckEngine.evaluate` for every snapshot of every
subsystem, with up to about a thousand histograms, so selection is done once:
patterns are compiled at load time and the list of checks that apply to a
(subsystem, path) is cached (histogram paths rarely change within a run).

A check whose ``trend`` is set runs where its trend exists or where its
histogram is in the slice (a missing trend then shows as Null with the
reason, instead of the check silently vanishing). A histogram check runs
where the histogram is in the slice. A check that raises is reported as Null
("check failed: ...") and logged once per check and path: one broken check
never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from overwatch.histogram import Histogram
from overwatch.plugins import SliceContext
from overwatch.quality import Quality, roll_up, worst
from processing.analysis.checks.config import CheckDefinition, CheckSpec, load_checks, parse_checks
from processing.analysis.checks.library import Outcome, all_of, any_of

log = logging.getLogger(__name__)

Trends = Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]

#: Cached selections per subsystem before the cache is dropped (paths churning without end).
_MAX_CACHED_PATHS = 100_000


@dataclass(frozen=True)
class CheckResult:
    """The quality one check gave one target (a histogram, or one of its trends)."""

    check: str
    subsystem: str
    path: str
    trend: str | None
    group: str
    quality: Quality
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subsystem": self.subsystem,
            "histogram": self.path,
            "trend": self.trend,
            "group": self.group,
            "quality": self.quality.value,
            "message": self.message,
        }


@dataclass
class EvaluationResult:
    """All check results of one slice, rolled up per group and for the subsystem."""

    run: int
    subsystem: str
    results: list[CheckResult] = field(default_factory=list)
    per_group: dict[str, Quality] = field(default_factory=dict)
    subsystem_quality: Quality = Quality.NULL

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "subsystem": self.subsystem,
            "quality": self.subsystem_quality.value,
            "groups": {group: quality.value for group, quality in self.per_group.items()},
            "results": [result.to_dict() for result in self.results],
        }


def run_spec(
    spec: CheckSpec,
    path: str,
    histogram: Histogram | None,
    trends: Trends,
) -> Outcome:
    """Evaluate one check node (recursively for all/any) on one histogram path."""
    if spec.children:
        labelled = [
            (child.label, run_spec(child, path, histogram, trends)) for child in spec.children
        ]
        outcome = all_of(labelled) if spec.kind.name == "all" else any_of(labelled)
        if outcome.quality is Quality.BAD and spec.on_fail is Quality.MEDIUM:
            return Outcome(Quality.MEDIUM, outcome.message)
        return outcome
    if spec.trend is not None:
        series = trends.get((path, spec.trend))
        if series is None:
            return Outcome(Quality.NULL, f"no trend '{spec.trend}' for this histogram")
        assert spec.kind.trend is not None  # the config loader guarantees it
        return spec.kind.trend(series, on_fail=spec.on_fail, **spec.params)
    if histogram is None:
        return Outcome(Quality.NULL, "histogram not in this slice")
    assert spec.kind.histogram is not None
    return spec.kind.histogram(histogram, on_fail=spec.on_fail, **spec.params)


def too_little(
    minimum: Mapping[str, float], histogram: Histogram | None, context: SliceContext | None
) -> Outcome | None:
    """Null when the slice holds less than a check's ``minimum`` (None: enough to decide)."""
    if not minimum:
        return None
    held = {
        "events": context.n_events if context is not None else None,
        "seconds": context.duration if context is not None else None,
        "entries": float(histogram.entries) if histogram is not None else None,
    }
    for what, least in minimum.items():
        value = held[what]
        if value is None or value < least:
            shown = "unknown" if value is None else f"{value:.4g}"
            return Outcome(
                Quality.NULL, f"not enough data for a decision: {what} {shown} < {least:g}"
            )
    return None


class CheckEngine:
    """The validated checks of one checks file, ready to evaluate slices."""

    def __init__(self, definitions: Sequence[CheckDefinition], source: str = "") -> None:
        self._definitions = tuple(definitions)
        self.source = source
        self._by_subsystem: dict[str, tuple[CheckDefinition, ...]] = {}
        self._selection: dict[str, dict[str, tuple[CheckDefinition, ...]]] = {}
        self._trend_names = frozenset().union(*(d.trend_names for d in self._definitions))
        self._reported: set[tuple[str, str]] = set()

    @classmethod
    def from_file(cls, path: str | Path) -> CheckEngine:
        """Load and validate a checks file; raises ``CheckConfigError(file, line, key, message)``."""
        definitions = load_checks(path)
        log.info("loaded %d check(s) from %s", len(definitions), path)
        return cls(definitions, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<checks>") -> CheckEngine:
        return cls(parse_checks(text, source), source)

    @property
    def definitions(self) -> tuple[CheckDefinition, ...]:
        return self._definitions

    def __len__(self) -> int:
        return len(self._definitions)

    def checks_for(self, subsystem: str) -> tuple[CheckDefinition, ...]:
        """The checks whose subsystem selector matches (cached)."""
        found = self._by_subsystem.get(subsystem)
        if found is None:
            found = tuple(d for d in self._definitions if d.applies_to_subsystem(subsystem))
            self._by_subsystem[subsystem] = found
        return found

    def selected(self, subsystem: str, path: str) -> tuple[CheckDefinition, ...]:
        """The checks whose selectors match this histogram path (cached)."""
        cache = self._selection.get(subsystem)
        if cache is None or len(cache) > _MAX_CACHED_PATHS:
            cache = self._selection[subsystem] = {}
        found = cache.get(path)
        if found is None:
            found = tuple(d for d in self.checks_for(subsystem) if d.selects(path))
            cache[path] = found
        return found

    def evaluate(
        self,
        run: int,
        subsystem: str,
        histograms: Mapping[str, Histogram],
        trends: Trends,
        group_of: Callable[[str], str],
        context: SliceContext | None = None,
    ) -> EvaluationResult:
        """Run every applicable check on one slice; results in path, then file, order.

        ``context`` (the slice's duration and events) lets a check's ``minimum``
        say Null when the slice holds too little data for a decision.
        """
        evaluation = EvaluationResult(run, subsystem)
        if not self.checks_for(subsystem):
            return evaluation
        paths: list[str] = list(histograms)
        if trends:
            only_trended = {
                p for p, name in trends if name in self._trend_names
            } - histograms.keys()
            paths.extend(sorted(only_trended))
        results = evaluation.results
        for path in paths:
            definitions = self.selected(subsystem, path)
            if not definitions:
                continue
            histogram = histograms.get(path)
            group: str | None = None
            for definition in definitions:
                if histogram is None and not any(
                    (path, name) in trends for name in definition.trend_names
                ):
                    continue
                outcome = too_little(definition.minimum, histogram, context)
                if outcome is None:
                    outcome = self._run(definition, path, histogram, trends)
                if definition.group is not None:
                    target_group = definition.group
                else:
                    if group is None:
                        group = self._group(group_of, path, subsystem)
                    target_group = group
                results.append(
                    CheckResult(
                        definition.name,
                        subsystem,
                        path,
                        definition.trend,
                        target_group,
                        outcome.quality,
                        outcome.message,
                    )
                )
        evaluation.per_group = roll_up((r.group, r.quality) for r in results)
        evaluation.subsystem_quality = worst(evaluation.per_group.values())
        return evaluation

    def _run(
        self, definition: CheckDefinition, path: str, histogram: Histogram | None, trends: Trends
    ) -> Outcome:
        try:
            return run_spec(definition.spec, path, histogram, trends)
        except Exception as exc:  # one broken check must not stop the others
            if (definition.name, path) not in self._reported:
                self._reported.add((definition.name, path))
                log.exception("check %s failed on %s", definition.name, path)
            return Outcome(Quality.NULL, f"check failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _group(group_of: Callable[[str], str], path: str, subsystem: str) -> str:
        try:
            return group_of(path)
        except Exception:  # a plugin bug must not hide the check results
            log.exception("group_of(%r) failed; using the subsystem name", path)
            return subsystem
