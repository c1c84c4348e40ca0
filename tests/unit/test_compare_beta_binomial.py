"""beta_binomial: AutoDQM's beta-binomial pulls, one or several references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from overwatch.histogram import Axis, Histogram
from processing.compare.beta_binomial import (
    _probability,
    beta_binomial_pulls,
    corrected_pull,
    relative_probability,
)
from processing.compare.registry import configure
from processing.compare.results import Reason, Status


def histogram(contents) -> Histogram:
    contents = np.asarray(contents, dtype=float)
    axes = [Axis.regular(n, 0, 1) for n in contents.shape]
    return Histogram(
        name="h", class_name=f"TH{contents.ndim}D", axes=axes, values=np.pad(contents, 1)
    )


def test_probability_is_scipys_beta_binomial():
    k = np.array([0.0, 3, 10, 40, 90])
    ref = np.array([0.0, 5, 12, 30, 100])
    n_data, n_ref = 120.0, 250.0
    for tol in (0.01, 0.3):
        scale = (1 + (ref * tol * tol) ** 2) ** -0.5
        n_ref_tol, ref_tol = np.round(scale * n_ref), np.round(ref * scale)
        expected = stats.betabinom.pmf(k, n_data, ref_tol + 1, n_ref_tol - ref_tol + 1)
        assert _probability(k, n_data, ref, n_ref, tol) == pytest.approx(expected, rel=1e-10)


def test_relative_probability_is_one_at_the_most_likely_count():
    ref = np.array([10.0, 20, 30, 40])
    data = ref.copy()
    assert relative_probability(data, ref) == pytest.approx(np.ones(4))
    far = relative_probability(np.array([40.0, 20, 30, 10]), ref)
    assert far[0] < 1e-3 and far[3] < 1e-3


def test_corrected_pull_accounts_for_the_bins_tried():
    pull, p = corrected_pull(3.0, 1)
    assert pull == pytest.approx(3.0) and p == pytest.approx(2 * stats.norm.sf(3.0))
    pull100, p100 = corrected_pull(3.0, 100)
    assert p100 == pytest.approx(1 - (1 - 2 * stats.norm.sf(3.0)) ** 100)
    assert pull100 == pytest.approx(stats.norm.isf(p100 / 2))
    assert corrected_pull(-4.0, 10)[0] < 0  # the sign is kept


def test_itself_and_scaled_copy_pass():
    rng = np.random.default_rng(1)
    h = histogram(rng.poisson(200, size=(10, 12)))
    test = configure("beta_binomial")
    same = test.run("h", h, [h])
    assert (same.status, same.pvalue, same.statistic) == (Status.SUCCESS, 1.0, 0.0)
    assert test.run("h", h, [h.scaled(2.0)]).status is Status.SUCCESS


def test_hot_bin_fails_and_several_references_are_averaged():
    rng = np.random.default_rng(2)
    references = [histogram(rng.poisson(100, size=50)) for _ in range(3)]
    quiet = histogram(rng.poisson(100, size=50))
    test = configure("beta_binomial")
    result = test.run("h", quiet, references)
    assert result.status is Status.SUCCESS
    assert result.info["references"] == 3
    hot_counts = quiet.values.copy()
    hot_counts[20] += 300
    hot = Histogram(name="h", class_name="TH1D", axes=quiet.axes, values=hot_counts)
    failed = test.run("h", hot, references)
    assert failed.status is Status.FAIL
    assert failed.statistic > 5  # the corrected maximum pull


def test_empty_references_are_left_out():
    rng = np.random.default_rng(3)
    data = rng.poisson(50, size=20).astype(float)
    outcome = beta_binomial_pulls(data, [np.zeros(20), data])
    assert outcome.references_used == 1 and outcome.pvalue == 1.0
    none_left = beta_binomial_pulls(data, [np.zeros(20)])
    assert none_left.problem[0] is Reason.EMPTY_IN_REFERENCE


def test_profiles_are_not_supported():
    p = Histogram.empty("p", [Axis.regular(3, 0, 3)], "TProfile")
    p.fill([0.5, 1.5], y=[1.0, 2.0])
    result = configure("beta_binomial").run("p", p, [p])
    assert (result.status, result.reason) == (Status.SKIPPED, Reason.UNSUPPORTED)
