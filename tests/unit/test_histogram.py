"""The histogram model and its maths, checked against numpy computed independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from overwatch.histogram import (
    Axis,
    BinningError,
    Histogram,
    dimension_of,
    is_histogram_class,
)
from overwatch.rootio import read_histograms

RNG_SEED = 20240611


def make_axes(ndim: int, variable: bool = False) -> list[Axis]:
    if variable:
        edges = [[-3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0], [-2.0, 0.0, 0.3, 2.5], [-1, 1, 2]]
        return [Axis.from_edges(e) for e in edges[:ndim]]
    return [Axis.regular(n, -2.5, 2.5) for n in (10, 6, 4)[:ndim]]


def events(rng: np.random.Generator, n: int, ndim: int) -> list[np.ndarray]:
    """Points that also land in under- and overflow bins."""
    return [rng.normal(0.0, 1.3, n) for _ in range(ndim)]


def flow_index(axes: list[Axis], coords: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """ROOT's bin numbers (0 underflow, n+1 overflow) with numpy.digitize."""
    return tuple(np.digitize(c, a.edges) for a, c in zip(axes, coords, strict=True))


def per_bin_sum(axes: list[Axis], coords, values) -> np.ndarray:
    """Sum of ``values`` per bin, flow bins included, shaped [ix, iy, iz]."""
    shape = tuple(a.nbins + 2 for a in axes)
    flat = np.ravel_multi_index(flow_index(axes, coords), shape)
    return np.bincount(flat, weights=values, minlength=int(np.prod(shape))).reshape(shape)


def filled(name, axes, coords, weights=None, class_name=None, y=None) -> Histogram:
    histogram = Histogram.empty(name, [a.copy() for a in axes], class_name)
    histogram.fill(*coords, weights=weights, y=y)
    return histogram


# -- construction -----------------------------------------------------------------


def test_axis_checks() -> None:
    with pytest.raises(ValueError, match="at least two edges"):
        Axis([1.0])
    with pytest.raises(ValueError, match="increase strictly"):
        Axis([0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        Axis([0.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="finite"):
        Axis([0.0, np.inf])
    axis = Axis.regular(4, -1.0, 1.0)
    np.testing.assert_array_equal(axis.edges, np.linspace(-1, 1, 5))
    np.testing.assert_allclose(axis.centers, [-0.75, -0.25, 0.25, 0.75])
    assert (axis.nbins, axis.low, axis.high, axis.variable) == (4, -1.0, 1.0, False)
    assert Axis.from_edges([0, 1, 5]).variable


def test_class_names() -> None:
    assert [dimension_of(c) for c in ("TH1F", "TH2D", "TH3I", "TProfile", "TProfile2D")] == [
        1,
        2,
        3,
        1,
        2,
    ]
    assert dimension_of("TProfile3D") == 3
    for other in ("TTree", "TEfficiency", "TH4D", "TParameter<double>", "TF1"):
        assert not is_histogram_class(other)
        with pytest.raises(ValueError):
            dimension_of(other)


def test_histogram_checks() -> None:
    axes = make_axes(2)
    with pytest.raises(ValueError, match="needs 2 axes"):
        Histogram("h", "TH2D", axes[:1], np.zeros(12))
    with pytest.raises(ValueError, match="does not fit"):
        Histogram("h", "TH1D", axes[:1], np.zeros(11))
    # A transposed 2D array has the right size but the wrong layout: refused, not reshaped.
    with pytest.raises(ValueError, match="does not fit"):
        Histogram("h", "TH2D", axes, np.zeros((8, 12)))
    with pytest.raises(ValueError, match="needs bin_entries"):
        Histogram("p", "TProfile", axes[:1], np.zeros(12), sumw2=np.zeros(12))
    with pytest.raises(ValueError, match="needs sumw2"):
        Histogram("p", "TProfile", axes[:1], np.zeros(12), bin_entries=np.zeros(12))


def test_flat_root_array_is_x_fastest() -> None:
    axes = make_axes(2)  # 10 x 6 bins -> 12 x 8 with flow
    flat = np.arange(12 * 8, dtype=float)
    histogram = Histogram("h", "TH2D", axes, flat)
    assert histogram.values.shape == (12, 8)
    for ix, iy in [(0, 0), (3, 1), (11, 7), (5, 6)]:
        assert histogram.values[ix, iy] == ix + 12 * iy  # ROOT's bin = ix + (nx+2)*iy
    np.testing.assert_array_equal(histogram.values.ravel(order="F"), flat)


def test_empty_histograms() -> None:
    plain = Histogram.empty("h", make_axes(3))
    assert (plain.class_name, plain.shape, plain.sumw2) == ("TH3D", (12, 8, 6), None)
    assert Histogram.empty("w", make_axes(1), weighted=True).sumw2.shape == (12,)
    profile = Histogram.empty("p", make_axes(2), "TProfile2D")
    assert profile.bin_entries.shape == profile.sumw2.shape == (12, 8)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_fill_matches_numpy(ndim: int) -> None:
    rng = np.random.default_rng(RNG_SEED + ndim)
    axes = make_axes(ndim)
    coords, weights = events(rng, 2000, ndim), rng.uniform(0.2, 3.0, 2000)
    histogram = filled("h", axes, coords, weights)
    inside = np.all(
        [(c >= a.low) & (c < a.high) for a, c in zip(axes, coords, strict=True)], axis=0
    )
    expected, _ = np.histogramdd(
        np.column_stack(coords)[inside], bins=[a.edges for a in axes], weights=weights[inside]
    )
    np.testing.assert_allclose(histogram.values[histogram.inner], expected, rtol=1e-12)
    np.testing.assert_allclose(histogram.values.sum(), weights.sum(), rtol=1e-12)
    below, above = coords[0] < axes[0].low, coords[0] >= axes[0].high
    assert below.any() and above.any()
    np.testing.assert_allclose(histogram.values[0].sum(), weights[below].sum(), rtol=1e-12)
    np.testing.assert_allclose(histogram.values[-1].sum(), weights[above].sum(), rtol=1e-12)
    np.testing.assert_allclose(histogram.sumw2, per_bin_sum(axes, coords, weights**2))
    assert histogram.entries == 2000


def test_fill_edges_follow_root() -> None:
    histogram = Histogram.empty("h", [Axis.regular(4, 0.0, 4.0)])
    histogram.fill([0.0, 4.0, -0.001, 1.0])  # low edge is in, high edge is overflow
    np.testing.assert_array_equal(histogram.values, [1, 1, 1, 0, 0, 1])


def test_fill_argument_checks() -> None:
    profile = Histogram.empty("p", make_axes(1), "TProfile")
    with pytest.raises(ValueError, match="needs y"):
        profile.fill([0.5])
    assert profile.values.sum() == 0 and profile.entries == 0  # nothing half-filled
    histogram = Histogram.empty("h", make_axes(2))
    with pytest.raises(ValueError, match="2 coordinates"):
        histogram.fill([0.5])
    with pytest.raises(ValueError, match="not a profile"):
        histogram.fill([0.5], [0.5], y=[1.0])


# -- arithmetic ------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_subtraction_is_the_fill_of_the_difference(ndim: int, weighted: bool) -> None:
    rng = np.random.default_rng(RNG_SEED + 10 * ndim + weighted)
    axes = make_axes(ndim)
    a, b = events(rng, 1500, ndim), events(rng, 900, ndim)
    wa = rng.uniform(0.5, 2.0, 1500) if weighted else None
    wb = rng.uniform(0.5, 2.0, 900) if weighted else None
    cumulative = filled("h", axes, a, wa)
    earlier = cumulative.copy()
    cumulative.fill(*b, weights=wb)
    slice_ = cumulative - earlier
    only_b = filled("h", axes, b, wb)
    np.testing.assert_allclose(slice_.values, only_b.values, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(slice_.variances(), only_b.variances(), rtol=1e-12, atol=1e-9)
    if weighted:
        np.testing.assert_allclose(slice_.sumw2, per_bin_sum(axes, b, wb**2), atol=1e-9)
    else:
        assert slice_.sumw2 is None  # still unweighted: variance = content
    assert slice_.entries == 900
    assert slice_.class_name == f"TH{ndim}D"
    for name, value in only_b.compute_stats().items():
        assert slice_.stats[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    assert earlier.entries == 1500  # operands untouched


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_addition_is_the_fill_of_both(weighted: bool) -> None:
    rng = np.random.default_rng(RNG_SEED + 50 + weighted)
    axes = make_axes(2)
    a, b = events(rng, 700, 2), events(rng, 400, 2)
    wa = rng.uniform(0.5, 2.0, 700) if weighted else None
    wb = rng.uniform(0.5, 2.0, 400) if weighted else None
    total = filled("h", axes, a, wa) + filled("h", axes, b, wb)
    both = [np.concatenate(pair) for pair in zip(a, b, strict=True)]
    weights = np.concatenate([wa, wb]) if weighted else np.ones(1100)
    np.testing.assert_allclose(total.values, per_bin_sum(axes, both, weights), atol=1e-9)
    np.testing.assert_allclose(total.variances(), per_bin_sum(axes, both, weights**2), atol=1e-9)
    assert total.entries == 1100


@pytest.mark.parametrize("factor", [2.5, -0.5])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_scaling_values_and_errors(factor: float, weighted: bool) -> None:
    rng = np.random.default_rng(RNG_SEED + 60)
    axes = make_axes(1)
    coords = events(rng, 500, 1)
    weights = rng.uniform(0.5, 2.0, 500) if weighted else None
    original = filled("h", axes, coords, weights)
    before = original.values.copy()
    scaled = original.scaled(factor)
    np.testing.assert_allclose(scaled.values, before * factor)
    np.testing.assert_allclose(scaled.errors(), np.sqrt(original.variances()) * abs(factor))
    assert scaled.entries == original.entries
    assert scaled.stats["fTsumw"] == pytest.approx(original.integral() * factor)
    np.testing.assert_array_equal(original.values, before)


def test_profile_scaling() -> None:
    rng = np.random.default_rng(RNG_SEED + 61)
    x, y = rng.uniform(-3, 3, 400), rng.normal(5, 2, 400)
    profile = filled("p", make_axes(1), [x], class_name="TProfile", y=y)
    scaled = profile.scaled(-3.0)
    np.testing.assert_allclose(scaled.bin_means(), profile.bin_means() * -3.0)
    np.testing.assert_allclose(scaled.errors(), profile.errors() * 3.0)
    np.testing.assert_array_equal(scaled.bin_entries, profile.bin_entries)


def test_binning_must_match() -> None:
    base = Histogram.empty("a", [Axis.regular(10, 0, 1)])
    for other in (
        Histogram.empty("b", [Axis.regular(11, 0, 1)]),
        Histogram.empty("b", [Axis.regular(10, 0, 2)]),
        Histogram.empty("b", [Axis.from_edges(np.linspace(0, 1, 11) ** 2)]),
        Histogram.empty("b", [Axis.regular(10, 0, 1), Axis.regular(2, 0, 1)]),
    ):
        with pytest.raises(BinningError):
            base - other
        with pytest.raises(BinningError):
            base + other
    with pytest.raises(TypeError):
        base - Histogram.empty("p", [Axis.regular(10, 0, 1)], "TProfile")


def test_variable_binning() -> None:
    rng = np.random.default_rng(RNG_SEED + 70)
    axes = make_axes(1, variable=True)
    a, b = events(rng, 800, 1), events(rng, 300, 1)
    cumulative = filled("v", axes, a)
    earlier = cumulative.copy()
    cumulative.fill(*b)
    slice_ = cumulative - earlier
    expected, _ = np.histogram(b[0], bins=axes[0].edges)
    np.testing.assert_array_equal(slice_.values[1:-1], expected)
    centers = 0.5 * (axes[0].edges[1:] + axes[0].edges[:-1])
    assert slice_.mean() == pytest.approx(np.average(centers, weights=expected))
    with pytest.raises(BinningError):
        slice_ - Histogram.empty("r", [Axis.regular(7, -3.0, 3.0)])


def test_labels_survive_arithmetic() -> None:
    labels = {1: "HV", 2: "LV", 3: "DAQ"}
    axes = [Axis.regular(3, 0, 3, labels=labels, title="system"), Axis.regular(2, 0, 2)]
    a = filled("h", axes, [[0.5, 1.5, 2.5], [0.5, 0.5, 1.5]])
    b = filled("h", axes, [[0.5], [1.5]])
    for result in (a - b, a + b, a.scaled(2.0), a.project([0]), a.project([1, 0])):
        labelled = [axis for axis in result.axes if axis.title == "system"]
        assert len(labelled) == 1 and labelled[0].labels == labels
    a.axes[0].labels[1] = "changed"  # results own their axes
    assert (a - b).axes[0].labels[1] == "changed" and b.axes[0].labels[1] == "HV"


# -- projections ------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_projection_of_2d(weighted: bool) -> None:
    rng = np.random.default_rng(RNG_SEED + 80)
    axes = make_axes(2)
    coords = events(rng, 1200, 2)
    weights = rng.uniform(0.5, 2.0, 1200) if weighted else None
    histogram = filled("h2", axes, coords, weights)
    w = weights if weighted else np.ones(1200)
    for keep, other in ((0, 1), (1, 0)):
        projection = histogram.project([keep])
        assert (projection.class_name, projection.name) == ("TH1D", "h2_p" + "xy"[keep])
        np.testing.assert_allclose(projection.values, histogram.values.sum(axis=other))
        # ROOT sums the other axis with its flow bins: the same as histogramming one coordinate.
        np.testing.assert_allclose(projection.values, per_bin_sum([axes[keep]], [coords[keep]], w))
        np.testing.assert_allclose(
            projection.variances(), per_bin_sum([axes[keep]], [coords[keep]], w**2)
        )
        np.testing.assert_array_equal(projection.axes[0].edges, axes[keep].edges)
        assert projection.entries == histogram.entries


def test_projection_of_3d_keeps_the_requested_axis_order() -> None:
    rng = np.random.default_rng(RNG_SEED + 81)
    axes = make_axes(3)
    coords = events(rng, 3000, 3)
    histogram = filled("h3", axes, coords)
    zx = histogram.project([2, 0])
    assert (zx.class_name, zx.name, zx.shape) == ("TH2D", "h3_pzx", (6, 12))
    np.testing.assert_array_equal(zx.values, histogram.values.sum(axis=1).T)
    np.testing.assert_array_equal(
        zx.values, per_bin_sum([axes[2], axes[0]], [coords[2], coords[0]], None)
    )
    y = histogram.project([1])
    np.testing.assert_array_equal(y.values, histogram.values.sum(axis=(0, 2)))
    for order in ([1, 2, 0], [2, 0, 1], [0, 2, 1]):
        permuted = histogram.project(order)
        assert [a.nbins for a in permuted.axes] == [axes[k].nbins for k in order]
        np.testing.assert_array_equal(permuted.values, np.transpose(histogram.values, order))
    for bad in ([], [0, 0], [3]):
        with pytest.raises(ValueError):
            histogram.project(bad)


def test_profile2d_projection_is_a_profile_of_all_entries() -> None:
    rng = np.random.default_rng(RNG_SEED + 82)
    axes = make_axes(2)
    x, y = events(rng, 2000, 2)
    z = 3.0 * x + rng.normal(0, 0.5, 2000)
    profile = filled("p2", axes, [x, y], class_name="TProfile2D", y=z)
    projection = profile.project([0])
    assert projection.class_name == "TProfile"
    counts = per_bin_sum(axes[:1], [x], None)
    np.testing.assert_array_equal(projection.bin_entries, counts)
    with np.errstate(invalid="ignore"):
        means = per_bin_sum(axes[:1], [x], z) / counts
    np.testing.assert_allclose(projection.bin_means(), np.nan_to_num(means), rtol=1e-12)


# -- statistics --------------------------------------------------------------------------


def test_statistics_from_the_bins() -> None:
    rng = np.random.default_rng(RNG_SEED + 90)
    axes = make_axes(2, variable=True)
    coords, weights = events(rng, 2500, 2), rng.uniform(0.1, 1.0, 2500)
    histogram = filled("h", axes, coords, weights)
    inner = per_bin_sum(axes, coords, weights)[1:-1, 1:-1]
    assert histogram.integral() == pytest.approx(inner.sum(), rel=1e-12)
    assert histogram.integral(flow=True) == pytest.approx(weights.sum(), rel=1e-12)
    assert histogram.maximum() == pytest.approx(inner.max(), rel=1e-12)
    for axis, marginal in ((0, inner.sum(axis=1)), (1, inner.sum(axis=0))):
        centers = 0.5 * (axes[axis].edges[1:] + axes[axis].edges[:-1])
        mean = np.average(centers, weights=marginal)
        std = np.sqrt(np.average((centers - mean) ** 2, weights=marginal))
        assert histogram.mean(axis) == pytest.approx(mean, rel=1e-12)
        assert histogram.std(axis) == pytest.approx(std, rel=1e-12)
    cx, cy = np.meshgrid(
        *(0.5 * (a.edges[1:] + a.edges[:-1]) for a in axes), indexing="ij"
    )  # the running sums ROOT would hold had every entry sat at its bin centre
    stats = histogram.compute_stats()
    expected = {
        "fTsumw": inner.sum(),
        "fTsumw2": per_bin_sum(axes, coords, weights**2)[1:-1, 1:-1].sum(),
        "fTsumwx": (inner * cx).sum(),
        "fTsumwx2": (inner * cx**2).sum(),
        "fTsumwy": (inner * cy).sum(),
        "fTsumwy2": (inner * cy**2).sum(),
        "fTsumwxy": (inner * cx * cy).sum(),
    }
    assert stats == pytest.approx(expected, rel=1e-12)
    with pytest.raises(IndexError):
        histogram.mean(2)


def test_statistics_of_an_empty_histogram() -> None:
    empty = Histogram.empty("e", make_axes(1))
    assert (empty.integral(), empty.mean(), empty.std(), empty.maximum()) == (0, 0, 0, 0)


# -- profiles ------------------------------------------------------------------------------


def numpy_profile(axes, coords, y, weights=None):
    """(Σw, mean, error on the mean) per bin, flow included, from the raw entries."""
    w = np.ones(len(y)) if weights is None else weights
    sumw, sumwy = per_bin_sum(axes, coords, w), per_bin_sum(axes, coords, w * y)
    sumwy2, sumw2 = per_bin_sum(axes, coords, w * y * y), per_bin_sum(axes, coords, w * w)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(sumw > 0, sumwy / sumw, 0.0)
        spread = np.sqrt(np.abs(sumwy2 / sumw - mean**2))
        error = np.where(sumw > 0, spread / np.sqrt(sumw**2 / sumw2), 0.0)
    return sumw, mean, error


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_subtracted_profile_has_the_means_of_the_new_entries(ndim: int, weighted: bool) -> None:
    rng = np.random.default_rng(RNG_SEED + 100 + ndim + weighted)
    axes = make_axes(ndim)
    class_name = "TProfile" if ndim == 1 else "TProfile2D"
    a, b = events(rng, 3000, ndim), events(rng, 2000, ndim)
    ya, yb = rng.normal(10.0, 2.0, 3000), rng.normal(-4.0, 1.0, 2000)  # B differs from A
    wa = rng.uniform(0.5, 2.0, 3000) if weighted else None
    wb = rng.uniform(0.5, 2.0, 2000) if weighted else None
    cumulative = filled("p", axes, a, wa, class_name, y=ya)
    earlier = cumulative.copy()
    cumulative.fill(*b, weights=wb, y=yb)
    slice_ = cumulative - earlier
    sumw, mean, error = numpy_profile(axes, b, yb, wb)
    np.testing.assert_allclose(slice_.bin_entries, sumw, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(slice_.bin_means(), mean, rtol=1e-9, atol=1e-9)
    # Bins with one entry have no spread; rounding leaves ~1e-7 there on either side.
    np.testing.assert_allclose(slice_.errors(), error, rtol=1e-6, atol=1e-6)
    # Subtracting the means instead would be far off: B's means are nowhere near A's.
    assert not np.allclose(cumulative.bin_means() - earlier.bin_means(), mean, atol=1.0)
    assert slice_.entries == 2000
    assert slice_.maximum() == pytest.approx(mean[slice_.inner][sumw[slice_.inner] > 0].max())


def test_profile_addition_matches_one_fill() -> None:
    rng = np.random.default_rng(RNG_SEED + 110)
    axes = make_axes(1)
    (xa,), (xb,) = events(rng, 500, 1), events(rng, 300, 1)
    ya, yb = rng.normal(1, 1, 500), rng.normal(3, 1, 300)
    total = filled("p", axes, [xa], class_name="TProfile", y=ya) + filled(
        "p", axes, [xb], class_name="TProfile", y=yb
    )
    _, mean, error = numpy_profile(axes, [np.concatenate([xa, xb])], np.concatenate([ya, yb]))
    np.testing.assert_allclose(total.bin_means(), mean, rtol=1e-12)
    np.testing.assert_allclose(total.errors(), error, rtol=1e-9)


def test_profile_error_mode_spread() -> None:
    rng = np.random.default_rng(RNG_SEED + 120)
    x, y = rng.uniform(0, 1, 400), rng.normal(0, 3, 400)
    profile = filled("p", [Axis.regular(4, 0, 1)], [x], class_name="TProfile", y=y)
    profile.error_mode = 1  # ROOT option "s": the spread, not the error on the mean
    index = np.digitize(x, profile.axes[0].edges)
    expected = [np.std(y[index == i]) for i in range(1, 5)]
    np.testing.assert_allclose(profile.errors()[1:-1], expected, rtol=1e-9)


# -- against statistics ROOT stored -------------------------------------------------------


@pytest.fixture(scope="module")
def hsimple(root_samples_dir: Path) -> dict[str, Histogram]:
    return read_histograms(root_samples_dir / "uproot-hepdata-example.root").histograms


def test_compute_stats_matches_root_for_hpx(hsimple: dict[str, Histogram]) -> None:
    """hpx is unweighted and every fill is counted (bins + flow = fEntries), so the sums
    of weights are exact. ROOT's x sums use the true x, ours the bin centre: the mean
    agrees within a small fraction of a bin and the variance after Sheppard's
    correction (binned variance - width^2/12)."""
    hpx = hsimple["hpx"]
    assert hpx.sumw2 is None and hpx.integral(flow=True) == hpx.entries
    computed, stored = hpx.compute_stats(), hpx.stats
    assert computed["fTsumw"] == stored["fTsumw"] == hpx.integral()
    assert computed["fTsumw2"] == stored["fTsumw2"]
    width = hpx.axes[0].widths[0]
    root_mean = stored["fTsumwx"] / stored["fTsumw"]
    root_variance = stored["fTsumwx2"] / stored["fTsumw"] - root_mean**2
    assert abs(hpx.mean() - root_mean) < 0.01 * width
    assert hpx.std() ** 2 - width**2 / 12 == pytest.approx(root_variance, rel=1e-4)


def test_compute_stats_matches_root_for_hpxpy_and_hprof(hsimple: dict[str, Histogram]) -> None:
    hpxpy, hprof = hsimple["hpxpy"], hsimple["hprof"]
    for histogram in (hpxpy, hprof):
        computed, stored = histogram.compute_stats(), histogram.stats
        assert computed["fTsumw"] == stored["fTsumw"]
        assert computed["fTsumw2"] == stored["fTsumw2"]
        for axis, letter in enumerate("xy"[: histogram.ndim]):
            width = histogram.axes[axis].widths[0]
            root_mean = stored[f"fTsumw{letter}"] / stored["fTsumw"]
            assert abs(histogram.mean(axis) - root_mean) < 0.01 * width
    # The profiled quantity's sums are per-bin sums of the true values: exact up to rounding.
    computed = hprof.compute_stats()
    assert computed["fTsumwy"] == pytest.approx(hprof.stats["fTsumwy"], rel=1e-12)
    assert computed["fTsumwy2"] == pytest.approx(hprof.stats["fTsumwy2"], rel=1e-12)
