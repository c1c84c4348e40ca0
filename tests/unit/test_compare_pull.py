"""pull: AutoDQM's pull values with exact asymmetric Poisson errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from overwatch.histogram import Axis, Histogram
from processing.compare.pull import largest_pull_probability, poisson_errors, pull_values
from processing.compare.registry import configure
from processing.compare.results import Reason, Status


def histogram(contents, ndim=1) -> Histogram:
    contents = np.asarray(contents, dtype=float)
    padded = np.pad(contents, 1)
    axes = [Axis.regular(n, 0, 1) for n in contents.shape]
    return Histogram(name="h", class_name=f"TH{ndim}D", axes=axes, values=padded)


def test_garwood_intervals():
    n = np.array([0.0, 1.0, 2.0, 10.0, 57.0, 1000.0])
    lower, upper = poisson_errors(n)
    # Textbook (PDG) 68.27 % central intervals: 0 -> [0, 1.84], 1 -> [0.17, 3.30], 10 -> [6.89, 14.27]
    assert upper[0] == pytest.approx(1.841, abs=1e-3) and lower[0] == 0.0
    assert (1 - lower[1], 1 + upper[1]) == pytest.approx((0.173, 3.300), abs=1e-3)
    assert (10 - lower[3], 10 + upper[3]) == pytest.approx((6.891, 14.267), abs=1e-3)
    alpha = 1 - 0.6826894921370859
    positive = n > 0
    expected_low = n[positive] - stats.chi2.ppf(alpha / 2, 2 * n[positive]) / 2
    expected_up = stats.chi2.ppf(1 - alpha / 2, 2 * (n + 1)) / 2 - n
    assert lower[positive] == pytest.approx(expected_low)
    assert upper == pytest.approx(expected_up)
    # Non-integer contents take the same formula, value by value.
    fractional = poisson_errors(np.array([2.5, 0.5]))
    assert fractional[1][0] == pytest.approx(stats.chi2.ppf(1 - alpha / 2, 7) / 2 - 2.5)


def test_pulls_use_the_errors_facing_each_other():
    test, reference = histogram([10.0, 30.0]), histogram([20.0, 20.0])
    outcome = pull_values(test, reference)
    low_t, up_t = poisson_errors(np.array([10.0, 30.0]))
    low_r, up_r = poisson_errors(np.array([20.0, 20.0]))
    expected_below = (10 - 20) / np.hypot(up_t[0], low_r[0])  # test below: its upper error
    expected_above = (30 - 20) / np.hypot(low_t[1], up_r[1])
    assert outcome.pulls == pytest.approx([expected_below, expected_above])
    assert outcome.max_pull == pytest.approx(max(abs(expected_below), abs(expected_above)))
    assert outcome.chi2_per_bin == pytest.approx((expected_below**2 + expected_above**2) / 2)
    assert outcome.ndf == 1
    chi2_p = stats.chi2.sf(expected_below**2 + expected_above**2, 1)
    largest = max(abs(expected_below), abs(expected_above))
    max_p = 1 - (1 - 2 * stats.norm.sf(largest)) ** 2  # the largest of 2 filled bins
    assert outcome.chi2_pvalue == pytest.approx(chi2_p)
    assert outcome.max_pull_pvalue == pytest.approx(max_p)
    assert outcome.pvalue == pytest.approx(min(1.0, 2 * min(chi2_p, max_p)))


def test_largest_pull_probability_in_the_tails():
    assert largest_pull_probability(0.0, 100) == 1.0
    assert largest_pull_probability(3.0, 1) == pytest.approx(2 * stats.norm.sf(3.0))
    assert largest_pull_probability(3.0, 50) == pytest.approx(
        1 - (1 - 2 * stats.norm.sf(3.0)) ** 50
    )
    assert largest_pull_probability(12.0, 400) == pytest.approx(400 * 2 * stats.norm.sf(12.0))


def test_test_histogram_is_scaled_to_the_reference():
    reference = histogram([[10, 20], [30, 40]], ndim=2)
    result = configure("pull").run("h", histogram([[1, 2], [3, 4]], ndim=2), [reference])
    assert result.status is Status.SUCCESS
    assert result.statistic == 0.0 and result.info["max_pull"] == 0.0


def test_itself_passes_and_a_hot_spot_fails():
    rng = np.random.default_rng(1)
    counts = rng.poisson(50, size=(20, 20)).astype(float)
    base = histogram(counts, ndim=2)
    test = configure("pull")
    assert test.run("h", base, [base]).pvalue == 1.0
    hot = counts.copy()
    hot[4, 7] += 200
    result = test.run("h", histogram(hot, ndim=2), [base])
    assert result.status is Status.FAIL
    assert result.info["max_pull"] > 10


def test_statistical_fluctuations_pass():
    rng = np.random.default_rng(2)
    a = histogram(rng.poisson(30, size=100))
    b = histogram(rng.poisson(30, size=100))
    assert configure("pull").run("h", a, [b]).status is Status.SUCCESS


def test_uncomparable_cases():
    empty = histogram([0.0, 0.0, 0.0])
    test = configure("pull")
    assert test.run("h", empty, [empty]).reason is Reason.EMPTY
    assert test.run("h", histogram([0.0, 4.0, 0.0]), [histogram([0.0, 4.0, 0.0])]).reason is (
        Reason.TOO_FEW_BINS
    )
    assert test.run("h", histogram([1.0, 4.0]), [empty.copy()]).status is Status.SKIPPED
