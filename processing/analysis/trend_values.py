"""The numbers trended for every histogram of a time slice, and the plugins' extra ones.

Generic values, computed for every histogram (``GENERIC_NAMES``):

- ``mean``, ``std``: mean and standard deviation along x from the in-range bin
  centres, weighted by bin content (by bin entries Σw for profiles, other axes
  summed over their in-range bins), as ``Histogram.mean(0)`` / ``std(0)``;
  NaN for an empty histogram, because a made-up 0 would look like a real
  measurement on a trend;
- ``maximum``: the largest in-range bin content (bin mean for profiles);
- ``entries``: ``Histogram.entries``;
- ``integral``: the in-range sum of contents (Σw for profiles).

A NaN bin content makes that histogram's values NaN (the trend shows a gap).

On the subsystem's events histogram (``SliceContext.events_path``) one more:
``counter_resets``, how many histograms' counters restarted within the slice
(the slice itself shows nothing, processing continues the counts across it).

Why vectorised: processing computes these for every histogram of every
snapshot (a thousand histograms every second). Plain 1D histograms sharing a
bin count, the common case, become the rows of one 2D array (a matrix product
when they also share their binning); other 1D ones go end to end through
``reduceat``; profiles and 2D/3D histograms of one shape are stacked too
(projected on x). About 3 ms for 1,000 TH1 of
100 bins and 20 TH2 maps (``tests/bench/bench_trending.py``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from overwatch.histogram import Histogram
from overwatch.plugins import DetectorPlugin, SliceContext, run_hook

GENERIC_NAMES = ("mean", "std", "maximum", "entries", "integral")

#: Trended on the subsystem's events histogram: counters that restarted within the slice.
RESETS_NAME = "counter_resets"

TrendKey = tuple[str, str]

#: 1D histograms sharing a bin count are stacked into one 2D array when at least this many.
_MIN_STACK = 8


def generic_values(histograms: Mapping[str, Histogram]) -> dict[TrendKey, float]:
    """{(path, value name): value} for every histogram, in input order then ``GENERIC_NAMES``."""
    fast_values: list[np.ndarray] = []
    fast_edges: list[np.ndarray] = []
    by_bins: dict[int, list[int]] = {}
    slow: dict[str, tuple[float, float, float, float]] = {}
    by_shape: dict[tuple, list[tuple[str, Histogram]]] = {}  # profiles, 2D and 3D
    order: list[tuple[str, Histogram, int]] = []  # (path, histogram, fast index or -1)
    for path, histogram in histograms.items():
        if len(histogram.axes) == 1 and not histogram.is_profile:
            index = len(fast_values)
            order.append((path, histogram, index))
            values = histogram.values
            fast_values.append(values)
            fast_edges.append(histogram.axes[0].edges)
            by_bins.setdefault(len(values), []).append(index)
        else:
            order.append((path, histogram, -1))
            shape = (histogram.is_profile, histogram.values.shape)
            by_shape.setdefault(shape, []).append((path, histogram))
    for (profile, shape), group in by_shape.items():
        slow.update(_alike(group, profile, shape))
    means, stds, maxima, integrals = _fast(fast_values, fast_edges, by_bins)

    result: dict[TrendKey, float] = {}
    for path, histogram, index in order:
        if index >= 0:
            mean, std, maximum, integral = (
                means[index],
                stds[index],
                maxima[index],
                integrals[index],
            )
        else:
            mean, std, maximum, integral = slow[path]
        result[(path, "mean")] = mean
        result[(path, "std")] = std
        result[(path, "maximum")] = maximum
        result[(path, "entries")] = float(histogram.entries)
        result[(path, "integral")] = integral
    return result


def _fast(
    values: list[np.ndarray], edges: list[np.ndarray], by_bins: dict[int, list[int]]
) -> list[list[float]]:
    """mean, std, maximum, integral of plain 1D histograms (lists, one item per histogram)."""
    columns = np.empty((4, len(values)))
    if not values:
        return [[], [], [], []]
    rest: list[int] = []
    for positions in by_bins.values():
        if len(positions) < _MIN_STACK:
            rest.extend(positions)
            continue
        chosen = np.asarray(positions)
        columns[:, chosen] = _stacked([values[i] for i in positions], [edges[i] for i in positions])
    if rest:
        rest.sort()
        chosen = np.asarray(rest)
        columns[:, chosen] = _concatenated([values[i] for i in rest], [edges[i] for i in rest])
    return columns.tolist()


class _Scratch(threading.local):
    """Work arrays kept between calls: fresh megabyte-sized arrays every snapshot cost
    more in page faults than the arithmetic on them (one set per thread)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    LIMIT = 1 << 21  # elements (16 MB): bigger work arrays are not kept

    def get(self, name: str, rows: int, columns: int) -> np.ndarray:
        size = rows * columns
        if size > self.LIMIT:
            return np.empty((rows, columns))
        array = self.arrays.get(name)
        if array is None or array.size < size:
            array = self.arrays[name] = np.empty(size)
        return array[:size].reshape(rows, columns)


_scratch = _Scratch()


def _stacked(values: list[np.ndarray], edges: list[np.ndarray]) -> np.ndarray:
    """Histograms with the same bin count as rows of one array: a few passes over it."""
    rows, width = len(values), len(values[0])
    full = _scratch.get("values", rows, width)
    np.concatenate(values, out=full.reshape(-1))
    inner = full[:, 1:-1]
    all_edges = _scratch.get("edges", rows, width - 1)
    np.concatenate(edges, out=all_edges.reshape(-1))
    mean, variance, total = _moments(inner, all_edges)
    return _finish(mean, variance, inner.max(axis=1), total)


def _moments(along_x: np.ndarray, all_edges: np.ndarray) -> tuple[np.ndarray, ...]:
    """mean, variance and sum of rows of in-range weights along x, one row of edges each."""
    rows, width = along_x.shape
    deviation = _scratch.get("deviation", rows, width)
    total = along_x.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if (all_edges == all_edges[0]).all():  # the usual case: one binning, a matrix product
            centres = 0.5 * (all_edges[0, 1:] + all_edges[0, :-1])
            mean = (along_x @ centres) / total
            np.subtract(centres[None, :], mean[:, None], out=deviation)
        else:
            centres = 0.5 * (all_edges[:, 1:] + all_edges[:, :-1])
            mean = np.einsum("ij,ij->i", along_x, centres) / total
            np.subtract(centres, mean[:, None], out=deviation)
        # Deviations from the mean (two passes) so a narrow peak far from 0 keeps its width.
        weighted = np.multiply(along_x, deviation, out=_scratch.get("product", rows, width))
        variance = np.einsum("ij,ij->i", weighted, deviation) / total
    return mean, variance, total


def _alike(
    group: list[tuple[str, Histogram]], profile: bool, shape: tuple[int, ...]
) -> dict[str, tuple[float, float, float, float]]:
    """mean, std, maximum, integral of profiles or 2D/3D histograms of one shape, by path.

    They go as rows of one stacked array (a detector's hundred cell maps cost
    one pass instead of a hundred), in chunks of at most ``_Scratch.LIMIT``
    cells; a histogram bigger than that alone, as a view (never copied).
    """
    chunk = max(1, _Scratch.LIMIT // math.prod(shape))
    found: dict[str, tuple[float, float, float, float]] = {}
    inner = (slice(None),) + (slice(1, -1),) * len(shape)
    for begin in range(0, len(group), chunk):
        part = [h for _, h in group[begin : begin + chunk]]
        if profile:
            weights = _rows([h.bin_entries for h in part])[inner]
            sums = _rows([h.values for h in part])[inner]
            contents = np.divide(sums, weights, out=np.zeros_like(sums), where=weights != 0)
        else:
            weights = contents = _rows([h.values for h in part])[inner]
        along_x = weights.sum(axis=tuple(range(2, weights.ndim))) if weights.ndim > 2 else weights
        edges = _rows([h.axes[0].edges for h in part])
        mean, variance, total = _moments(np.ascontiguousarray(along_x), edges)
        maximum = contents.reshape(len(part), -1).max(axis=1)
        columns = _finish(mean, variance, maximum, total).T.tolist()
        found.update(
            zip(
                (path for path, _ in group[begin : begin + chunk]), map(tuple, columns), strict=True
            )
        )
    return found


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """Arrays of one shape as the rows of one; a single one as a view."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def _concatenated(values: list[np.ndarray], edges: list[np.ndarray]) -> np.ndarray:
    """Histograms of any bin counts end to end in one array, summed with ``reduceat``."""
    lengths = np.fromiter((len(e) for e in edges), dtype=np.intp, count=len(edges))
    starts = np.zeros(len(lengths), dtype=np.intp)
    np.cumsum(lengths[:-1], out=starts[1:])
    overflow = starts + lengths - 1
    # Bins 1..n plus the overflow, whose slot is zeroed: each histogram then owns as many
    # values as its axis has edges, so the centres line up with one pairwise sum.
    weights = np.concatenate([v[1:] for v in values])
    all_edges = np.concatenate(edges)

    contents = weights.copy()
    contents[overflow] = -np.inf
    maximum = np.maximum.reduceat(contents, starts)
    weights[overflow] = 0.0

    centres = np.empty_like(all_edges)
    centres[:-1] = all_edges[:-1] + all_edges[1:]
    centres[:-1] *= 0.5
    centres[-1] = 0.0  # an overflow slot: its weight is 0 (so are the other boundary slots)
    total = np.add.reduceat(weights, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.add.reduceat(weights * centres, starts) / total
        deviation = centres - np.repeat(mean, lengths)
        variance = np.add.reduceat(weights * deviation * deviation, starts) / total
    return _finish(mean, variance, maximum, total)


def _finish(
    mean: np.ndarray, variance: np.ndarray, maximum: np.ndarray, total: np.ndarray
) -> np.ndarray:
    mean[total == 0] = np.nan
    std = np.sqrt(np.maximum(variance, 0.0))  # NaN stays NaN; negative weights can round below 0
    return np.stack([mean, std, maximum, total])


def slice_trend_values(
    histograms: Mapping[str, Histogram],
    plugin: DetectorPlugin | None = None,
    options: Mapping[str, Any] | None = None,
    context: SliceContext | None = None,
) -> tuple[dict[TrendKey, float], list[str]]:
    """Everything trended for one slice: generic values plus the plugin's, and plugin errors.

    The plugin's ``trend_values`` hook runs through ``run_hook``, so a broken
    plugin costs only its own values (its error is returned, one text per
    histogram, for the caller to record). A plugin value named like a generic
    one is refused: the generic meaning must not change from one subsystem to
    the next. ``context`` is required when a plugin is given.
    """
    values = generic_values(histograms)
    errors: list[str] = []
    if context is not None and context.events_path in histograms:
        # A restarted sender leaves no mark on the slice itself (processing continues
        # the counts), so it is trended on the events counter, where checks see it.
        values[(context.events_path, RESETS_NAME)] = float(context.counter_resets)
    # The base class computes nothing: skip a thousand no-op calls per snapshot.
    if plugin is None or type(plugin).trend_values is DetectorPlugin.trend_values:
        return values, errors
    if context is None:
        raise ValueError("slice_trend_values needs the slice context to run a plugin")
    options = options or {}
    for path, histogram in histograms.items():
        extra, error = run_hook(plugin, "trend_values", path, histogram, options, context)
        if error is not None:
            errors.append(f"{path}: {error}")
            continue
        for name, value in (extra or {}).items():
            if name in GENERIC_NAMES or name == RESETS_NAME:
                errors.append(f"{path}: {plugin.name}.trend_values: {name!r} is a generic value")
                continue
            values[(path, name)] = value
    return values, errors
