"""The hot/dead cell finder: its rules on synthetic maps, then on simulated EMC runs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from overwatch.plugins import SliceContext, load_plugin, run_hook, validate_options
from processing.detectors.hot_channels import (
    P_VALUE,
    dead_regions,
    find_dead_cells,
    find_hot_cells,
    hot_threshold,
    inspect_cell_map,
    live_median,
)
from receivers.simulator import DetectorSimulator

EMC_EVENTS = "EMCTrigger/events"
MAPS = [f"EMCal/SM{sm:02d}/cellHits" for sm in range(20)]


# --------------------------------------------------------------------------- synthetic maps


def poisson_map(mean: float, seed: int = 0, shape=(48, 24)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gain = np.clip(rng.normal(1.0, 0.1, shape), 0.5, 1.5)
    return rng.poisson(mean * gain).astype(float)


def test_threshold_is_the_poisson_quantile_of_multiple_times_median():
    for median, multiple in ((5.0, 10.0), (720.0, 10.0), (30.0, 2.0)):
        t = hot_threshold(median, multiple)
        mu = multiple * median
        assert stats.poisson.sf(t, mu) <= P_VALUE < stats.poisson.sf(t - 1, mu)
        assert t > mu
    assert P_VALUE == pytest.approx(2.8665e-7, rel=1e-3)


def test_hot_cells_found_sorted_with_ratio():
    counts = poisson_map(100.0)
    counts[3, 4] = 5000
    counts[40, 20] = 2500
    cells, median, enough = find_hot_cells(counts, multiple=10, min_median=5)
    assert enough and median == live_median(counts)
    assert [(c.column, c.row, c.count) for c in cells] == [(3, 4, 5000.0), (40, 20, 2500.0)]
    assert cells[0].ratio == pytest.approx(5000 / median)


def test_cell_just_above_multiple_is_not_hot_without_significance():
    counts = np.full((10, 10), 10.0)
    counts[0, 0] = 110  # 11 x median, but compatible with a rate of 10 x median (100)
    assert find_hot_cells(counts, 10, 5)[0] == []
    counts[0, 0] = hot_threshold(10.0, 10) + 1
    assert [(c.column, c.row) for c in find_hot_cells(counts, 10, 5)[0]] == [(0, 0)]


def test_low_median_means_not_enough_statistics():
    counts = poisson_map(2.0)
    counts[5, 5] = 1000
    cells, median, enough = find_hot_cells(counts, 10, min_median=5)
    assert (cells, enough) == ([], False) and median < 5
    report = inspect_cell_map(counts, multiple=10, min_median_hot=5, min_median_dead=25)
    assert report.threshold == np.inf and report.hot == [] and report.dead == []


def test_median_ignores_dead_cells_so_a_half_dead_map_is_still_searched():
    counts = poisson_map(200.0)
    counts[:30, :] = 0  # 62 % of the map silent
    counts[40, 10] = 10_000
    cells, median, enough = find_hot_cells(counts, 10, 5)
    assert enough and median > 150 and [(c.column, c.row) for c in cells] == [(40, 10)]


def test_dead_cells_need_an_expected_count():
    counts = poisson_map(200.0)
    counts[10:18, 4:10] = 0
    dead, expected = find_dead_cells(counts, min_median=25)
    assert len(dead) == 48 and expected == live_median(counts)
    assert dead_regions(dead) == [(10, 18, 4, 10)]
    # The same empty block at low statistics is not judged.
    sparse = poisson_map(3.0)
    sparse[10:18, 4:10] = 0
    assert find_dead_cells(sparse, min_median=25) == ([], 0.0)


def test_silent_map_is_dead_only_against_busy_neighbours():
    silent = np.zeros((48, 24))
    assert find_dead_cells(silent, 25) == ([], 0.0)  # nothing to compare with
    assert find_dead_cells(silent, 25, reference_median=10.0) == ([], 0.0)  # low statistics
    dead, expected = find_dead_cells(silent, 25, reference_median=700.0)
    assert len(dead) == 48 * 24 and expected == 700.0
    assert dead_regions(dead) == [(0, 48, 0, 24)]
    # A sparsely filled map is never judged against a busy one.
    sparse = poisson_map(3.0)
    assert find_dead_cells(sparse, 25, reference_median=700.0) == ([], 0.0)


def test_dead_regions_are_separate_boxes():
    cells = [(0, 0), (0, 1), (1, 0), (5, 5), (5, 6), (6, 6)]
    assert sorted(dead_regions(cells)) == [(0, 2, 0, 2), (5, 7, 5, 7)]
    assert dead_regions([]) == []


# --------------------------------------------------------------------------- simulated runs


def run_slices(seed: int, minutes: int, slice_seconds: float = 60.0, **kwargs):
    """Yield (slice histograms, context) of an EMC simulation, one per slice."""
    sim = DetectorSimulator(["EMC"], seed=seed, start_time=1_700_000_000.0, tick=5.0, **kwargs)
    previous, start = sim.snapshot(), sim.now
    for _ in range(int(minutes * 60 / slice_seconds)):
        sim.advance(slice_seconds)
        current = sim.snapshot()
        piece = {path: current[path] - previous[path] for path in current}
        events = piece[EMC_EVENTS].integral()
        yield piece, SliceContext(1, "EMC", start, sim.now, events, histograms=piece)
        previous, start = current, sim.now


def map_values(piece, context, options=None):
    """{map path: trend values} through run_hook, as processing calls the plugin."""
    plugin = load_plugin("EMC")
    values, errors = validate_options(plugin.options, options or {})
    assert errors == {}
    out = {}
    for path in MAPS:
        result, error = run_hook(plugin, "trend_values", path, piece[path], values, context)
        assert error is None
        out[path] = result
    return out


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_clean_run_has_no_hot_and_no_dead_cell_in_any_slice(seed):
    slices = 0
    for piece, context in run_slices(seed, minutes=10):
        for path, values in map_values(piece, context).items():
            assert values["hot_cells"] == 0, (seed, context.start, path)
            assert values["dead_cells"] == 0, (seed, context.start, path)
            assert values["median_cell_counts"] > 600
        slices += 1
    assert slices == 10


@pytest.mark.parametrize("threshold", [10.0, 2.0])
def test_no_false_cell_at_the_statistics_floor(threshold):
    # ~7 counts per cell per minute: the search runs at the edge of its statistics, and even
    # a threshold of 2 x median (bright cells are ~1.4 x median here) flags nothing.
    judged = 0
    for seed in (21, 22):
        for piece, context in run_slices(seed, minutes=15, event_rate=10.0):
            for values in map_values(piece, context, {"hot_channel_threshold": threshold}).values():
                # Too few counts to judge: no value (the checks say Null), never a false cell.
                assert values.get("hot_cells", 0) == 0 and values.get("dead_cells", 0) == 0
                assert ("hot_cells" in values) == (values["median_cell_counts"] >= 5)
                judged += "hot_cells" in values
    assert judged >= 0.9 * 2 * 15 * 20


HOT = [((2, 0, 0), 20.0), ((9, 47, 23), 35.0), ((17, 20, 11), 50.0)]


def test_injected_hot_cells_are_found_exactly_and_marked():
    faults = [
        {
            "kind": "hot_channel",
            "subsystem": "EMC",
            "cell": list(cell),
            "factor": factor,
            "at_minute": 3,
        }
        for cell, factor in HOT
    ]
    plugin = load_plugin("EMC")
    options, _ = validate_options(plugin.options, {})
    expected = {f"EMCal/SM{sm:02d}/cellHits": (eta, phi) for (sm, eta, phi), _ in HOT}
    for minute, (piece, context) in enumerate(run_slices(5, minutes=8, faults=faults)):
        values = map_values(piece, context)
        for path in MAPS:
            hot = values[path]["hot_cells"]
            assert hot == (1 if minute >= 3 and path in expected else 0), (minute, path)
        if minute < 3:
            continue
        for path, (eta, phi) in expected.items():
            annotation, error = run_hook(plugin, "annotate", path, piece[path], options, context)
            assert error is None
            markers = [d for d in annotation.decorations if d.kind == "marker"]
            assert [(m.x, m.y) for m in markers] == [(eta + 0.5, phi + 0.5)]
            assert any(f"hot: column {eta}, row {phi}:" in line for line in annotation.info)
            assert annotation.values["hot_cells"] == 1


def test_dead_regions_are_counted_and_boxed():
    faults = [
        {"kind": "dead_region", "subsystem": "EMC", "supermodule": 4, "eta": [10, 18],
         "phi": [4, 10], "at_minute": 2},
        {"kind": "dead_region", "subsystem": "EMC", "supermodule": 13, "at_minute": 2},
    ]  # fmt: skip
    plugin = load_plugin("EMC")
    options, _ = validate_options(plugin.options, {})
    expected = {"EMCal/SM04/cellHits": 48, "EMCal/SM13/cellHits": 48 * 24}
    boxes = {"EMCal/SM04/cellHits": (10, 4, 18, 10), "EMCal/SM13/cellHits": (0, 0, 48, 24)}
    for minute, (piece, context) in enumerate(run_slices(6, minutes=5, faults=faults)):
        values = map_values(piece, context)
        for path in MAPS:
            want = expected.get(path, 0) if minute >= 2 else 0
            assert values[path]["dead_cells"] == want, (minute, path)
            if minute >= 2 and path == MAPS[13]:  # a silent map cannot be searched for hot cells
                assert "hot_cells" not in values[path]
            else:
                assert values[path]["hot_cells"] == 0
        if minute >= 2:
            for path, box in boxes.items():
                annotation, _ = run_hook(plugin, "annotate", path, piece[path], options, context)
                drawn = [(d.x, d.y, d.x2, d.y2) for d in annotation.decorations if d.kind == "box"]
                assert drawn == [box]
            # Without its neighbours a silent supermodule cannot be told from no data:
            # no value, so the dead-cell check says Null rather than Good.
            alone = SliceContext(1, "EMC", context.start, context.end, context.n_events)
            lonely = plugin.trend_values(MAPS[13], piece[MAPS[13]], options, alone)
            assert "dead_cells" not in lonely


def test_low_statistics_says_so_instead_of_flagging():
    faults = [{"kind": "hot_channel", "subsystem": "EMC", "cell": [1, 5, 5], "factor": 50}]
    plugin = load_plugin("EMC")
    options, _ = validate_options(plugin.options, {})
    piece, context = next(run_slices(7, minutes=1, event_rate=4.0, faults=faults))
    path = "EMCal/SM01/cellHits"
    assert piece[path].values[6, 6] > 50  # the hot cell is there, the rest has ~3 counts
    annotation = plugin.annotate(path, piece[path], options, context)
    assert "hot_cells" not in annotation.values and annotation.decorations == []
    assert annotation.info[0].startswith("not enough statistics to look for hot cells")
    assert "hot_cells" not in map_values(piece, context)[path]  # no decision: Null, not Good


def test_a_silent_supermodule_is_dead_even_in_a_slice_too_short_for_single_cells():
    # ~0.05 counts per cell: far too few to judge any cell, but ~58 counts per map.
    rng = np.random.default_rng(5)
    siblings = [rng.poisson(0.05, size=(48, 24)).astype(float) for _ in range(19)]
    totals = [float(m.sum()) for m in siblings]
    silent = np.zeros((48, 24))
    report = inspect_cell_map(
        silent, multiple=10, min_median_hot=5, min_median_dead=25,
        reference_median=float(np.median([live_median(m) for m in siblings])),
        reference_total=float(np.median(totals)),
    )  # fmt: skip
    assert report.dead_judged and len(report.dead) == 48 * 24
    assert report.dead_regions == [(0, 48, 0, 24)]
    # A live sibling of the same slice is not judged (too few counts), never called dead.
    live = inspect_cell_map(
        siblings[0], multiple=10, min_median_hot=5, min_median_dead=25,
        reference_total=float(np.median(totals)),
    )  # fmt: skip
    assert not live.dead_judged and live.dead == [] and not live.enough_statistics
    # Too quiet a slice to tell a silent map from chance: no decision.
    quiet = inspect_cell_map(
        silent, multiple=10, min_median_hot=5, min_median_dead=25, reference_total=10.0
    )
    assert not quiet.dead_judged and quiet.dead == []
