"""One time slice through the detector plugin, trending and checks.

The live pipeline (each new snapshot's latest slice) and on-demand slices
requested from the browser both go through :func:`analyse_slice`, so a slice
asked for by an expert shows exactly the decorations, information, trend values
and qualities the shifter saw for the live data.

Every plugin hook runs through :func:`overwatch.plugins.run_hook`: a plugin that
raises costs only its own output; the error text is collected in
``SliceAnalysis.errors`` for the caller to record, and the raw slice is still
served.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from overwatch.histogram import Histogram
from overwatch.plugins import Annotation, DetectorPlugin, SliceContext, run_hook
from processing.analysis.checks.engine import CheckEngine, EvaluationResult
from processing.analysis.trend_store import TrendKey
from processing.analysis.trending import slice_trend_values


@dataclass
class SliceAnalysis:
    """What one slice yields beyond its raw histograms."""

    histograms: dict[str, Histogram]  # raw slice plus the plugin's derived histograms
    derived: list[str] = field(default_factory=list)  # paths the plugin added
    annotations: dict[str, Annotation] = field(default_factory=dict)
    trend_values: dict[TrendKey, float] = field(default_factory=dict)
    evaluation: EvaluationResult | None = None
    errors: list[str] = field(default_factory=list)

    def annotations_as_dicts(self) -> dict[str, dict[str, Any]]:
        return {path: note.to_dict() for path, note in self.annotations.items()}


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
) -> tuple[dict[str, Annotation], list[str]]:
    """Per-histogram information and decorations shown beside each plot."""
    if not _plugin_overrides(plugin, "annotate"):
        return {}, []
    annotations: dict[str, Annotation] = {}
    errors: list[str] = []
    for path, histogram in histograms.items():
        note, error = run_hook(plugin, "annotate", path, histogram, options, context)
        if error:
            errors.append(f"{path}: {error}")
        elif note is not None:
            annotations[path] = note
    return annotations, errors


def analyse_slice(
    histograms: Mapping[str, Histogram],
    plugin: DetectorPlugin,
    options: Mapping[str, Any],
    context: SliceContext,
    *,
    engine: CheckEngine | None = None,
    trends: Mapping | Callable[[dict[TrendKey, float]], Mapping | None] | None = None,
    with_trends: bool = True,
) -> SliceAnalysis:
    """Derived histograms, annotations, trend values and check qualities of one slice.

    ``options`` must already be validated against ``plugin.options``.
    ``trends`` is what trend checks read (``TrendStore.window(n)``, which
    should already hold this slice's point); without it only histogram checks
    give a quality and trend checks say Null. The live pipeline passes a
    function instead: it gets this slice's trend values (after they are
    computed, before any check runs), stores them and returns the window, so
    the checks see the point of the slice they judge.
    """
    everything, added, errors = derive(histograms, plugin, options, context)
    context = dataclasses.replace(context, histograms=everything)
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
            context.run, context.subsystem, everything, trends or {}, plugin.group_of
        )
    return SliceAnalysis(
        histograms=everything,
        derived=added,
        annotations=annotations,
        trend_values=values,
        evaluation=evaluation,
        errors=errors,
    )
