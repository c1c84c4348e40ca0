"""Trend values of a slice, history across runs, and trend graphs as JSROOT reads them."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from overwatch.jsroot import to_json_bytes
from overwatch.plugins import DetectorPlugin, SliceContext
from processing.analysis import trend_values
from processing.analysis.trending import (
    GENERIC_NAMES,
    TrendStore,
    generic_values,
    run_history,
    slice_trend_values,
    time_format_for,
    trend_dir,
    trend_json,
    trended_runs,
)
from tests.jsroot_node import run_jsroot

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


# -- independent reference: plain numpy on the raw arrays ------------------------------------


def reference(h: Histogram) -> dict[str, float]:
    """What the generic values must be, computed without overwatch.histogram's methods."""
    inner = tuple(slice(1, -1) for _ in h.axes)
    weights = (h.bin_entries if h.is_profile else h.values)[inner]
    along_x = weights.reshape(weights.shape[0], -1).sum(axis=1)
    edges = h.axes[0].edges
    centres = (edges[:-1] + edges[1:]) / 2
    if along_x.sum() == 0:
        mean = std = math.nan
    else:
        mean = np.average(centres, weights=along_x)
        std = math.sqrt(np.average((centres - mean) ** 2, weights=along_x))
    if h.is_profile:
        sums = h.values[inner]
        contents = np.array(
            [s / w if w != 0 else 0.0 for s, w in zip(sums.ravel(), weights.ravel(), strict=True)]
        )
    else:
        contents = weights.ravel()
    return {
        "mean": mean,
        "std": std,
        "maximum": float(contents.max()),
        "entries": float(h.entries),
        "integral": float(weights.sum()),
    }


def assert_matches(values: Mapping, histograms: Mapping[str, Histogram], rtol=1e-9) -> None:
    assert list(values) == [(p, n) for p in histograms for n in GENERIC_NAMES]
    for path, h in histograms.items():
        for name, wanted in reference(h).items():
            got = values[(path, name)]
            assert isinstance(got, float), (path, name)
            if math.isnan(wanted):
                assert math.isnan(got), (path, name, got)
            else:
                assert got == pytest.approx(wanted, rel=rtol, abs=1e-12), (path, name)


def filled(name: str, axes: list[Axis], class_name: str, rng, n: int = 400) -> Histogram:
    h = Histogram.empty(name, axes, class_name)
    coords = [rng.normal((a.low + a.high) / 2, (a.high - a.low) / 5, n) for a in axes]
    if h.is_profile:
        h.fill(*coords, y=rng.normal(3, 2, n), weights=rng.uniform(0.5, 2, n))
    else:
        h.fill(*coords, weights=rng.uniform(0.5, 2, n) if class_name.endswith("D") else None)
    return h


def test_generic_values_of_every_kind_match_numpy():
    rng = np.random.default_rng(3)
    made = [
        filled("th1f", [Axis.regular(40, -2, 2)], "TH1F", rng),
        filled("th1d variable", [Axis.from_edges([0, 1, 2, 4, 8, 16, 32])], "TH1D", rng),
        filled("th2f", [Axis.regular(48, 0, 48), Axis.regular(24, 0, 24)], "TH2F", rng),
        filled(
            "th3d",
            [Axis.regular(5, 0, 1), Axis.regular(4, 0, 2), Axis.regular(3, 0, 3)],
            "TH3D",
            rng,
        ),  # fmt: skip
        filled("tprofile", [Axis.regular(20, 0, 10)], "TProfile", rng),
        filled("tprofile2d", [Axis.regular(6, 0, 6), Axis.regular(5, 0, 5)], "TProfile2D", rng),
        Histogram.empty("empty", [Axis.regular(10, 0, 1)], "TH1F"),
        Histogram.empty("empty2d", [Axis.regular(3, 0, 1), Axis.regular(3, 0, 1)], "TH2F"),
        Histogram.empty("empty profile", [Axis.regular(4, 0, 1)], "TProfile"),
    ]
    # Only flow bins filled: in-range statistics are those of an empty histogram.
    outside = Histogram.empty("outside", [Axis.regular(5, 0, 1)], "TH1F")
    outside.fill(np.array([-1.0, 2.0, 3.0]))
    made.append(outside)
    histograms = {h.name: h for h in made}
    values = generic_values(histograms)
    assert_matches(values, histograms)
    assert math.isnan(values[("empty", "mean")]) and math.isnan(values[("empty", "std")])
    assert values[("outside", "entries")] == 3.0 and values[("outside", "integral")] == 0.0


def test_many_histograms_all_paths_match_numpy():
    """Groups sharing a bin count (one binning, or several), and odd ones, all agree."""
    rng = np.random.default_rng(5)
    histograms = {}
    for i in range(12):  # one binning: stacked, matrix product
        h = filled(f"same/{i}", [Axis.regular(30, -3, 3)], "TH1F", rng, n=50 + 20 * i)
        histograms[h.name] = h
    for i in range(9):  # same bin count, different ranges: stacked, per-row centres
        h = filled(f"ranges/{i}", [Axis.regular(40, i, 2 * i + 5)], "TH1D", rng)
        histograms[h.name] = h
    for i, nbins in enumerate((7, 13, 101)):  # odd ones: concatenated
        h = filled(f"odd/{i}", [Axis.regular(nbins, 0, 1)], "TH1F", rng)
        histograms[h.name] = h
    histograms["same/empty"] = Histogram.empty("same/empty", [Axis.regular(30, -3, 3)], "TH1F")
    histograms["odd/empty"] = Histogram.empty("odd/empty", [Axis.regular(3, 0, 3)], "TH1F")
    histograms["map"] = filled("map", [Axis.regular(4, 0, 4), Axis.regular(4, 0, 4)], "TH2F", rng)
    for path in ("same/3", "ranges/2", "odd/1", "map"):  # a damaged bin: NaN, only there
        histograms[path].values[(2,) * histograms[path].ndim] = np.nan
    values = generic_values(histograms)
    assert_matches(values, histograms)
    for path in ("same/3", "ranges/2", "odd/1", "map"):
        assert all(math.isnan(values[(path, n)]) for n in ("mean", "std", "maximum", "integral"))
    assert not math.isnan(values[("same/4", "mean")]) and not math.isnan(values[("odd/2", "std")])


@pytest.mark.parametrize("limit", [None, 1000, 100])
def test_maps_and_profiles_of_one_shape_stacked_match_numpy(monkeypatch, limit):
    """Eight or more profiles or 2D/3D histograms of one shape go as one array (in chunks
    when their cells are many, one by one when too big to stack): the same values."""
    if limit is not None:
        monkeypatch.setattr(trend_values._Scratch, "LIMIT", limit)
    rng = np.random.default_rng(11)
    histograms = {}
    kinds = [
        ("map", lambda i: [Axis.regular(12, 0, 12), Axis.regular(6, 0, 6)], "TH2F"),
        ("ranges", lambda i: [Axis.regular(10, i, 2 * i + 3), Axis.regular(4, 0, 1)], "TH2D"),
        ("cube", lambda i: [Axis.regular(4, 0, 1), Axis.regular(3, 0, 1), Axis.regular(2, 0, 1)],
         "TH3F"),
        ("profile", lambda i: [Axis.regular(15, 0, 10)], "TProfile"),
        ("profile2d", lambda i: [Axis.regular(5, 0, 5), Axis.regular(4, 0, 4)], "TProfile2D"),
    ]  # fmt: skip
    for stem, axes, class_name in kinds:
        for i in range(10):
            h = filled(f"{stem}/{i}", axes(i), class_name, rng, n=30 + 40 * i)
            histograms[h.name] = h
        empty = Histogram.empty(f"{stem}/empty", axes(0), class_name)
        histograms[empty.name] = empty
    damaged = histograms["map/4"]
    damaged.values[(3, 2)] = np.nan
    values = generic_values(histograms)
    assert_matches(values, histograms)
    assert all(math.isnan(values[("map/4", n)]) for n in ("mean", "std", "maximum", "integral"))
    assert not math.isnan(values[("map/5", "mean")])
    for stem, _, _ in kinds:
        assert math.isnan(values[(f"{stem}/empty", "mean")])
        assert values[(f"{stem}/empty", "integral")] == 0.0


def test_narrow_peak_far_from_zero_keeps_its_width():
    axis = Axis.regular(100, 1e6, 1e6 + 1)
    histograms = {}
    for i in range(10):
        h = Histogram.empty(f"peak{i}", [axis.copy()], "TH1D")
        h.fill(np.full(1000, 1e6 + 0.5) + np.linspace(-0.02, 0.02, 1000))
        histograms[h.name] = h
    odd = Histogram.empty("odd", [Axis.regular(99, 1e6, 1e6 + 1)], "TH1D")
    odd.fill(np.full(1000, 1e6 + 0.5) + np.linspace(-0.02, 0.02, 1000))
    histograms["odd"] = odd
    values = generic_values(histograms)
    for path, h in histograms.items():
        assert values[(path, "std")] == pytest.approx(reference(h)["std"], rel=1e-7)
        assert 0.005 < values[(path, "std")] < 0.03


def test_generic_values_of_real_root_files(sample_files):
    """Every histogram ROOT wrote in the sample files, against the histogram's own statistics."""
    checked = 0
    for file in sample_files:
        histograms = rootio.read_histograms(file).histograms
        if not histograms:
            continue
        values = generic_values(histograms)
        assert_matches(values, histograms)
        for path, h in histograms.items():
            if h.integral() != 0:
                assert values[(path, "mean")] == pytest.approx(h.mean(0), rel=1e-9, abs=1e-12)
                # Histogram.std is one-pass (E[x²] - E[x]²): off by rounding where the spread is 0.
                scale = h.axes[0].high - h.axes[0].low
                assert values[(path, "std")] == pytest.approx(h.std(0), rel=1e-7, abs=1e-7 * scale)
            assert values[(path, "maximum")] == pytest.approx(h.maximum(), rel=1e-12)
            assert values[(path, "integral")] == pytest.approx(h.integral(), rel=1e-12)
            checked += 1
    assert checked > 200


class PeakPlugin(DetectorPlugin):
    """Trends the fullest bin's position of 1D histograms; fails on purpose on 'broken'."""

    name = "TST"

    def trend_values(self, path, histogram, options, context):
        if path == "broken":
            raise RuntimeError("cannot analyse this one")
        if path == "greedy":
            return {"mean": 0.0}
        if histogram.ndim != 1:
            return {}
        peak = int(np.argmax(histogram.values[1:-1]))
        return {"peak_bin": float(peak + 1), "per_second": histogram.entries / context.duration}


def test_slice_trend_values_adds_plugin_values_and_isolates_errors():
    rng = np.random.default_rng(9)
    histograms = {
        "good": filled("good", [Axis.regular(10, 0, 10)], "TH1F", rng),
        "broken": filled("broken", [Axis.regular(10, 0, 10)], "TH1F", rng),
        "greedy": filled("greedy", [Axis.regular(10, 0, 10)], "TH1F", rng),
        "map": filled("map", [Axis.regular(3, 0, 3), Axis.regular(3, 0, 3)], "TH2F", rng),
    }
    context = SliceContext(run=1, subsystem="TST", start=T0, end=T0 + 40, n_events=100.0)
    values, errors = slice_trend_values(histograms, PeakPlugin(), {}, context)
    generic = generic_values(histograms)
    assert {k: values[k] for k in generic} == generic  # generic values untouched
    good = histograms["good"]
    assert values[("good", "peak_bin")] == float(np.argmax(good.values[1:-1]) + 1)
    assert values[("good", "per_second")] == good.entries / 40
    assert ("broken", "peak_bin") not in values and ("map", "peak_bin") not in values
    assert len(errors) == 2
    assert errors[0].startswith("broken: TST.trend_values: RuntimeError: cannot analyse")
    assert errors[1] == "greedy: TST.trend_values: 'mean' is a generic value"
    # Without a plugin (or with the default one): only the generic values.
    assert slice_trend_values(histograms) == (generic, [])
    assert slice_trend_values(histograms, DetectorPlugin()) == (generic, [])
    with pytest.raises(ValueError, match="context"):
        slice_trend_values(histograms, PeakPlugin())


# -- across runs ---------------------------------------------------------------------------


def test_trend_dir_is_beside_the_array_cache(tmp_path):
    assert trend_dir(tmp_path, 42, "EMC") == tmp_path / "cache" / "Run42" / "EMC" / "trends"
    for bad in ("../EMC", "EMC/..", "", "a b"):
        with pytest.raises(ValueError, match="subsystem"):
            trend_dir(tmp_path, 1, bad)
    with pytest.raises(ValueError, match="run"):
        trend_dir(tmp_path, -1, "EMC")


def test_run_history_across_three_runs(tmp_path):
    # Run numbers do not follow time here: history is ordered by time.
    starts = {300: T0, 100: T0 + 3600, 200: T0 + 7200}
    for run, start in starts.items():
        store = TrendStore(trend_dir(tmp_path, run, "EMC"))
        for i in range(4):
            store.append(start + 60 * i, {("SM00/amp", "mean"): run + i, ("x", "std"): 1.0})
    TrendStore(trend_dir(tmp_path, 400, "EMC")).append(T0 + 9000, {("other", "mean"): 5.0})
    (tmp_path / "cache" / "Run500" / "EMC").mkdir(parents=True)  # processed, no trends yet
    (tmp_path / "cache" / "notarun").mkdir()
    TrendStore(trend_dir(tmp_path, 100, "TPC")).append(T0, {("SM00/amp", "mean"): -1.0})

    assert trended_runs(tmp_path, "EMC") == [100, 200, 300, 400]
    times, values, runs = run_history(tmp_path, "EMC", "SM00/amp", "mean")
    order = [300, 100, 200]
    np.testing.assert_array_equal(runs, np.repeat(order, 4))
    np.testing.assert_array_equal(times, [starts[r] + 60 * i for r in order for i in range(4)])
    np.testing.assert_array_equal(values, [r + i for r in order for i in range(4)])
    assert runs.dtype == np.int64

    times, values, runs = run_history(tmp_path, "EMC", "SM00/amp", "mean", runs=[200, 100, 999])
    np.testing.assert_array_equal(runs, [100] * 4 + [200] * 4)
    assert np.all(np.diff(times) > 0)
    empty = run_history(tmp_path, "EMC", "nothing", "mean")
    assert all(a.size == 0 for a in empty)
    assert run_history(tmp_path / "missing", "EMC", "SM00/amp", "mean")[0].size == 0


# -- graphs ----------------------------------------------------------------------------------


def test_trend_graph_x_axis_is_time_not_index(tmp_path):
    store = TrendStore(tmp_path / "trends")
    times = [T0 + 37, T0 + 100, T0 + 163, T0 + 250, T0 + 311]
    for i, t in enumerate(times):
        store.append(t, {("h", "mean"): math.nan if i == 2 else 10.0 + i})
    t, v = store.series("h", "mean")
    graph = trend_json(t, v, name="h_mean", title="mean of h", y_title="mean")
    kept = [times[i] for i in (0, 1, 3, 4)]
    (result,) = run_jsroot([("trend", to_json_bytes(graph), "ALP")], time_zone="America/Denver")
    assert result["error"] is None and result["has_svg"]
    assert result["typename"] == "TGraph" and result["fNpoints"] == 4
    assert result["fX"] == kept  # unix seconds, the NaN point dropped
    assert result["fY"] == [10.0, 11.0, 13.0, 14.0]
    assert result["xaxis"]["time_display"] is True
    assert result["xaxis"]["time_format"].startswith("%H:%M:%S%F1970-01-01 00:00:00s0 GMT")
    assert result["xaxis"]["xmin"] < kept[0] and result["xaxis"]["xmax"] > kept[-1]
    assert result["yaxis"]["title"] == "mean"


def test_time_format_follows_the_span():
    assert time_format_for([T0, T0 + 300]) == "%H:%M:%S"
    assert time_format_for([T0, T0 + 6 * 3600]) == "%H:%M"
    assert time_format_for([T0, T0 + 10 * 86400, math.nan]) == "%d/%m %H:%M"
    assert time_format_for([T0, T0 + 400 * 86400]) == "%Y-%m-%d"
    assert time_format_for([]) == "%H:%M:%S"
    assert trend_json([T0], [1.0], name="n", title="t", time_format="%H")["fHistogram"]["fXaxis"][
        "fTimeFormat"
    ].startswith("%H%F")
