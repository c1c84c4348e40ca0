"""The TPC plugin: TH3 projections checked against numpy, groups, display, trends."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from overwatch.plugins import Display, SliceContext, load_plugin, run_hook
from receivers.simulator import DetectorSimulator

START = 1_700_000_000.0
CUBE = "TPC/trackPtEtaPhi"


@pytest.fixture(scope="module")
def tpc_slice():
    sim = DetectorSimulator(["TPC"], seed=9, start_time=START, tick=5.0)
    sim.advance(30)
    first = sim.snapshot()
    sim.advance(60)
    piece = {path: h - first[path] for path, h in sim.snapshot().items()}
    events = piece["events"].integral()
    return piece, SliceContext(3, "TPC", START + 30, START + 90, events, histograms=piece)


@pytest.fixture(scope="module")
def plugin():
    return load_plugin("TPC")


def weighted_cube() -> Histogram:
    """A TH3 with weights and flow content on every axis, so sums over flow bins matter."""
    rng = np.random.default_rng(4)
    cube = Histogram.empty(
        "TPC/cube",
        [Axis.from_edges([0.1, 0.5, 1, 3, 10], title="p_{T}"), Axis.regular(5, -1, 1, title="#eta"),
         Axis.regular(6, 0, 6.3, title="#varphi")],
        "TH3F", title="cube;p_{T};#eta;#varphi",
    )  # fmt: skip
    n = 5000
    cube.fill(rng.uniform(0, 12, n), rng.uniform(-1.2, 1.2, n), rng.uniform(-0.5, 7, n),
              weights=rng.uniform(0.5, 2.0, n))  # fmt: skip
    return cube


@pytest.mark.parametrize(
    "suffix, summed",
    [
        ("_pxy", (2,)),
        ("_pxz", (1,)),
        ("_pyz", (0,)),
        ("_px", (1, 2)),
        ("_py", (0, 2)),
        ("_pz", (0, 1)),
    ],
)
def test_projections_equal_numpy_sums(plugin, suffix, summed):
    cube = weighted_cube()
    context = SliceContext(1, "TPC", 0.0, 60.0, 100.0)
    derived, error = run_hook(plugin, "derived", {"TPC/cube": cube}, {}, context)
    assert error is None
    projection = derived["TPC/cube" + suffix]
    np.testing.assert_allclose(projection.values, cube.values.sum(axis=summed))
    np.testing.assert_allclose(projection.sumw2, cube.sumw2.sum(axis=summed))
    kept = [i for i in range(3) if i not in summed]
    assert [a.title for a in projection.axes] == [cube.axes[i].title for i in kept]
    for axis, i in zip(projection.axes, kept, strict=True):
        np.testing.assert_array_equal(axis.edges, cube.axes[i].edges)
    assert projection.class_name == f"TH{len(kept)}D" and projection.entries == cube.entries
    assert projection.name == "TPC/cube" + suffix


def test_simulated_cube_projections(plugin, tpc_slice):
    piece, context = tpc_slice
    derived = plugin.derived(piece, {}, context)
    assert sorted(derived) == sorted(
        CUBE + s for s in ("_pxy", "_pxz", "_pyz", "_px", "_py", "_pz")
    )
    cube = piece[CUBE]
    eta_phi = derived[CUBE + "_pyz"]
    np.testing.assert_array_equal(eta_phi.values, cube.values.sum(axis=0))
    assert eta_phi.title == "tracks (#varphi vs #eta)"
    assert derived[CUBE + "_px"].integral() == pytest.approx(cube.integral(flow=True))
    assert derived[CUBE + "_px"].title == "tracks (p_{T} (GeV/c))"
    assert not set(derived) & set(piece)


def test_groups(plugin, tpc_slice):
    piece, context = tpc_slice
    paths = list(piece) + list(plugin.derived(piece, {}, context))
    grouped = plugin.grouped(paths)
    assert list(grouped) == ["Projections", "Tracks", "Clusters", "DCA", "Events"]
    assert len(grouped["Projections"]) == 6 and CUBE in grouped["Tracks"]
    assert grouped["Events"] == ["events"]


def test_display(plugin, tpc_slice):
    piece, _ = tpc_slice
    assert plugin.display("TPC/trackPt", piece["TPC/trackPt"]) == Display(logx=True, logy=True)
    assert plugin.display("TPC/dcaZ", piece["TPC/dcaZ"]).logy
    assert plugin.display("TPC/trackEtaPhi", piece["TPC/trackEtaPhi"]).draw_option == "colz"
    assert plugin.display(CUBE, piece[CUBE]) == Display()


def test_trend_values(plugin, tpc_slice):
    piece, context = tpc_slice
    rate, error = run_hook(plugin, "trend_values", "events", piece["events"], {}, context)
    assert error is None and rate["event_rate"] == pytest.approx(piece["events"].integral() / 60)
    sectors = piece["TPC/clustersPerSector"]
    ratio = plugin.trend_values("TPC/clustersPerSector", sectors, {}, context)[
        "weakest_sector_ratio"
    ]
    counts = sectors.values[1:-1]
    assert ratio == pytest.approx(counts.min() / np.median(counts)) and 0.7 < ratio < 1.0
    dead = sectors.copy()
    dead.values[5] = 0
    assert plugin.trend_values("TPC/clustersPerSector", dead, {}, context) == {
        "weakest_sector_ratio": 0.0
    }
    assert plugin.trend_values("TPC/trackPt", piece["TPC/trackPt"], {}, context) == {}
