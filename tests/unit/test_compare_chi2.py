"""chi2: ROOT's TH1::Chi2Test, checked against ROOT's own documented examples and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from overwatch.histogram import Axis, Histogram
from processing.compare.chi2 import chi2_arrays, chi2_test, choose_mode
from processing.compare.registry import configure
from processing.compare.results import Reason, Status

# The two histograms of ROOT's TH1::Chi2Test documentation (tutorials/math/chi2test.C,
# from Gagunashvili, arXiv:physics/0605123): 20 bins on [4, 16], h1 unweighted with
# 200 events, h2 weighted from 500 events.
H1 = [0, 1, 0, 1, 1, 6, 7, 2, 22, 30, 27, 20, 13, 9, 9, 13, 19, 11, 9, 0]
H2 = [
    2.20173025, 3.30143857, 2.5892849, 2.99990201, 4.92877054, 8.33036995, 6.95084763,
    15.206357, 23.9236012, 44.3848114, 49.4465599, 25.1868858, 16.3129692, 13.0289612,
    16.7857609, 22.9914703, 30.5279255, 12.5252123, 16.4104557, 7.86067867,
]  # fmt: skip
H2_ERRORS = [
    0.38974303, 0.536510944, 0.529702604, 0.642001867, 0.969341516, 1.47611344, 1.69797957,
    3.28577447, 5.40784931, 9.10106468, 9.73541737, 5.55019951, 3.57914758, 2.77877331,
    3.23697519, 4.3608489, 5.77172089, 3.38666105, 2.98861837, 1.58402085,
]  # fmt: skip


def histogram(contents, errors=None, entries=0.0, low=4.0, high=16.0) -> Histogram:
    """A TH1D built like ROOT's SetBinContent/SetBinError (no running sums)."""
    n = len(contents)
    values = np.zeros(n + 2)
    values[1:-1] = contents
    sumw2 = None
    if errors is not None:
        sumw2 = np.zeros(n + 2)
        sumw2[1:-1] = np.square(errors)
    return Histogram(
        name="h", class_name="TH1D", axes=[Axis.regular(n, low, high)], values=values,
        sumw2=sumw2, entries=entries,
    )  # fmt: skip


def filled(samples, nbins=30, weights=None) -> Histogram:
    h = Histogram.empty("h", [Axis.regular(nbins, -3, 3)], weighted=weights is not None)
    h.fill(samples, weights=weights)
    return h


@pytest.mark.parametrize(
    ("added", "chi2", "pvalue"),
    [
        (0, 21.09, 0.33),  # ROOT doc: "equal to 21.09 with p-value equal to 0.33"
        (17, 32.33, 0.029),  # 17 events added to bin 15: "32.33 with p-value equal to 0.029"
    ],
)
def test_root_documentation_examples(added, chi2, pvalue):
    contents = list(H1)
    contents[14] += added
    h1 = histogram(contents, entries=200 + added)
    h2 = histogram(H2, H2_ERRORS, entries=500)
    assert choose_mode(h1, h2) == "UW"  # ROOT picks unweighted-weighted from the weights
    outcome = chi2_test(h1, h2)
    assert outcome.mode == "UW"
    assert outcome.ndf == 19  # no bin is empty in both
    assert outcome.chi2 == pytest.approx(chi2, abs=0.005)
    decimals = len(str(pvalue).split(".")[1])
    assert round(outcome.pvalue, decimals) == pvalue
    assert outcome.problem is None


def test_documented_outlier_shows_in_residuals():
    contents = list(H1)
    contents[14] += 17
    outcome = chi2_test(histogram(contents), histogram(H2, H2_ERRORS))
    worst = int(np.argmax(np.abs(outcome.residuals)))
    assert worst == 14  # bin number 15, where the events were added
    assert abs(outcome.residuals[14]) > 3
    quiet = chi2_test(histogram(H1), histogram(H2, H2_ERRORS))
    assert np.max(np.abs(quiet.residuals)) < 2.5


def test_unweighted_matches_scipy_contingency_table():
    rng = np.random.default_rng(1)
    h1, h2 = filled(rng.normal(size=4000)), filled(rng.normal(0.05, 1.0, size=3000))
    outcome = chi2_test(h1, h2)
    table = np.array([h1.values[1:-1], h2.values[1:-1]])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    assert outcome.mode == "UU"
    assert outcome.chi2 == pytest.approx(expected.statistic, rel=1e-10)
    assert outcome.ndf == expected.dof
    assert outcome.pvalue == pytest.approx(expected.pvalue, rel=1e-8)


def test_unweighted_residuals_are_habermans_adjusted_residuals():
    rng = np.random.default_rng(2)
    h1, h2 = filled(rng.normal(size=2000), 10), filled(rng.normal(size=1500), 10)
    outcome = chi2_test(h1, h2)
    n, m = h1.values[1:-1], h2.values[1:-1]
    total_n, total = n.sum(), n.sum() + m.sum()
    expected_n = (n + m) * total_n / total
    adjusted = (n - expected_n) / np.sqrt(
        expected_n * (1 - total_n / total) * (1 - (n + m) / total)
    )
    assert outcome.residuals == pytest.approx(adjusted)


def test_weighted_weighted_formula():
    rng = np.random.default_rng(3)
    w1, w2 = rng.uniform(0.5, 2, 3000), rng.uniform(0.5, 2, 3000)
    h1 = filled(rng.normal(size=3000), weights=w1)
    h2 = filled(rng.normal(size=3000), weights=w2)
    assert choose_mode(h1, h2) == "WW"
    outcome = chi2_test(h1, h2)
    c1, c2 = h1.values[1:-1], h2.values[1:-1]
    s1, s2 = h1.sumw2[1:-1], h2.sumw2[1:-1]
    used = (c1 != 0) | (c2 != 0)
    W1, W2 = c1.sum(), c2.sum()
    expected = np.sum(((W1 * c2 - W2 * c1) ** 2 / (W1**2 * s2 + W2**2 * s1))[used])
    assert outcome.chi2 == pytest.approx(expected)
    assert outcome.ndf == int(used.sum()) - 1
    assert outcome.pvalue == pytest.approx(stats.chi2.sf(expected, outcome.ndf))


def test_degrees_of_freedom_drop_for_bins_empty_in_both():
    outcome = chi2_arrays([5, 0, 7, 0, 9], [5, 0, 7, 0, 9], [4, 0, 8, 1, 9], [4, 0, 8, 1, 9])
    assert outcome.ndf == 5 - 1 - 1  # only bin 2 is empty in both


def test_flow_bins_only_when_asked():
    h1 = histogram([10, 20, 30], low=0, high=3)
    h2 = histogram([10, 20, 30], low=0, high=3)
    h1.values[0], h2.values[0] = 50, 5  # very different underflow
    h1.values[-1], h2.values[-1] = 40, 40
    assert chi2_test(h1, h2).pvalue == pytest.approx(1.0)
    with_flow = chi2_test(h1, h2, underflow=True, overflow=True)
    assert with_flow.ndf == 4
    assert with_flow.pvalue < 1e-5


def test_norm_option_recovers_counts_of_scaled_histograms():
    rng = np.random.default_rng(4)
    h1, h2 = filled(rng.normal(size=5000)), filled(rng.normal(size=5000))
    plain = chi2_test(h1, h2, mode="UU")
    scaled = chi2_test(h1.scaled(0.01), h2.scaled(0.01), mode="UU", norm=True)
    assert scaled.chi2 == pytest.approx(plain.chi2)
    assert scaled.ndf == plain.ndf


def test_itself_and_scaled_copy_pass():
    rng = np.random.default_rng(5)
    h = filled(rng.normal(size=10000))
    test = configure("chi2")
    same = test.run("h", h, [h])
    assert (same.status, same.statistic, same.pvalue) == (Status.SUCCESS, 0.0, 1.0)
    for factor in (0.5, 3.0):
        scaled = test.run("h", h, [h.scaled(factor)])
        assert scaled.status is Status.SUCCESS
        assert scaled.info["mode"] == "UW"  # a scaled copy is weighted
        assert scaled.pvalue > 0.99


def test_different_shapes_fail():
    rng = np.random.default_rng(6)
    result = configure("chi2", 1e-5).run(
        "h", filled(rng.normal(size=5000)), [filled(rng.normal(0.3, 1, size=5000))]
    )
    assert result.status is Status.FAIL
    assert result.pvalue < 1e-5 and result.ndf == 29


def test_empty_histograms_are_null_or_fail_never_silent():
    empty, full = histogram([0, 0, 0, 0]), histogram([1, 5, 3, 2])
    test = configure("chi2")
    both = test.run("h", empty, [empty])
    assert (both.status, both.reason) == (Status.NULL, Reason.EMPTY)
    assert test.run("h", empty, [full]).reason is Reason.EMPTY_IN_TEST
    assert test.run("h", empty, [full]).status is Status.FAIL
    assert test.run("h", full, [empty]).reason is Reason.EMPTY_IN_REFERENCE


def test_single_filled_bin_is_too_few_bins():
    h = histogram([0, 12, 0, 0])
    result = configure("chi2").run("h", h, [h])
    assert (result.status, result.reason) == (Status.NULL, Reason.TOO_FEW_BINS)


def test_weighted_with_all_errors_zero_is_null():
    h = histogram([1.5, 2.5, 3.5], errors=[0, 0, 0])
    h.stats = {"fTsumw": 7.5, "fTsumw2": 0.0}
    result = configure("chi2", None).run("h", h, [h])
    assert (result.status, result.reason) == (Status.NULL, Reason.ZERO_ERRORS)


def test_profiles_compare_means():
    rng = np.random.default_rng(7)

    def profile(shift):
        p = Histogram.empty("p", [Axis.regular(10, 0, 1)], "TProfile")
        x = rng.uniform(0, 1, 4000)
        p.fill(x, y=rng.normal(shift, 1, 4000))
        return p

    a, b = profile(0.0), profile(0.0)
    same = chi2_test(a, a)
    assert (same.mode, same.chi2, same.ndf) == ("profile", 0.0, 10)
    assert chi2_test(a, b).pvalue > 1e-4
    assert chi2_test(a, profile(0.5)).pvalue < 1e-10
