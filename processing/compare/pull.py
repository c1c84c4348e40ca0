"""Per-bin pulls with asymmetric Poisson errors (AutoDQM's pull values).

As AutoDQM's ``pull_values``: the test histogram is scaled to the reference's
total, each bin's pull is ``(d - r) / sqrt(σd² + σr²)`` where each side takes
the Poisson error pointing towards the other (the lower error of the larger
content, the upper error of the smaller), and the figures of merit are the
chi-square per bin (Σ pull² over all bins in range) and the largest |pull|.
Differences from AutoDQM, on purpose: the Poisson intervals are the exact
Garwood ones (AutoDQM's approximation is off by about one count), the test's
errors are those of its own counts scaled with it, weighted histograms use
their sumw2 errors, and any dimension is accepted (AutoDQM: 2D only).

AutoDQM flags a histogram when either figure is too large, so the p-value
compared with the threshold looks at both: that of Σ pull² for a chi-square
with (bins filled in either - 1) degrees of freedom, which sees broad
differences, and that of the largest |pull| corrected for the number of filled
bins tried (Šidák), which sees a single hot or dead bin; the smaller one,
doubled for the two looks (Bonferroni), capped at 1. Profiles are compared as
means with their errors, without scaling, over the bins filled in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from overwatch.histogram import Histogram
from processing.compare.checks import (
    empty_problem,
    from_problem,
    is_empty,
    is_weighted,
    region,
    root_prob,
)
from processing.compare.chi2 import profile_chi2
from processing.compare.registry import register
from processing.compare.results import ComparisonResult, Reason, Status, judged, not_compared

#: Probability content of ±1 standard deviation of a normal distribution.
ONE_SIGMA = 0.6826894921370859


def _garwood(n: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        lower = np.where(n > 0, n - special.gammaincinv(np.where(n > 0, n, 1.0), tail), 0.0)
    return lower, special.gammaincinv(n + 1.0, 1.0 - tail) - n


def poisson_errors(
    counts: np.ndarray, confidence: float = ONE_SIGMA
) -> tuple[np.ndarray, np.ndarray]:
    """Garwood (exact) lower and upper errors of Poisson counts (non-integers allowed)."""
    n = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
    tail = 0.5 * (1.0 - confidence)
    lower = np.zeros_like(n)
    upper = np.full_like(n, _garwood(np.zeros(1), tail)[1][0])
    filled = n > 0
    values = n[filled]
    if values.size and np.array_equal(values, np.round(values)):
        # Counts repeat a lot: the inverse gamma function is costly, so once per value.
        unique, inverse = np.unique(values, return_inverse=True)
        low, high = _garwood(unique, tail)
        lower[filled], upper[filled] = low[inverse], high[inverse]
    elif values.size:
        lower[filled], upper[filled] = _garwood(values, tail)
    return lower, upper


@dataclass
class PullOutcome:
    pulls: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chi2_per_bin: float = 0.0
    max_pull: float = 0.0
    ndf: int = 0
    pvalue: float = 0.0
    #: p-values of Σ pull² and of the largest pull (corrected for the bins tried).
    chi2_pvalue: float = 0.0
    max_pull_pvalue: float = 0.0
    problem: tuple[Reason, str] | None = None


def _errors(histogram: Histogram, contents: np.ndarray, index: tuple, scale: float):
    """(lower, upper) errors of a histogram's bins after scaling it by ``scale``."""
    if is_weighted(histogram):
        sigma = np.sqrt(histogram.variances()[index]) * abs(scale)
        return sigma, sigma
    lower, upper = poisson_errors(contents)
    return lower * abs(scale), upper * abs(scale)


def pull_values(test: Histogram, reference: Histogram) -> PullOutcome:
    """Pulls of the test against the reference, bins in range, shaped like the histogram."""
    if test.is_profile:
        chi2 = profile_chi2(test, reference)
        outcome = PullOutcome(ndf=chi2.ndf, problem=chi2.problem)
        shape = tuple(axis.nbins for axis in test.axes)
        outcome.pulls = chi2.residuals.reshape(shape, order="F")
        if outcome.problem is None:
            outcome.chi2_per_bin = chi2.chi2 / outcome.pulls.size
            outcome.max_pull = float(np.max(np.abs(chi2.residuals)))
            _combine(outcome, chi2.pvalue, outcome.ndf)
        return outcome
    index = region(test)
    data, ref = test.values[index], reference.values[index]
    outcome = PullOutcome(problem=empty_problem(float(data.sum()), float(ref.sum())))
    if outcome.problem is not None:
        return outcome
    scale = float(ref.sum() / data.sum())
    data_low, data_high = _errors(test, data, index, scale)
    ref_low, ref_high = _errors(reference, ref, index, 1.0)
    scaled = data * scale
    above = scaled >= ref
    data_error = np.where(above, data_low, data_high)
    ref_error = np.where(above, ref_high, ref_low)
    width = np.sqrt(data_error**2 + ref_error**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        outcome.pulls = np.where(width > 0, (scaled - ref) / width, 0.0)
    total = float(np.sum(outcome.pulls**2))
    outcome.chi2_per_bin = total / outcome.pulls.size
    outcome.max_pull = float(np.max(np.abs(outcome.pulls)))
    outcome.ndf = int(np.count_nonzero((data != 0) | (ref != 0))) - 1
    if outcome.ndf < 1:
        outcome.problem = (Reason.TOO_FEW_BINS, "fewer than two filled bins")
        return outcome
    _combine(outcome, root_prob(total, outcome.ndf), outcome.ndf + 1)
    return outcome


def largest_pull_probability(pull: float, trials: int) -> float:
    """Probability of a |pull| at least this large among ``trials`` normal bins (Šidák)."""
    single = float(special.erfc(abs(pull) / np.sqrt(2.0)))
    if trials * single < 1e-8:
        return trials * single  # the binomial limit, exact where 1 - (1 - p)^n underflows
    return float(-np.expm1(trials * np.log1p(-single))) if single < 1 else 1.0


def _combine(outcome: PullOutcome, chi2_pvalue: float, trials: int) -> None:
    outcome.chi2_pvalue = chi2_pvalue
    outcome.max_pull_pvalue = largest_pull_probability(outcome.max_pull, max(trials, 1))
    outcome.pvalue = min(1.0, 2.0 * min(chi2_pvalue, outcome.max_pull_pvalue))


@register(
    "pull",
    "Per-bin pulls with asymmetric Poisson errors; chi2 per bin and maximum pull (AutoDQM)",
    default_threshold=1e-5,
    aliases=("pull_values", "pullvals", "pulls"),
)
def run_pull(
    path: str, test: Histogram, reference: Histogram, threshold: float
) -> ComparisonResult:
    if is_empty(test) and is_empty(reference):
        return not_compared(path, "pull", Status.NULL, Reason.EMPTY, "both histograms are empty")
    outcome = pull_values(test, reference)
    if outcome.problem is not None:
        return from_problem(path, "pull", *outcome.problem)
    return judged(
        path,
        "pull",
        outcome.pvalue,
        threshold,
        statistic=outcome.chi2_per_bin,
        ndf=outcome.ndf,
        max_pull=outcome.max_pull,
        chi2_pvalue=outcome.chi2_pvalue,
        max_pull_pvalue=outcome.max_pull_pvalue,
    )
