"""Trending speed: values of a slice, appending a row, reading the last points and a series.

Figures (``run()``), medians on this machine:

- ``trend_values_ms``: ``generic_values`` of 1,000 TH1F of 100 bins, 20 TH2F
  48×24 maps and 10 TProfile (target <= 10 ms);
- ``trend_append_ms``: ``TrendStore.append`` of one 5,000-column row, no fsync
  (target <= 2 ms);
- ``trend_last10_ms``: ``TrendStore.last(path, name, 10)`` on a store of
  3,600 rows × 5,000 columns (target <= 5 ms);
- ``trend_window_100_ms``: reading the last 10 points of 100 series through
  ``TrendStore.window`` (what a check pass does);
- ``trend_series_ms``: a whole 3,600-point series of that store;
- ``trend_open_read_ms``: a new read-only store object and that series (a web
  request; the parsed layout is cached per process);
- ``trend_open_writer_ms``: a new writable store object (checks the tail rows).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from overwatch.histogram import Axis, Histogram
from processing.analysis.trending import TrendStore, generic_values

T0 = 1_767_225_600.0
ROWS = 3600
HISTOGRAMS = 1000  # × 5 generic values = 5,000 columns


def _histograms(rng: np.random.Generator) -> dict[str, Histogram]:
    made: dict[str, Histogram] = {}
    for i in range(HISTOGRAMS):
        h = Histogram.empty(f"SM{i // 50:02d}/amplitude {i}", [Axis.regular(100, 0, 10)], "TH1F")
        h.fill(rng.normal(5, 1.5, 300))
        made[h.name] = h
    for i in range(20):
        axes = [Axis.regular(48, 0, 48), Axis.regular(24, 0, 24)]
        h = Histogram.empty(f"maps/SM{i:02d}", axes, "TH2F")
        h.fill(rng.uniform(0, 48, 2000), rng.uniform(0, 24, 2000))
        made[h.name] = h
    for i in range(10):
        h = Histogram.empty(f"profiles/p{i}", [Axis.regular(50, 0, 10)], "TProfile")
        h.fill(rng.uniform(0, 10, 500), y=rng.normal(size=500))
        made[h.name] = h
    return made


def _median_ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def run() -> dict[str, float]:
    rng = np.random.default_rng(11)
    histograms = _histograms(rng)
    figures = {"trend_values_ms": _median_ms(lambda: generic_values(histograms), 50)}

    first = dict(list(histograms.items())[:HISTOGRAMS])
    values = generic_values(first)
    keys = list(values)
    base = np.fromiter(values.values(), dtype=np.float64)
    with tempfile.TemporaryDirectory() as tmp:
        store = TrendStore(Path(tmp) / "trends")
        append_times = []
        for row in range(ROWS):
            numbers = base + row
            row_values = dict(zip(keys, numbers.tolist(), strict=True))
            started = time.perf_counter()
            store.append(T0 + row, row_values)
            append_times.append(time.perf_counter() - started)
        figures["trend_append_ms"] = statistics.median(append_times) * 1e3
        path, name = keys[len(keys) // 2]
        times, _ = store.last(path, name, 10)
        assert times.size == 10 and times[-1] == T0 + ROWS - 1
        figures["trend_last10_ms"] = _median_ms(lambda: store.last(path, name, 10), 200)
        wanted = keys[:: len(keys) // 100][:100]

        def window() -> None:
            trends = store.window(10)
            for key in wanted:
                trends[key]

        figures["trend_window_100_ms"] = _median_ms(window, 20)
        figures["trend_series_ms"] = _median_ms(lambda: store.series(path, name), 20)
        directory = store.directory
        figures["trend_open_read_ms"] = _median_ms(
            lambda: TrendStore(directory, readonly=True).series(path, name), 20
        )
        figures["trend_open_writer_ms"] = _median_ms(lambda: TrendStore(directory), 5)
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
