"""What a subsystem's detector plugin adds to the web view of the whole run or latest slice.

Derived histograms and stacks are computed on request from the cumulative
content or the latest slice (``processing.analysis.slice_analysis.derive``, the same code
as the live pipeline) and kept per process in a small LRU keyed by the
subsystem's version, so they are computed once per new snapshot, not per
request. Display settings (``plugin.display``) are remembered per
``(subsystem, path, class)``: what a plot looks like does not change from one
snapshot to the next.

Plugin options are those the plugin declares; pages and the display API pass
them as query parameters. The plugin's ``transform`` (e.g. EMC's
``scale_by_events``) changes only what is shown: :func:`shown_histogram`.

The slice context of a view: the latest slice runs from the previous snapshot
to the newest one; the whole run from the first snapshot to the newest one
(the time before the first snapshot is unknown). Events are the entries of
the subsystem's events histogram (``processing.events_histogram``) in that view.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from overwatch.histogram import Histogram, dimension_of
from overwatch.plugins import (
    DefaultPlugin,
    DetectorPlugin,
    Display,
    SliceContext,
    StackSpec,
    load_plugin,
    run_hook,
)
from processing.analysis.slice_analysis import derive
from processing.slices.reader import UnknownHistogram
from webapp.context import Resources
from webapp.groups import OTHER, group_histograms

log = logging.getLogger(__name__)

VIEWS = ("cumulative", "latest")
STACK_CLASS = "THStack"


@dataclass
class PluginResults:
    """Derived histograms and stacks of one view (whole run or latest slice) at one version."""

    derived: dict[str, Histogram] = field(default_factory=dict)
    stacks: dict[str, StackSpec] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    context: SliceContext | None = None


def overrides(plugin: DetectorPlugin, hook: str) -> bool:
    """Whether the plugin implements a hook (the base class's hooks do nothing)."""
    return getattr(type(plugin), hook) is not getattr(DetectorPlugin, hook)


def has_plugin(plugin: DetectorPlugin) -> bool:
    return not isinstance(plugin, DefaultPlugin)


def draw_option(display: Display) -> str:
    """A JSROOT draw option: the plugin's option plus its log axes ("colz;logz")."""
    parts = [display.draw_option.strip()]
    parts += [axis for axis in ("logx", "logy", "logz") if getattr(display, axis)]
    return ";".join(part for part in parts if part)


class LRU:
    """A small thread-safe least-recently-used mapping."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class PluginViews:
    """Per-process plugin results for the web app (see the module documentation)."""

    def __init__(self, resources: Resources, results: int = 32, displays: int = 100_000) -> None:
        self._resources = resources
        self._results = LRU(results)
        self._displays = LRU(displays)

    # -- slices ----------------------------------------------------------------------
    def events_path(self, subsystem: str, plugin: DetectorPlugin) -> str:
        configured = self._resources.settings.processing.events_histogram
        return configured.get(subsystem, plugin.events_histogram)

    def view_histograms(
        self, run: int, subsystem: str, view: str, paths: list[str] | None = None
    ) -> tuple[dict[str, Histogram], SliceContext]:
        """Histograms of a view (all, or ``paths`` of the raw ones) and the view's slice context."""
        if view not in VIEWS:
            raise ValueError(f"slice must be one of {', '.join(VIEWS)}, got {view!r}")
        reader = self._resources.reader
        plugin = load_plugin(subsystem)
        times = reader.snapshot_times(run, subsystem)
        end = times[-1]
        base = times[-2] if view == "latest" and len(times) > 1 else None
        start = base if base is not None else times[0]
        events = self.events_path(subsystem, plugin)
        known = {path for path, _ in reader.histogram_paths(run, subsystem)}
        wanted = None if paths is None else [p for p in dict.fromkeys(paths) if p in known]
        if wanted is not None and events in known and events not in wanted:
            wanted.append(events)
        histograms = reader.slice_between(run, subsystem, base, end, wanted)
        counter = histograms.get(events)
        n_events = float(counter.entries) if counter is not None else 0.0
        if paths is not None:
            histograms = {p: histograms[p] for p in paths if p in histograms}
        context = SliceContext(run, subsystem, start, end, n_events, histograms)
        return histograms, context

    # -- derived histograms and stacks --------------------------------------------------
    def results(self, run: int, subsystem: str, view: str) -> PluginResults:
        """Derived histograms and stacks of a view, computed once per subsystem version."""
        plugin = load_plugin(subsystem)
        if not (overrides(plugin, "derived") or overrides(plugin, "stacks")):
            return PluginResults()
        version = self._resources.histograms.version(run, subsystem)
        key = (run, subsystem, view, version)
        found = self._results.get(key)
        if found is None:
            found = self._compute(run, subsystem, view, plugin)
            self._results.put(key, found)
        return found

    def _compute(
        self, run: int, subsystem: str, view: str, plugin: DetectorPlugin
    ) -> PluginResults:
        result = PluginResults()
        histograms, context = self.view_histograms(run, subsystem, view)
        result.context = context
        if overrides(plugin, "derived"):
            everything, added, errors = derive(histograms, plugin, {}, context)
            result.derived = {path: everything[path] for path in added}
            result.errors.extend(errors)
        if overrides(plugin, "stacks"):
            paths = [*histograms, *result.derived]
            specs, error = run_hook(plugin, "stacks", paths)
            if error:
                result.errors.append(error)
            taken = set(paths)
            for spec in specs or ():
                if spec.name in taken:
                    result.errors.append(f"stack {spec.name!r} has the name of a histogram")
                    continue
                result.stacks[spec.name] = spec
        for error in result.errors:
            log.warning("run %d %s (%s): plugin: %s", run, subsystem, view, error)
        return result

    def extra_paths(self, run: int, subsystem: str) -> list[tuple[str, str]]:
        """(path, class) of the derived histograms and stacks of the whole run, after the raw ones."""
        found = self.results(run, subsystem, "cumulative")
        pairs = [(path, h.class_name) for path, h in found.derived.items()]
        pairs += [(name, STACK_CLASS) for name in found.stacks]
        return pairs

    def derived_histogram(self, run: int, subsystem: str, path: str, view: str) -> Histogram:
        found = self.results(run, subsystem, view).derived.get(path)
        if found is None:
            raise UnknownHistogram(
                f"no histogram {path!r} in run {run} {subsystem}, neither in the snapshot "
                "nor derived by the detector plugin"
            )
        return found

    def stack(self, run: int, subsystem: str, name: str, view: str) -> tuple[StackSpec, list]:
        """A stack's spec and its members in this view (members missing from it are left out)."""
        found = self.results(run, subsystem, view)
        spec = found.stacks.get(name)
        if spec is None:
            known = ", ".join(found.stacks) or "none"
            raise UnknownHistogram(f"no stack {name!r} in run {run} {subsystem} (stacks: {known})")
        raw = [p for p in spec.members if p not in found.derived]
        histograms, _ = self.view_histograms(run, subsystem, view, raw) if raw else ({}, None)
        members = [
            histograms.get(path) or found.derived.get(path)
            for path in spec.members
            if path in histograms or path in found.derived
        ]
        if not members:
            raise UnknownHistogram(f"stack {name!r} has no member in run {run} {subsystem}")
        return spec, members

    # -- display ---------------------------------------------------------------------
    def display(
        self,
        run: int,
        subsystem: str,
        path: str,
        class_name: str,
        histogram: Callable[[], Histogram] | None = None,
    ) -> Display:
        """How the plugin wants a histogram drawn (remembered per subsystem, path and class)."""
        plugin = load_plugin(subsystem)
        if class_name == STACK_CLASS:
            spec = self.results(run, subsystem, "cumulative").stacks.get(path)
            if spec is None:
                return Display()
            return Display(draw_option=spec.draw_option, logx=spec.logx, logy=spec.logy)
        key = (subsystem, path, class_name)
        found = self._displays.get(key)
        if found is not None:
            return found
        if not overrides(plugin, "display"):
            found = default_display(class_name)
        else:
            try:
                h = histogram() if histogram is not None else self._any(run, subsystem, path)
            except LookupError:
                return default_display(class_name)
            found, error = run_hook(plugin, "display", path, h)
            if error:
                log.warning("run %d %s: %s", run, subsystem, error)
        self._displays.put(key, found)
        return found

    def _any(self, run: int, subsystem: str, path: str) -> Histogram:
        try:
            return self._resources.reader.cumulative(run, subsystem, path)
        except UnknownHistogram:
            return self.derived_histogram(run, subsystem, path, "cumulative")

    # -- transform -------------------------------------------------------------------
    def shown_histogram(
        self, run: int, subsystem: str, path: str, view: str, options: Mapping[str, Any]
    ) -> tuple[Histogram, str | None]:
        """The histogram as the plugin shows it with ``options`` (validated), and any hook error."""
        plugin = load_plugin(subsystem)
        derived = self.results(run, subsystem, view).derived
        raw_paths = [] if path in derived else [path]
        histograms, context = self.view_histograms(run, subsystem, view, raw_paths)
        histogram = derived.get(path) if path in derived else histograms.get(path)
        if histogram is None:
            raise UnknownHistogram(f"no histogram {path!r} in run {run} {subsystem} ({view})")
        if not overrides(plugin, "transform"):
            return histogram, None
        shown, error = run_hook(plugin, "transform", path, histogram, options, context)
        return (shown if shown is not None else histogram), error


def default_display(class_name: str) -> Display:
    """What the base plugin shows without a histogram at hand: 2D classes as ``colz``."""
    try:
        ndim = dimension_of(class_name)
    except ValueError:
        ndim = 1
    return Display(draw_option="colz" if ndim == 2 else "")


def group_pairs(plugin: DetectorPlugin, pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The plugin's groups of ``(path, class)`` pairs; the web default without a plugin."""
    pairs = list(pairs)
    if not has_plugin(plugin):
        return group_histograms(pairs)
    groups, error = run_hook(plugin, "grouped", [path for path, _ in pairs])
    if error:
        log.warning("grouping by the %s plugin failed, using directories: %s", plugin.name, error)
        return group_histograms(pairs)
    listed = {path for paths in groups.values() for path in paths}
    missing = [path for path, _ in pairs if path not in listed]
    if missing:  # a plugin that loses histograms must not hide them
        groups.setdefault(OTHER, []).extend(missing)
    return groups
