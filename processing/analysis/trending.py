"""Trending: values per histogram and time slice, kept on disk, served as JSROOT graphs.

The pieces (this module is the one to import):

- :func:`generic_values` / :func:`slice_trend_values` (``processing.analysis.trend_values``):
  the numbers of one slice, ``{(histogram path, value name): value}``;
- :class:`TrendStore` (``processing.analysis.trend_store``): the points of one run's
  subsystem, in chunk files under :func:`trend_dir`;
- :func:`run_history`: one value run after run; :func:`trend_json`: a TGraph
  with a UTC time axis for JSROOT.

How processing uses it (one writable store per (run, subsystem), kept with
the subsystem's chain; the web and other processes open ``readonly=True``)::

    store = TrendStore(trend_dir(data_dir, run, subsystem), fsync=settings.cache_fsync)
    values, errors = slice_trend_values(slice_histograms, plugin, options, context)
    store.append(snapshot_time, values)     # BEFORE committing the snapshot's record:
                                            # a crash then reprocesses it, and the
                                            # same time replaces the point
    outcome = engine.evaluate(run, subsystem, slice_histograms, store.window(n), group_of)

A late snapshot (older than the last point): ``store.rewind(late_time)``, then
append the late slice's values and those of every later snapshot again, in time
order. ``db rebuild``: open each store with ``rebuild=True`` (or delete the
``trends`` folders) before reprocessing; appending in time order recreates the
same series. The ZODB keeps no trend points at all.

Time is always unix seconds (UTC) of the slice's end, never a point index:
the x axis of every graph is a time axis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from overwatch import names
from overwatch.jsroot import trend_graph
from overwatch.store.layout import TREND_DIR, DataDir
from processing.analysis.trend_store import ABSENT, TrendStore, TrendStoreError, TrendWindow
from processing.analysis.trend_values import GENERIC_NAMES, generic_values, slice_trend_values

__all__ = [
    "ABSENT",
    "GENERIC_NAMES",
    "TREND_DIR",
    "TrendStore",
    "TrendStoreError",
    "TrendWindow",
    "generic_values",
    "run_history",
    "slice_trend_values",
    "trend_dir",
    "trend_json",
]

log = logging.getLogger(__name__)


def trend_dir(data_dir: str | Path, run: int, subsystem: str) -> Path:
    """``<data>/cache/Run<run>/<SYS>/trends``; refuses names that could leave the data dir.

    Raises ``overwatch.names.InvalidName`` (a ValueError) for a bad run or subsystem.
    """
    return DataDir(data_dir).trend_dir(run, subsystem)


def trended_runs(data_dir: str | Path, subsystem: str) -> list[int]:
    """Runs with a trend folder for this subsystem, ascending."""
    data = DataDir(data_dir)
    names.check_subsystem(subsystem)
    return [run for run in data.cache_runs() if data.trend_dir(run, subsystem).is_dir()]


def run_history(
    data_dir: str | Path,
    subsystem: str,
    path: str,
    name: str,
    runs: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, values, run numbers) of one value across runs, in time order.

    ``runs=None`` reads every run with trends for the subsystem. A run without
    that value contributes nothing. Points are ordered by time (a stable sort,
    so runs that do not overlap simply follow each other).
    """
    selected = trended_runs(data_dir, subsystem) if runs is None else sorted(set(runs))
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    numbers: list[np.ndarray] = []
    for run in selected:
        t, v = TrendStore(trend_dir(data_dir, run, subsystem), readonly=True).series(path, name)
        if t.size:
            times.append(t)
            values.append(v)
            numbers.append(np.full(t.size, run, dtype=np.int64))
    if not times:
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
    all_times = np.concatenate(times)
    order = np.argsort(all_times, kind="stable")
    return all_times[order], np.concatenate(values)[order], np.concatenate(numbers)[order]


def time_format_for(times: Sequence[float] | np.ndarray) -> str:
    """A label format that suits the time span (JSROOT refines it when zooming in)."""
    finite = np.asarray(times, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    if span <= 600:
        return "%H:%M:%S"
    if span <= 2 * 86400:
        return "%H:%M"
    if span <= 60 * 86400:
        return "%d/%m %H:%M"
    return "%Y-%m-%d"


def trend_json(
    times: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    name: str,
    title: str,
    y_title: str = "",
    time_format: str | None = None,
) -> dict:
    """A JSROOT TGraph of a trend: x = unix times on a UTC time axis; NaN/inf points dropped."""
    return trend_graph(
        name,
        title,
        times,
        values,
        y_title=y_title,
        time_format=time_format or time_format_for(times),
    )
