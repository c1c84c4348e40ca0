"""Beta-binomial pulls against one or several references (AutoDQM's beta_binomial).

For each bin, the probability of the test's count given a reference is the
beta-binomial probability (n = test total, α = r + 1, β = R - r + 1, where a
relative tolerance ``tol`` caps the reference's statistical weight for very
large contents), relative to the most likely count. With several references the
per-bin probabilities are averaged. A probability becomes a pull (the normal
deviation with that two-sided probability), signed by the difference from the
probability-weighted reference.

The figures of merit are the chi-square per filled bin (Σ pull² / bins filled
in either) and the largest |pull| corrected for the number of filled bins tried
(Šidák: P = 1 - (1 - p)^n, binomial approximation n·p when small). That
corrected probability is the p-value compared with the threshold. Contents are
rounded to counts, as AutoDQM does; profiles hold means and are not supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from overwatch.histogram import Histogram
from processing.compare.checks import empty_problem, from_problem, is_empty, region
from processing.compare.registry import Option, register
from processing.compare.results import ComparisonResult, Reason, Status, judged, not_compared

#: Probabilities are floored here (about 37 sigma) so pulls stay finite.
SMALLEST_PROBABILITY = 1e-300


def sigmas(probability: np.ndarray | float) -> np.ndarray:
    """The normal deviation whose two-sided tail probability is ``probability``."""
    return np.sqrt(special.chdtri(1, np.maximum(probability, SMALLEST_PROBABILITY)))


def _probability(k, n_data, ref, n_ref, tol):
    """Beta-binomial probability of k test counts given the reference bin.

    n = test total, α = r + 1, β = R - r + 1, where the tolerance scales the
    reference's weight down for large contents. Written with log-gamma
    functions (scipy.stats.betabinom gives the same, several times slower).
    """
    scale = np.power(1.0 + np.power(ref * tol * tol, 2), -0.5)
    n_ref_tol = np.round(scale * n_ref)
    a = np.round(ref * scale) + 1.0
    b = n_ref_tol - a + 2.0
    valid = (k >= 0) & (k <= n_data) & (b > 0)
    k, a, b = np.where(valid, k, 0.0), np.where(valid, a, 1.0), np.where(valid, b, 1.0)
    log = (
        special.gammaln(n_data + 1.0)
        - special.gammaln(k + 1.0)
        - special.gammaln(n_data - k + 1.0)
        + special.betaln(k + a, n_data - k + b)
        - special.betaln(a, b)
    )
    return np.where(valid, np.exp(log), 0.0)


def relative_probability(data: np.ndarray, ref: np.ndarray, tol: float = 0.01) -> np.ndarray:
    """Per-bin probability of the test count relative to the most likely count.

    Bins empty in both histograms are 1 (nothing unexpected) without computing.
    """
    n_data, n_ref = data.sum(), ref.sum()
    ratio = np.ones_like(data, dtype=np.float64)
    filled = (data != 0) | (ref != 0)
    d, r = data[filled], ref[filled]
    mean = n_data * r / n_ref
    likeliest = np.maximum(
        _probability(np.minimum(np.ceil(mean), n_data), n_data, r, n_ref, tol),
        _probability(np.maximum(np.floor(mean), 0.0), n_data, r, n_ref, tol),
    )
    this = _probability(d, n_data, r, n_ref, tol)
    value = np.divide(this, likeliest, out=np.zeros_like(this), where=likeliest != 0)
    value[this > likeliest] = 1.0
    ratio[filled] = value
    return ratio


def corrected_pull(pull: float, trials: int) -> tuple[float, float]:
    """(pull, probability) of the largest pull once ``trials`` bins were tried."""
    probability = float(stats.chi2.sf(min(abs(pull), 37.0) ** 2, 1))
    if trials * probability < 0.01:
        corrected = trials * probability
    else:
        corrected = 1.0 - (1.0 - probability) ** trials
    return float(sigmas(corrected)) * float(np.sign(pull) or 1.0), corrected


@dataclass
class BetaBinomialOutcome:
    pulls: np.ndarray = field(default_factory=lambda: np.zeros(0))
    expected: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chi2: float = 0.0
    max_pull: float = 0.0
    pvalue: float = 1.0
    bins_used: int = 0
    references_used: int = 0
    problem: tuple[Reason, str] | None = None


def beta_binomial_pulls(
    data: np.ndarray, references: Sequence[np.ndarray], tol: float = 0.01
) -> BetaBinomialOutcome:
    """The test on arrays of bin contents (rounded to counts here)."""
    data = np.round(np.asarray(data, dtype=np.float64))
    refs = [np.round(np.asarray(r, dtype=np.float64)) for r in references]
    usable = [r for r in refs if r.sum() > 0]
    outcome = BetaBinomialOutcome(references_used=len(usable))
    outcome.problem = empty_problem(float(max(data.sum(), 0)), float(len(usable)))
    if outcome.problem is not None:
        reason, detail = outcome.problem
        outcome.problem = (reason, detail + " (contents rounded to counts)")
        return outcome
    summed = np.sum(usable, axis=0)
    outcome.bins_used = int(np.count_nonzero(summed + data))
    probabilities = [
        np.maximum(relative_probability(data, r, tol), SMALLEST_PROBABILITY) for r in usable
    ]
    total = np.sum(probabilities, axis=0)
    expected = np.zeros_like(data)
    for ref, probability in zip(usable, probabilities, strict=True):
        expected += ref / ref.sum() * probability / total
    outcome.expected = expected * data.sum()
    outcome.pulls = sigmas(total / len(usable)) * np.sign(data - outcome.expected)
    if outcome.bins_used < 1:
        outcome.problem = (Reason.TOO_FEW_BINS, "no filled bin")
        return outcome
    outcome.chi2 = float(np.sum(outcome.pulls**2) / outcome.bins_used)
    high, p_high = corrected_pull(float(np.max(outcome.pulls)), outcome.bins_used)
    low, p_low = corrected_pull(float(np.min(outcome.pulls)), outcome.bins_used)
    outcome.max_pull, outcome.pvalue = (low, p_low) if abs(low) > abs(high) else (high, p_high)
    return outcome


@register(
    "beta_binomial",
    "Beta-binomial pulls against one or several references, max pull corrected (AutoDQM)",
    default_threshold=1e-5,
    aliases=("betabinomial", "beta-binomial", "betab"),
    options={"tol": Option(float, 0.01, "relative tolerance on the references", minimum=0.0)},
    multi_reference=True,
)
def run_beta_binomial(
    path: str,
    test: Histogram,
    references: Sequence[Histogram],
    threshold: float,
    tol: float = 0.01,
) -> ComparisonResult:
    if test.is_profile:
        return not_compared(
            path,
            "beta_binomial",
            Status.SKIPPED,
            Reason.UNSUPPORTED,
            "a profile holds means, not counts",
        )
    if is_empty(test) and all(is_empty(r) for r in references):
        return not_compared(
            path, "beta_binomial", Status.NULL, Reason.EMPTY, "all histograms are empty"
        )
    index = region(test)
    outcome = beta_binomial_pulls(test.values[index], [r.values[index] for r in references], tol)
    if outcome.problem is not None:
        return from_problem(path, "beta_binomial", *outcome.problem)
    return judged(
        path,
        "beta_binomial",
        outcome.pvalue,
        threshold,
        statistic=outcome.max_pull,
        chi2_per_bin=outcome.chi2,
        bins_used=outcome.bins_used,
        references=outcome.references_used,
    )
