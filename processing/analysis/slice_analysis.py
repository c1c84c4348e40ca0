"""One time slice through the detector plugin, trending and checks: what every view holds.

The live pipeline (each new snapshot's latest slice) and the view service
(:mod:`processing.slices.service`: the whole run, the latest slice and any
on-demand interval) all go through :func:`analyse_slice`, so a page shows
exactly the derived histograms, stacks, groups, annotations, trend values and
qualities the shifter's alarms were computed from, whichever way it was asked.

The rules every caller shares are here once:

- :func:`slice_context`: a slice's interval and events. A slice from the run
  start has no known start: its interval is empty (``start == end``), so it has
  no rates; its events are the entries of the events histogram
  (:func:`overwatch.plugins.events_path`) in the slice.
- :func:`plugin_groups`: the page's groups (``plugin.grouped``), never losing
  a histogram a plugin forgot.
- stacks keep only the members the slice holds; a stack named like a
  histogram is refused with an error.

Every plugin hook runs through :func:`overwatch.plugins.run_hook`: a plugin that
raises costs only its own output; the error text is collected in
``SliceAnalysis.errors`` for the caller to record, and the raw slice is still
served.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from overwatch.histogram import Histogram
from overwatch.lru import LRU
from overwatch.plugins import (
    OTHER_GROUP,
    DefaultPlugin,
    DetectorPlugin,
    SliceContext,
    StackSpec,
    run_hook,
)
from overwatch.quality import Quality, worst
from processing.analysis.checks.engine import CheckEngine, EvaluationResult
from processing.analysis.trend_store import TrendKey
from processing.analysis.trend_values import slice_trend_values

#: Plugin errors kept per slice (a plugin failing on every histogram says so once per path).
MAX_ERRORS = 20
#: The class name a stack is listed with beside the histograms.
STACK_CLASS = "THStack"


@dataclass
class SliceAnalysis:
    """What one slice yields beyond its raw histograms (plain data but for the histograms)."""

    histograms: dict[str, Histogram]  # raw slice plus the plugin's derived histograms
    derived: list[str] = field(default_factory=list)  # paths the plugin added
    stacks: dict[str, StackSpec] = field(default_factory=dict)  # members held by the slice
    groups: dict[str, list[str]] = field(default_factory=dict)  # raw, derived and stacks
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)  # non-empty ones
    trend_values: dict[TrendKey, float] = field(default_factory=dict)
    evaluation: EvaluationResult | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def quality(self) -> str:
        return self.evaluation.subsystem_quality.value if self.evaluation else Quality.NULL.value

    def group_qualities(self) -> dict[str, str]:
        """Rolled-up quality per group, in the page's group order (others after, by name)."""
        if self.evaluation is None:
            return {}
        order = {group: rank for rank, group in enumerate(self.groups)}
        per_group = self.evaluation.per_group
        ranked = sorted(per_group, key=lambda g: (order.get(g, len(order)), g.lower()))
        return {group: per_group[group].value for group in ranked}

    def histogram_qualities(self) -> dict[str, str]:
        """The worst quality any check gave each histogram (its trends included); read-only."""
        return self._histogram_qualities

    @functools.cached_property
    def _histogram_qualities(self) -> dict[str, str]:
        found: dict[str, list[Quality]] = {}
        for result in self.evaluation.results if self.evaluation else ():
            found.setdefault(result.path, []).append(result.quality)
        return {path: worst(qualities).value for path, qualities in found.items()}

    def check_results(self) -> list[dict[str, Any]]:
        return [result.to_dict() for result in self.evaluation.results] if self.evaluation else []

    @functools.cached_property
    def checks_by_histogram(self) -> dict[str, list[dict[str, Any]]]:
        """Check results by histogram path (computed once: pages ask per drawing)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for result in self.check_results():
            found.setdefault(result["histogram"], []).append(result)
        return found

    def qualities(self) -> dict[str, Any]:
        return {
            "subsystem": self.quality,
            "groups": self.group_qualities(),
            "histograms": self.histogram_qualities(),
        }

    def capped_errors(self) -> tuple[str, ...]:
        unique = list(dict.fromkeys(self.errors))
        if len(unique) <= MAX_ERRORS:
            return tuple(unique)
        return (*unique[:MAX_ERRORS], f"... and {len(unique) - MAX_ERRORS} more error(s)")


def slice_context(
    run: int,
    subsystem: str,
    start: float | None,
    end: float,
    histograms: Mapping[str, Histogram],
    events_path: str,
    counter_resets: int = 0,
) -> SliceContext:
    """The one rule for a slice's interval and events (see the module docs).

    ``counter_resets``: how many histograms' counters restarted within the slice
    (:func:`processing.ingest.resets.reset_paths`).
    """
    counter = histograms.get(events_path)
    return SliceContext(
        run,
        subsystem,
        end if start is None else start,
        end,
        float(counter.entries) if counter is not None else 0.0,
        histograms,
        events_path,
        counter_resets,
    )


def _plugin_overrides(plugin: DetectorPlugin, hook: str) -> bool:
    """Skip hooks the plugin does not override: a thousand no-op calls per slice add up."""
    return getattr(type(plugin), hook) is not getattr(DetectorPlugin, hook)


def derive(
    histograms: Mapping[str, Histogram],
    plugin: DetectorPlugin,
    options: Mapping[str, Any],
    context: SliceContext,
) -> tuple[dict[str, Histogram], list[str], list[str]]:
    """The slice plus the plugin's derived histograms, the derived paths, and hook errors."""
    everything = dict(histograms)
    if not _plugin_overrides(plugin, "derived"):
        return everything, [], []
    derived, error = run_hook(plugin, "derived", histograms, options, context)
    errors = [error] if error else []  # run_hook's text names the plugin and the hook
    added = [path for path in (derived or {}) if path not in everything]
    for path in added:
        everything[path] = derived[path]
    return everything, added, errors


def annotate(
    histograms: Mapping[str, Histogram],
    plugin: DetectorPlugin,
    options: Mapping[str, Any],
    context: SliceContext,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per-histogram information and decorations shown beside each plot, as plain data.

    Empty annotations are left out; one that cannot be converted is an error.
    """
    if not _plugin_overrides(plugin, "annotate"):
        return {}, []
    annotations: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for path, histogram in histograms.items():
        note, error = run_hook(plugin, "annotate", path, histogram, options, context)
        if error:
            errors.append(f"{path}: {error}")
        elif note is not None and (note.info or note.decorations or note.values):
            try:
                annotations[path] = note.to_dict()
            except (TypeError, ValueError) as bad:  # e.g. a value that is not a number
                errors.append(f"{path}: {plugin.name}.annotate: invalid annotation: {bad}")
    return annotations, errors


def stacks(
    plugin: DetectorPlugin, histograms: Mapping[str, Histogram]
) -> tuple[dict[str, StackSpec], list[str]]:
    """The plugin's stacks with the members this slice holds (stacks without any are dropped)."""
    if not _plugin_overrides(plugin, "stacks"):
        return {}, []
    specs, error = run_hook(plugin, "stacks", list(histograms))
    errors = [error] if error else []
    found: dict[str, StackSpec] = {}
    for spec in specs or ():
        if spec.name in histograms:
            errors.append(f"stack {spec.name!r} has the name of a histogram")
            continue
        members = tuple(path for path in spec.members if path in histograms)
        if members:
            found[spec.name] = dataclasses.replace(spec, members=members)
    return found, errors


def plugin_groups(plugin: DetectorPlugin, paths: Iterable[str]) -> tuple[dict, str | None]:
    """({group: paths}, hook error) of the page: ``plugin.grouped``, first directories if it fails.

    A path the plugin's groups lose goes to "Other": a plugin must not hide a histogram.
    Remembered per plugin and set of paths (it rarely changes from one slice to the next);
    the groups returned are shared: read them, never change them.
    """
    paths = tuple(paths)
    key = (id(plugin), plugin.name, paths)
    found = _GROUPS.get(key)
    if found is None:
        found = _grouped(plugin, paths)
        _GROUPS.put(key, found)
    return found


_GROUPS: LRU = LRU(64)


def _grouped(plugin: DetectorPlugin, paths: tuple[str, ...]) -> tuple[dict, str | None]:
    groups, error = run_hook(plugin, "grouped", list(paths))
    if error or not isinstance(groups, dict):
        groups = DefaultPlugin().grouped(paths)
    groups = {name: list(members) for name, members in groups.items()}
    listed = {path for members in groups.values() for path in members}
    missing = [path for path in paths if path not in listed]
    if missing:
        groups.setdefault(OTHER_GROUP, []).extend(missing)
    return groups, error


def analyse_slice(
    histograms: Mapping[str, Histogram],
    plugin: DetectorPlugin,
    options: Mapping[str, Any],
    context: SliceContext,
    *,
    engine: CheckEngine | None = None,
    trends: Mapping | Callable[[dict[TrendKey, float]], Mapping | None] | None = None,
    with_trends: bool = True,
    objects: Sequence[str] = (),
) -> SliceAnalysis:
    """Derived histograms, stacks, groups, annotations, trend values and qualities of one slice.

    ``options`` must already be validated against ``plugin.options``.
    ``trends`` is what trend checks read (``TrendStore.window(n)``, which
    should already hold this slice's point); without it only histogram checks
    give a quality and trend checks say Null. The live pipeline passes a
    function instead: it gets this slice's trend values (after they are
    computed, before any check runs), stores them and returns the window, so
    the checks see the point of the slice they judge. ``objects`` are the paths of
    the slice's other objects (graphs, functions...): grouped with the histograms.
    """
    everything, added, errors = derive(histograms, plugin, options, context)
    context = dataclasses.replace(context, histograms=everything)
    stacked, stack_errors = stacks(plugin, everything)
    errors.extend(stack_errors)
    groups, group_error = plugin_groups(plugin, [*everything, *stacked, *objects])
    if group_error:
        errors.append(group_error)
    annotations, annotate_errors = annotate(everything, plugin, options, context)
    errors.extend(annotate_errors)
    values: dict[TrendKey, float] = {}
    if with_trends:
        values, trend_errors = slice_trend_values(everything, plugin, options, context)
        errors.extend(trend_errors)
    if callable(trends):
        trends = trends(values)
    evaluation = None
    if engine is not None:
        evaluation = engine.evaluate(
            context.run, context.subsystem, everything, trends or {}, plugin.group_of, context
        )
    return SliceAnalysis(
        histograms=everything,
        derived=added,
        stacks=stacked,
        groups=groups,
        annotations=annotations,
        trend_values=values,
        evaluation=evaluation,
        errors=errors,
    )
