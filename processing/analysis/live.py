"""The analysis stage of the live pipeline: plugin, trends and checks of each new latest slice.

For each snapshot the pipeline processes, the slice it ends (this cumulative
minus the previous one) goes through :func:`processing.analysis.slice_analysis.analyse_slice`,
the function on-demand slices use too, with:

- the subsystem's plugin found by name (:func:`overwatch.plugins.load_plugin`)
  and its default options;
- a :class:`~overwatch.plugins.SliceContext` whose interval is (previous
  snapshot, this snapshot) and whose events are the entries of the events
  histogram in the slice. The first slice of a run has no known start: its
  interval is empty (``start == end``), so it has no event rate;
- the checks loaded once when processing starts (:func:`load_engine`).

Trend protocol (see :mod:`processing.analysis.trending`): the slice's values are
appended to the (run, subsystem) :class:`TrendStore` at the snapshot's time
*before* the checks run and before the snapshot's record is committed, so the
checks see this point, and a crash before the commit reprocesses the snapshot
and replaces the point. When a chain is opened, points later than the last
committed snapshot (left by such a crash, or a database restored from a backup)
are rewound, so the store and the database always agree. ``db rebuild`` opens
each store with ``rebuild=True``; a late snapshot rewinds the store to its time
and the pipeline appends it and every later point again.

Isolation: plugin hooks run through ``run_hook`` (a failing hook costs only its
own output); anything else that fails in the analysis is caught here too. The
errors become :attr:`LatestResults.plugin_errors`, written to
``Subsystem.plugin_errors``; the slice itself is processed and stored as usual.
Only writing a trend point may fail the snapshot (a full disk): it is then
retried by the next pass like any other write.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from overwatch.config import ProcessingSettings
from overwatch.histogram import Histogram
from overwatch.plugins import (
    DetectorPlugin,
    events_path,
    load_errors,
    load_plugin,
    validate_options,
)
from processing.analysis.checks import DEFAULT_CHECKS_FILE, CheckEngine, EvaluationResult
from processing.analysis.slice_analysis import analyse_slice, slice_context
from processing.analysis.trending import TrendStore, trend_dir
from processing.ingest.cache_layout import Layout
from processing.ingest.objects import is_part

log = logging.getLogger(__name__)

Key = tuple[int, str]

#: Trend points read per series for the checks, at least (non-finite points are skipped).
MIN_WINDOW = 16
#: The shortest slice there is: snapshot names tell time to the second.
MIN_SLICE_SECONDS = 1.0


def load_engine(checks_file: str | Path | None = None) -> CheckEngine:
    """The checks of ``checks_file`` ("" or None: ``config/checks.yaml``), validated.

    Raises :class:`processing.analysis.checks.CheckConfigError` naming the file, line and key.
    """
    return CheckEngine.from_file(checks_file or DEFAULT_CHECKS_FILE)


def window_size(engine: CheckEngine | None) -> int:
    """Points per trend the checks may need: the largest ``n`` of any check, with room for gaps.

    A check over a time window (``seconds``, ``history_seconds``) may need one point
    per :data:`MIN_SLICE_SECONDS` of it.
    """
    largest, timed = 2, 0
    pending = [d.spec for d in engine.definitions] if engine is not None else []
    while pending:
        spec = pending.pop()
        pending.extend(spec.children)
        n = spec.params.get("n")
        if isinstance(n, int):
            largest = max(largest, n)
        span = float(spec.params.get("seconds", 0)) + float(spec.params.get("history_seconds", 0))
        timed = max(timed, math.ceil(span / MIN_SLICE_SECONDS) + 2)
    return max(MIN_WINDOW, 2 * largest, timed)


def slice_histograms(
    layout: Layout, eff: np.ndarray, before: np.ndarray, incompatible: Mapping[str, str]
) -> dict[str, Histogram]:
    """This cumulative minus the previous one (laid out alike), as histograms by path.

    Histograms whose binning changed (``incompatible``) have no slice and are
    left out, as in :class:`processing.slices.reader.SliceReader`.
    """
    content = layout.subtract(eff, before)  # fresh: plugins never see the cache's own buffers
    return {
        entry.path: entry.unpack(layout.block(content, i))
        for i, entry in enumerate(layout.entries)
        if entry.path not in incompatible and not is_part(entry.path)  # parts: of objects
    }


@dataclass
class LatestResults:
    """What the analysis of one slice writes to its Subsystem (plain data)."""

    timestamp: float  # end of the slice
    quality: str = "Null"
    group_qualities: dict[str, str] = field(default_factory=dict)
    check_results: tuple[dict, ...] = ()
    annotations: dict[str, dict] = field(default_factory=dict)
    plugin_errors: tuple[str, ...] = ()
    evaluation: EvaluationResult | None = None

    @classmethod
    def of(cls, timestamp: float, analysis) -> LatestResults:
        """What a slice's analysis (``SliceAnalysis``) writes to its Subsystem."""
        results = cls(
            timestamp,
            annotations=analysis.annotations,
            plugin_errors=analysis.capped_errors(),
            evaluation=analysis.evaluation,
        )
        if analysis.evaluation is not None:
            results.quality = analysis.quality
            results.group_qualities = analysis.group_qualities()
            results.check_results = tuple(analysis.check_results())
        return results


class LiveAnalysis:
    """Plugins, trend stores and checks for the pipeline of one data directory."""

    def __init__(
        self,
        data_dir: str | Path,
        settings: ProcessingSettings,
        engine: CheckEngine | None = None,
        *,
        rebuild_trends: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.engine = engine
        self.window = window_size(engine)
        self.rebuild_trends = rebuild_trends
        self._stores: dict[Key, TrendStore | None] = {}
        self._rebuilt: set[Key] = set()
        self._options: dict[int, dict[str, Any]] = {}
        self._failed: set[tuple[str, str]] = set()

    # -- trend stores ---------------------------------------------------------------
    def open(self, key: Key, committed: Sequence[float]) -> TrendStore | None:
        """The writable trend store of a chain, agreeing with its committed snapshots.

        None for a subsystem name that cannot name a folder safely (it is then
        processed and checked without trends).
        """
        try:
            directory = trend_dir(self.data_dir, *key)
        except ValueError as error:
            log.warning("Run%d/%s: no trends: %s", *key, error)
            self._stores[key] = None
            return None
        rebuild = self.rebuild_trends and key not in self._rebuilt
        store = TrendStore(directory, fsync=self.settings.cache_fsync, rebuild=rebuild)
        self._rebuilt.add(key)
        last = store.last_time()
        newest = committed[-1] if len(committed) else None
        if last is not None and (newest is None or last > newest):
            # Points of snapshots never committed (a crash between the two writes).
            store.rewind(-math.inf if newest is None else math.nextafter(newest, math.inf))
        self._stores[key] = store
        return store

    def store(self, key: Key) -> TrendStore | None:
        if key not in self._stores:
            raise KeyError(f"trend store of Run{key[0]}/{key[1]} not opened")
        return self._stores[key]

    def forget(self, key: Key) -> None:
        """Drop the store of a chain the pipeline dropped (reopened, and checked, on next use)."""
        self._stores.pop(key, None)

    def rewind(self, key: Key, timestamp: float) -> None:
        """Delete the points at and after ``timestamp`` (a late snapshot is appended next)."""
        store = self.store(key)
        if store is not None:
            store.rewind(timestamp)

    # -- one slice ------------------------------------------------------------------
    def analyse(
        self,
        run: int,
        subsystem: str,
        start: float | None,
        end: float,
        histograms: Mapping[str, Histogram],
        *,
        evaluate: bool = True,
        counter_resets: int = 0,
    ) -> LatestResults:
        """Plugin, trend point (stored) and, with ``evaluate``, checks of one slice.

        ``counter_resets``: histograms whose counters restarted within the slice.
        """
        store = self.store((run, subsystem))
        engine = self.engine if evaluate else None
        window = self.window

        def record(values: dict) -> Mapping | None:
            if store is None:
                return None
            try:
                store.append(end, values)
                return store.window(window) if engine is not None else None
            except Exception as error:
                raise _TrendWriteError(error) from error

        errors: list[str] = []
        if subsystem in load_errors:
            errors.append(load_errors[subsystem])
        try:
            plugin = load_plugin(subsystem)
            events = events_path(plugin, self.settings.events_histogram, subsystem)
            context = slice_context(run, subsystem, start, end, histograms, events, counter_resets)
            analysis = analyse_slice(
                histograms,
                plugin,
                self._plugin_options(plugin),
                context,
                engine=engine,
                trends=record,
            )
        except _TrendWriteError as error:
            raise error.__cause__ from None
        except Exception as error:  # never lose the snapshot to a bug in the analysis
            once = (subsystem, type(error).__name__)
            if once not in self._failed:
                self._failed.add(once)
                log.exception("Run%d/%s: analysis of the slice failed", run, subsystem)
            errors.append(f"analysis failed: {type(error).__name__}: {error}")
            return LatestResults(end, plugin_errors=tuple(errors))
        analysis.errors[:0] = errors
        return LatestResults.of(end, analysis)

    def _plugin_options(self, plugin: DetectorPlugin) -> dict[str, Any]:
        options = self._options.get(id(plugin))
        if options is None:
            options, problems = validate_options(plugin.options, {})
            if problems:  # only a plugin whose own defaults are invalid
                log.error("plugin %s: invalid default options: %s", plugin.name, problems)
            self._options[id(plugin)] = options
        return options


class _TrendWriteError(Exception):
    """Carries a failure to store a trend point out of the analysis (it fails the snapshot)."""
