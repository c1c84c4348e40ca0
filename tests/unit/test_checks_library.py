"""Every check function on crafted histograms and trends, Null cases included."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from overwatch.quality import Quality
from processing.analysis.checks import library as lib
from processing.analysis.checks.kinds import KINDS

G, M, B, N = Quality.GOOD, Quality.MEDIUM, Quality.BAD, Quality.NULL


def hist1d(contents: list[float], low: float = 0.0, high: float | None = None) -> Histogram:
    """A TH1D whose in-range bins hold ``contents`` (bin width 1 from ``low`` by default)."""
    n = len(contents)
    h = Histogram.empty("h", [Axis.regular(n, low, low + n if high is None else high)])
    h.values[1:-1] = contents
    h.entries = float(sum(contents))
    return h


def series(*values: float) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(len(values), dtype=float) * 60.0, np.array(values, dtype=float)


# --------------------------------------------------------------------------- histogram checks


def test_bins_above_threshold_counts_in_range_bins_only() -> None:
    h = hist1d([1, 50, 2, 80, 3])
    h.values[0] = 1000.0  # underflow and overflow never count
    h.values[-1] = 1000.0
    assert lib.bins_above_threshold(h, threshold=10, max_bins=2).quality is G
    outcome = lib.bins_above_threshold(h, threshold=10, max_bins=1)
    assert outcome.quality is B and "bins above 10 = 2 > 1" in outcome.message
    assert lib.bins_above_threshold(h, threshold=10, max_bins=1, max_bins_medium=2).quality is M
    assert lib.bins_above_threshold(h, threshold=2, max_bins=1, max_bins_medium=2).quality is B
    assert lib.bins_above_threshold(h, threshold=10, max_bins=0, on_fail=M).quality is M
    # "above" is strict: content equal to the threshold is not counted
    assert lib.bins_above_threshold(h, threshold=80, max_bins=0).quality is G


def test_bins_above_threshold_on_2d_and_profile() -> None:
    h = Histogram.empty("cells", [Axis.regular(4, 0, 4), Axis.regular(3, 0, 3)], "TH2F")
    h.fill(np.array([0.5] * 30 + [2.5] * 5), np.array([1.5] * 30 + [0.5] * 5))
    assert lib.bins_above_threshold(h, threshold=10, max_bins=1).quality is G
    assert lib.bins_above_threshold(h, threshold=4, max_bins=1).quality is B

    p = Histogram.empty("p", [Axis.regular(3, 0, 3)], "TProfile")
    p.fill(np.array([0.5, 0.5, 1.5, 2.5]), y=np.array([10.0, 30.0, 5.0, 100.0]))
    # profile bins are compared by their mean (20, 5, 100), not their sum of y
    outcome = lib.bins_above_threshold(p, threshold=15, max_bins=1)
    assert outcome.quality is B and "= 2" in outcome.message


def test_histogram_checks_are_null_on_an_empty_slice() -> None:
    empty = hist1d([0, 0, 0])
    outcome = lib.bins_above_threshold(empty, threshold=1, max_bins=0)
    assert outcome.quality is N and "min_entries=1" in outcome.message
    assert lib.histogram_mean(empty, low=0, high=10).quality is N
    assert lib.histogram_rms(empty, low=0, high=10).quality is N
    # counting statistics are checked on an empty slice: a silent detector must show up
    silent = lib.histogram_between_values(empty, value="entries", low=1, high=np.inf)
    assert silent.quality is B and "entries = 0 outside" in silent.message
    few = hist1d([1, 1, 0])
    assert lib.bins_above_threshold(few, threshold=5, max_bins=0, min_entries=3).quality is N
    assert lib.bins_above_threshold(few, threshold=5, max_bins=0, min_entries=2).quality is G


def test_mean_and_rms_in_a_window_with_medium_range() -> None:
    h = hist1d([0, 10, 0, 10, 0])  # centres 1.5 and 3.5: mean 2.5, rms 1.0
    assert lib.histogram_mean(h, low=2, high=3).quality is G
    assert lib.histogram_rms(h, low=0.9, high=1.1).quality is G
    outcome = lib.histogram_mean(h, low=3, high=4)
    assert outcome.quality is B and "mean = 2.5 outside [3, 4]" in outcome.message
    assert lib.histogram_mean(h, low=3, high=4, medium_low=2).quality is M
    assert lib.histogram_rms(h, low=2, high=3, medium_low=0.5, medium_high=3).quality is M
    assert lib.histogram_rms(h, low=2, high=3, medium_low=1.5).quality is B


def test_mean_along_y_and_missing_axis_is_null() -> None:
    h = Histogram.empty("h2", [Axis.regular(2, 0, 2), Axis.regular(10, 0, 10)], "TH2D")
    h.fill(np.full(20, 0.5), np.full(20, 7.5))
    assert lib.histogram_mean(h, low=7, high=8, axis=1).quality is G
    assert lib.histogram_mean(h, low=7, high=8, axis=0).quality is B
    outcome = lib.histogram_mean(h, low=0, high=1, axis=2)
    assert outcome.quality is N and "axis z" in outcome.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("integral", 30.0), ("entries", 30.0), ("mean", 2.0), ("maximum", 20.0)],
)
def test_between_values_on_histogram_statistics(value: str, expected: float) -> None:
    h = hist1d([10, 0, 20])  # centres 0.5, 2.5 -> mean (5 + 50) / 30
    if value == "mean":
        expected = 55.0 / 30.0
    assert lib.histogram_statistic(h, value) == pytest.approx(expected)
    assert lib.histogram_between_values(h, value=value, low=expected, high=expected).quality is G
    outcome = lib.histogram_between_values(h, value=value, low=expected + 1, high=np.inf)
    assert outcome.quality is B and value in outcome.message


def test_between_values_std_matches_histogram_std() -> None:
    h = hist1d([10, 0, 20])
    std = h.std()
    assert (
        lib.histogram_between_values(h, value="std", low=std - 1e-9, high=std + 1e-9).quality is G
    )


# --------------------------------------------------------------------------- trend checks


def test_trend_between_values_uses_last_finite_value() -> None:
    assert lib.trend_between_values(series(5, 0), low=0, high=0).quality is G
    outcome = lib.trend_between_values(series(0, 3), low=0, high=0)
    assert outcome.quality is B and "last value = 3 outside [0, 0]" in outcome.message
    # a NaN point (value not computable) is skipped, not failed
    assert lib.trend_between_values(series(0, np.nan), low=0, high=0).quality is G
    assert lib.trend_between_values(series(0, 3), low=0, high=0, medium_high=5).quality is M
    assert lib.trend_between_values(series(0, 3), low=0, high=0, on_fail=M).quality is M


def test_trend_between_values_null_without_points() -> None:
    for empty in (series(), series(np.nan, np.inf)):
        outcome = lib.trend_between_values(empty, low=0, high=1)
        assert outcome.quality is N and "0 trend point(s), 1 needed" in outcome.message


def test_mean_in_range_uses_the_last_n_points() -> None:
    s = series(100, 100, 1, 2, 3)
    assert lib.mean_in_range(s, n=3, low=1.5, high=2.5).quality is G
    outcome = lib.mean_in_range(s, n=5, low=1.5, high=2.5)
    assert outcome.quality is B and "mean of last 5 = 41.2" in outcome.message
    assert lib.mean_in_range(s, n=5, low=0, high=10, medium_high=50).quality is M
    short = lib.mean_in_range(series(1, 2), n=3, low=0, high=10)
    assert short.quality is N and "2 trend point(s), 3 needed" in short.message


def test_check_last_n_ratio_of_points_in_range() -> None:
    s = series(50, 1, 2, 99, 3, 4)  # last 5: 1, 2, 99, 3, 4 -> 4 of 5 in [0, 10]
    assert lib.check_last_n(s, n=5, low=0, high=10, ratio=0.8).quality is G
    outcome = lib.check_last_n(s, n=5, low=0, high=10, ratio=0.9)
    assert outcome.quality is B and "4 of last 5" in outcome.message
    assert lib.check_last_n(s, n=5, low=0, high=10, ratio=0.9, ratio_medium=0.8).quality is M
    assert lib.check_last_n(s, n=6, low=0, high=10, ratio=0.9, ratio_medium=0.7).quality is B
    assert lib.check_last_n(series(1, 2), n=3, low=0, high=10, ratio=0.5).quality is N


def test_absolute_previous_value() -> None:
    assert lib.absolute_previous_value(series(10, 14), max_delta=4).quality is G
    outcome = lib.absolute_previous_value(series(10, 4), max_delta=4)
    assert outcome.quality is B and "(10 -> 4)" in outcome.message
    assert lib.absolute_previous_value(series(10, 4), max_delta=4, max_delta_medium=6).quality is M
    assert lib.absolute_previous_value(series(10), max_delta=4).quality is N


def test_relative_previous_value_both_directions() -> None:
    assert lib.relative_previous_value(series(1000, 990), max_ratio=0.5).quality is G
    drop = lib.relative_previous_value(series(1000, 400), max_ratio=0.5)
    assert drop.quality is B and "0.6" in drop.message
    assert lib.relative_previous_value(series(1000, 1600), max_ratio=0.5).quality is B
    assert (
        lib.relative_previous_value(series(1000, 400), max_ratio=0.5, max_ratio_medium=0.7).quality
        is M
    )
    assert lib.relative_previous_value(series(1000), max_ratio=0.5).quality is N


def test_relative_previous_value_direction() -> None:
    rise = series(1000, 3000)
    assert lib.relative_previous_value(rise, max_ratio=0.5, direction="drop").quality is G
    assert lib.relative_previous_value(rise, max_ratio=0.5, direction="rise").quality is B
    drop = series(1000, 100)
    assert lib.relative_previous_value(drop, max_ratio=0.5, direction="drop").quality is B
    assert lib.relative_previous_value(drop, max_ratio=0.5, direction="rise").quality is G


def test_relative_previous_value_with_previous_zero() -> None:
    assert lib.relative_previous_value(series(0, 0), max_ratio=0.1).quality is G
    outcome = lib.relative_previous_value(series(0, 5), max_ratio=0.1)
    assert outcome.quality is N and "previous value is 0" in outcome.message


# --------------------------------------------------------------------------- compositions


def test_all_of_is_worst_non_null() -> None:
    good = lib.Outcome(G, "fine")
    bad = lib.Outcome(B, "broken")
    null = lib.Outcome(N, "no data")
    medium = lib.Outcome(M, "meh")
    assert lib.all_of([("a", good), ("b", good)]) == (G, "all 2 sub-checks Good")
    outcome = lib.all_of([("a", good), ("b", bad), ("c", medium)])
    assert outcome.quality is B and outcome.message == "b: Bad: broken"
    assert lib.all_of([("a", null), ("b", medium)]).quality is M
    everything_null = lib.all_of([("a", null), ("b", null)])
    assert everything_null.quality is N and "a: Null: no data" in everything_null.message


def test_any_of_is_best_non_null() -> None:
    good = lib.Outcome(G, "fine")
    bad = lib.Outcome(B, "broken")
    null = lib.Outcome(N, "no data")
    assert lib.any_of([("a", bad), ("b", good)]) == (G, "b: Good: fine")
    assert lib.any_of([("a", bad), ("b", null)]).quality is B
    assert lib.any_of([("a", null), ("b", null)]).quality is N


def test_kind_table_is_consistent() -> None:
    for kind in KINDS.values():
        if kind.composite:
            continue
        assert kind.histogram or kind.trend
        names = [p.name for p in kind.params]
        assert len(names) == len(set(names))
        for small, large in kind.ordered:
            assert small in names and large in names
