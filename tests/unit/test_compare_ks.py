"""ks: ROOT's KolmogorovTest on binned data, cross-checked with scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from overwatch.histogram import Axis, Histogram
from processing.compare.ks import kolmogorov_prob, ks_test
from processing.compare.registry import configure
from processing.compare.results import Reason, Status


def integer_histogram(samples, low=-20, high=20) -> Histogram:
    """Unit bins centred on integers: its cumulative is the samples' empirical CDF."""
    h = Histogram.empty("h", [Axis.regular(high - low, low - 0.5, high - 0.5)])
    h.fill(samples)
    return h


@pytest.mark.parametrize("z", [0.1, 0.3, 0.5, 0.75, 0.9, 1.2, 1.36, 1.8, 2.5, 3.5, 7.0])
def test_kolmogorov_prob_is_the_kolmogorov_distribution(z):
    assert kolmogorov_prob(z) == pytest.approx(special.kolmogorov(z), abs=2e-6)


def test_binned_test_equals_scipy_two_sample_test_on_integer_data():
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(0, 4, 3000))
    b = np.round(rng.normal(0.3, 4, 2000))
    outcome = ks_test(integer_histogram(a), integer_histogram(b))
    expected = stats.ks_2samp(a, b, method="asymp")
    assert outcome.distance == pytest.approx(expected.statistic, abs=1e-12)
    # ROOT uses the limiting (Kolmogorov) distribution; scipy's "asymp" p-value uses
    # the finite-n one, so the probability is checked against the textbook limit.
    z = np.sqrt(3000 * 2000 / 5000) * expected.statistic
    assert outcome.probability == pytest.approx(stats.kstwobign.sf(z), rel=1e-6)
    assert outcome.effective1 == pytest.approx(3000) and outcome.effective2 == pytest.approx(2000)


def test_effective_entries_make_weighted_histograms_fair():
    rng = np.random.default_rng(2)
    x = rng.normal(size=2000)
    plain = Histogram.empty("h", [Axis.regular(20, -3, 3)])
    plain.fill(x)
    weighted = Histogram.empty("h", [Axis.regular(20, -3, 3)], weighted=True)
    weighted.fill(x, weights=np.full(2000, 4.0))
    # Same shape, weights 4: same distance, and the same effective entries.
    outcome = ks_test(weighted, plain)
    assert outcome.distance == pytest.approx(0.0)
    assert outcome.effective1 == pytest.approx(outcome.effective2)


def test_two_dimensional_distance_averages_both_orderings():
    rng = np.random.default_rng(6)
    c1, c2 = np.zeros((5, 4)), np.zeros((5, 4))
    c1[1:-1, 1:-1] = rng.integers(0, 20, (3, 2))
    c2[1:-1, 1:-1] = rng.integers(0, 20, (3, 2))
    axes = [Axis.regular(3, 0, 1), Axis.regular(2, 0, 1)]
    h1 = Histogram(name="a", class_name="TH2D", axes=axes, values=c1)
    h2 = Histogram(name="b", class_name="TH2D", axes=[a.copy() for a in axes], values=c2)
    inner1, inner2 = c1[1:-1, 1:-1] / c1.sum(), c2[1:-1, 1:-1] / c2.sum()
    x_outer = np.max(np.abs(np.cumsum(inner1.ravel()) - np.cumsum(inner2.ravel())))
    y_outer = np.max(np.abs(np.cumsum(inner1.T.ravel()) - np.cumsum(inner2.T.ravel())))
    assert x_outer != y_outer
    assert ks_test(h1, h2).distance == pytest.approx((x_outer + y_outer) / 2)


def test_itself_and_scaled_copy_pass():
    rng = np.random.default_rng(3)
    h = integer_histogram(np.round(rng.normal(0, 4, 5000)))
    test = configure("ks")
    same = test.run("h", h, [h])
    assert (same.status, same.statistic, same.pvalue) == (Status.SUCCESS, 0.0, 1.0)
    assert test.run("h", h, [h.scaled(0.2)]).status is Status.SUCCESS


def test_shifted_distribution_fails():
    rng = np.random.default_rng(4)
    h1 = integer_histogram(np.round(rng.normal(0, 4, 5000)))
    h2 = integer_histogram(np.round(rng.normal(1, 4, 5000)))
    result = configure("ks").run("h", h1, [h2])
    assert result.status is Status.FAIL and result.pvalue < 1e-5


def test_maximum_distance_option():
    rng = np.random.default_rng(5)
    h1 = integer_histogram(np.round(rng.normal(0, 4, 5000)))
    h2 = integer_histogram(np.round(rng.normal(0.2, 4, 5000)))
    distance = ks_test(h1, h2).distance
    loose = configure("ks:max_distance=0.5").run("h", h1, [h2])
    strict = configure(f"ks:max_distance={distance / 2}").run("h", h1, [h2])
    assert loose.status is Status.SUCCESS and strict.status is Status.FAIL
    assert loose.statistic == pytest.approx(distance)


def test_flow_bins_only_when_asked():
    h1 = integer_histogram(np.arange(-5, 6))
    h2 = integer_histogram(np.arange(-5, 6))
    h1.values[0] = 100.0
    assert ks_test(h1, h2).distance == 0.0
    assert ks_test(h1, h2, underflow=True).distance > 0.5


def test_uncomparable_cases_have_reasons():
    empty = integer_histogram([])
    full = integer_histogram([1, 2, 3])
    test = configure("ks")
    assert test.run("h", empty, [empty]).reason is Reason.EMPTY
    one = test.run("h", full, [empty])
    assert (one.status, one.reason) == (Status.FAIL, Reason.EMPTY_IN_REFERENCE)
    single = Histogram.empty("h", [Axis.regular(1, 0, 1)])
    single.fill([0.5, 0.5])
    assert test.run("h", single, [single]).reason is Reason.TOO_FEW_BINS
    profile = Histogram.empty("p", [Axis.regular(4, 0, 1)], "TProfile")
    profile.fill([0.1, 0.6], y=[1.0, 2.0])
    skipped = test.run("p", profile, [profile])
    assert (skipped.status, skipped.reason) == (Status.SKIPPED, Reason.UNSUPPORTED)
