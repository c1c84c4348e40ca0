"""Chi-square homogeneity test with ROOT's ``TH1::Chi2Test`` semantics.

Three comparisons, as in ROOT (after Gagunashvili, arXiv:physics/0605123):
``UU`` two unweighted histograms (Pearson), ``UW`` unweighted against weighted,
``WW`` two weighted histograms. Without an explicit mode the choice is ROOT's:
a histogram is unweighted when its sum of weights equals its effective number
of entries (within 1). ``NORM`` (UU only) first rescales scaled histograms to
effective counts. Bins empty in both histograms lower the degrees of freedom;
under- and overflow bins are used only when asked for. Normalised (adjusted)
residuals are computed for every bin.

Profiles hold means, not counts, so they are compared as means with their
errors: chi2 = sum((m1 - m2)^2 / (e1^2 + e2^2)) over the bins filled in both,
ndf = the number of such bins. (ROOT would treat the means as counts, which
says nothing useful about a profile.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from overwatch.histogram import Histogram
from processing.compare.checks import (
    empty_problem,
    flat,
    from_problem,
    is_empty,
    is_weighted,
    region,
    root_prob,
)
from processing.compare.registry import Option, register
from processing.compare.results import ComparisonResult, Reason, Status, judged, not_compared

MODES = ("UU", "UW", "WW")


@dataclass
class Chi2Outcome:
    """The numbers ROOT's Chi2TestX returns, or the reason it could not.

    ``problem`` is set (and chi2/pvalue meaningless) when ROOT would report an
    error: a histogram empty in the range, bins with zero errors, no degree of freedom.
    """

    chi2: float = 0.0
    ndf: int = 0
    pvalue: float = 0.0
    mode: str = "UU"
    igood: int = 0
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    problem: tuple[Reason, str] | None = None


def chi2_arrays(
    c1: np.ndarray,
    e1sq: np.ndarray,
    c2: np.ndarray,
    e2sq: np.ndarray,
    mode: str = "UU",
    norm: bool = False,
) -> Chi2Outcome:
    """Chi2TestX on flat arrays of the bins in range (contents and squared errors)."""
    c1, e1sq, c2, e2sq = (np.asarray(a, dtype=np.float64) for a in (c1, e1sq, c2, e2sq))
    if mode not in MODES:
        raise ValueError(f"chi2 mode must be one of {MODES}, not {mode!r}")
    if mode == "UU":
        return _unweighted_unweighted(c1, e1sq, c2, e2sq, norm)
    if mode == "UW":
        return _unweighted_weighted(c1, c2, e2sq)
    return _weighted_weighted(c1, e1sq, c2, e2sq)


def _finish(outcome: Chi2Outcome) -> Chi2Outcome:
    if outcome.problem is None and outcome.ndf < 1:
        outcome.problem = (Reason.TOO_FEW_BINS, "no degree of freedom left")
    if outcome.problem is None:
        outcome.pvalue = root_prob(outcome.chi2, outcome.ndf)
    return outcome


def _unweighted_unweighted(c1, e1sq, c2, e2sq, norm: bool) -> Chi2Outcome:
    outcome = Chi2Outcome(mode="UU", residuals=np.zeros(len(c1)))
    if norm:
        # Back to effective counts (rounded as ROOT does to avoid rounding errors).
        if e1sq.sum() <= 0 or e2sq.sum() <= 0:
            outcome.problem = (Reason.ZERO_ERRORS, "NORM needs non-zero errors in both")
            return outcome
        with np.errstate(divide="ignore", invalid="ignore"):
            c1 = np.where(e1sq > 0, np.floor(c1 * c1 / e1sq + 0.5), 0.0)
            c2 = np.where(e2sq > 0, np.floor(c2 * c2 / e2sq + 0.5), 0.0)
    sum1, sum2 = float(c1.sum()), float(c2.sum())
    if sum1 == 0 or sum2 == 0:
        outcome.problem = empty_problem(sum1, sum2)
        return outcome
    total = sum1 + sum2
    used = ~((np.trunc(c1) == 0) & (np.trunc(c2) == 0))
    outcome.ndf = len(c1) - 1 - int(np.count_nonzero(~used))
    n1, n2, binsum = c1[used], c2[used], c1[used] + c2[used]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected1 = binsum * sum1 / total
        correction = (1.0 - sum1 / total) * (1.0 - binsum / total)
        outcome.residuals[used] = (n1 - expected1) / np.sqrt(expected1) / np.sqrt(correction)
        delta = sum2 * n1 - sum1 * n2
        outcome.chi2 = float(np.sum(delta * delta / binsum) / (sum1 * sum2))
    outcome.igood = int(np.any(n1 < 1)) + 2 * int(np.any(n2 < 1))
    return _finish(outcome)


def _unweighted_weighted(c1, c2, e2sq) -> Chi2Outcome:
    outcome = Chi2Outcome(mode="UW", residuals=np.zeros(len(c1)))
    sum1, sum2 = float(c1.sum()), float(c2.sum())
    if sum1 == 0 or sum2 == 0:
        outcome.problem = empty_problem(sum1, sum2)
        return outcome
    sumw2 = float(e2sq.sum())
    used = ~((c1 * c1 == 0) & (c2 * c2 == 0))
    outcome.ndf = len(c1) - 1 - int(np.count_nonzero(~used))
    e2sq = e2sq.copy()
    holes = used & (c2 * c2 == 0) & (e2sq == 0)
    if np.any(holes):
        if sumw2 <= 0:
            outcome.problem = (Reason.ZERO_ERRORS, "the weighted histogram has all errors zero")
            return outcome
        # An empty weighted bin gets the average error per unit weight, as ROOT does.
        e2sq[holes] = sumw2 / sum2
    n1, w2, s2 = c1[used], c2[used], e2sq[used]
    var1 = sum2 * w2 - sum1 * s2
    var2 = var1 * var1 + 4.0 * sum2 * sum2 * n1 * s2
    if np.any((var1 * var1 + n1 == 0) | (var1 + np.sqrt(var2) == 0)):
        return _finish(_unweighted_weighted_scalar(outcome, c1, c2, e2sq, used, sum1, sum2))
    var2 = np.sqrt(var2)
    probability = (var1 + var2) / (2.0 * sum2 * sum2)
    expected1, expected2 = probability * sum1, probability * sum2
    delta1, delta2 = n1 - expected1, w2 - expected2
    with np.errstate(divide="ignore", invalid="ignore"):
        weighted_term = np.where(s2 > 0, delta2 * delta2 / s2, 0.0)
        outcome.chi2 = float(np.sum(delta1 * delta1 / expected1) + np.sum(weighted_term))
        temp1 = sum2 * s2 / var2
        temp2 = 1.0 + (sum1 * s2 - sum2 * w2) / var2
        temp2 = temp1 * temp1 * sum1 * probability * (1.0 - probability) + temp2 * temp2 * s2 / 4.0
        outcome.residuals[used] = np.where(
            s2 > 0, -delta2 / np.sqrt(temp2), delta1 / np.sqrt(expected1)
        )
        few = (s2 > 0) & (w2 * w2 / s2 < 10)
    outcome.igood = int(np.any(n1 < 1)) + 2 * int(np.any(few))
    return _finish(outcome)


def _unweighted_weighted_scalar(outcome, c1, c2, e2sq, used, sum1, sum2) -> Chi2Outcome:
    """ROOT's bin loop, kept for the rare bins where the estimate needs nudging.

    ROOT adds one event to the unweighted bin (and total) until the maximum
    likelihood estimate is defined; the total then stays raised for later bins,
    so this cannot be vectorised.
    """
    chi2, m, n = 0.0, 0, 0
    for i in np.flatnonzero(used):
        cnt1, cnt2, s2 = float(c1[i]), float(c2[i]), float(e2sq[i])
        if cnt1 < 1:
            m += 1
        if s2 > 0 and cnt2 * cnt2 / s2 < 10:
            n += 1
        var1 = sum2 * cnt2 - sum1 * s2
        var2 = var1 * var1 + 4.0 * sum2 * sum2 * cnt1 * s2
        while var1 * var1 + cnt1 == 0 or var1 + var2 == 0:
            sum1, cnt1 = sum1 + 1, cnt1 + 1
            var1 = sum2 * cnt2 - sum1 * s2
            var2 = var1 * var1 + 4.0 * sum2 * sum2 * cnt1 * s2
        var2 = float(np.sqrt(var2))
        while var1 + var2 == 0:
            sum1, cnt1 = sum1 + 1, cnt1 + 1
            var1 = sum2 * cnt2 - sum1 * s2
            var2 = float(np.sqrt(var1 * var1 + 4.0 * sum2 * sum2 * cnt1 * s2))
        probability = (var1 + var2) / (2.0 * sum2 * sum2)
        expected1, expected2 = probability * sum1, probability * sum2
        delta1, delta2 = cnt1 - expected1, cnt2 - expected2
        chi2 += delta1 * delta1 / expected1
        if s2 > 0:
            chi2 += delta2 * delta2 / s2
            temp1 = sum2 * s2 / var2
            temp2 = 1.0 + (sum1 * s2 - sum2 * cnt2) / var2
            temp2 = temp1 * temp1 * sum1 * probability * (1 - probability) + temp2 * temp2 * s2 / 4
            outcome.residuals[i] = -delta2 / np.sqrt(temp2)
        else:
            outcome.residuals[i] = delta1 / np.sqrt(expected1)
    outcome.chi2 = chi2
    outcome.igood = int(m > 0) + 2 * int(n > 0)
    return outcome


def _weighted_weighted(c1, e1sq, c2, e2sq) -> Chi2Outcome:
    outcome = Chi2Outcome(mode="WW", residuals=np.zeros(len(c1)))
    sum1, sum2 = float(c1.sum()), float(c2.sum())
    if sum1 == 0 or sum2 == 0:
        outcome.problem = empty_problem(sum1, sum2)
        return outcome
    if e1sq.sum() <= 0 and e2sq.sum() <= 0:
        outcome.problem = (Reason.ZERO_ERRORS, "both histograms have all errors zero")
        return outcome
    used = ~((c1 * c1 == 0) & (c2 * c2 == 0))
    outcome.ndf = len(c1) - 1 - int(np.count_nonzero(~used))
    n1, n2, s1, s2 = c1[used], c2[used], e1sq[used], e2sq[used]
    if np.any((s1 == 0) & (s2 == 0)):
        outcome.problem = (Reason.ZERO_ERRORS, "a filled bin has zero error in both histograms")
        return outcome
    sigma = sum1 * sum1 * s2 + sum2 * sum2 * s1
    delta = sum2 * n1 - sum1 * n2
    outcome.chi2 = float(np.sum(delta * delta / sigma))
    with np.errstate(divide="ignore", invalid="ignore"):
        probability = (n1 * sum1 * s2 + n2 * sum2 * s1) / sigma
        first = (n1 - sum1 * probability) / np.sqrt(s1 * (1.0 - s2 * sum1 * sum1 / sigma))
        second = -(n2 - sum2 * probability) / np.sqrt(s2 * (1.0 - s1 * sum2 * sum2 / sigma))
        outcome.residuals[used] = np.where(s1 > s2, first, second)
        few1 = (s1 > 0) & (n1 * n1 / s1 < 10)
        few2 = (s2 > 0) & (n2 * n2 / s2 < 10)
    outcome.igood = int(np.any(few1)) + 2 * int(np.any(few2))
    return _finish(outcome)


def choose_mode(test: Histogram, reference: Histogram) -> str:
    """ROOT's automatic choice from the histograms' weights."""
    if is_weighted(test):
        return "WW"
    return "UW" if is_weighted(reference) else "UU"


def chi2_test(
    test: Histogram,
    reference: Histogram,
    mode: str = "auto",
    norm: bool = False,
    underflow: bool = False,
    overflow: bool = False,
) -> Chi2Outcome:
    """``test.Chi2Test(reference, option)`` for two histograms of the same binning."""
    if test.is_profile:
        return profile_chi2(test, reference, underflow, overflow)
    mode = choose_mode(test, reference) if mode.lower() == "auto" else mode.upper()
    index = region(test, underflow, overflow)
    return chi2_arrays(
        flat(test.values, index),
        flat(test.variances(), index),
        flat(reference.values, index),
        flat(reference.variances(), index),
        mode=mode,
        norm=norm and mode == "UU",
    )


def profile_chi2(
    test: Histogram, reference: Histogram, underflow: bool = False, overflow: bool = False
) -> Chi2Outcome:
    """Bin means compared with their errors, over the bins filled in both profiles."""
    index = region(test, underflow, overflow)
    entries1, entries2 = flat(test.bin_entries, index), flat(reference.bin_entries, index)
    outcome = Chi2Outcome(mode="profile", residuals=np.zeros(len(entries1)))
    if not entries1.any() or not entries2.any():
        outcome.problem = empty_problem(
            float(np.abs(entries1).sum()), float(np.abs(entries2).sum())
        )
        return outcome
    means1, means2 = flat(test.bin_means(), index), flat(reference.bin_means(), index)
    variance = flat(test.variances(), index) + flat(reference.variances(), index)
    both = (entries1 != 0) & (entries2 != 0)
    used = both & (variance > 0)
    outcome.ndf = int(np.count_nonzero(used))
    if both.any() and not used.any():
        outcome.problem = (Reason.ZERO_ERRORS, "the filled bins have zero errors in both")
        return outcome
    pulls = (means1[used] - means2[used]) / np.sqrt(variance[used])
    outcome.residuals[used] = pulls
    outcome.chi2 = float(np.sum(pulls * pulls))
    outcome.igood = int(np.count_nonzero(both != ((entries1 != 0) | (entries2 != 0))))
    if outcome.ndf < 1:
        outcome.problem = (Reason.TOO_FEW_BINS, "no bin filled in both profiles")
        return outcome
    outcome.pvalue = root_prob(outcome.chi2, outcome.ndf)
    return outcome


def to_result(path: str, name: str, outcome: Chi2Outcome, threshold: float) -> ComparisonResult:
    """Status from an outcome: ROOT's errors become typed reasons, never a silent 0."""
    if outcome.problem is not None:
        result = from_problem(path, name, *outcome.problem)
        result.info["mode"] = outcome.mode
        return result
    return judged(
        path,
        name,
        outcome.pvalue,
        threshold,
        statistic=outcome.chi2,
        ndf=outcome.ndf,
        mode=outcome.mode,
        igood=outcome.igood,
    )


@register(
    "chi2",
    "Chi-square homogeneity test (ROOT TH1::Chi2Test: UU, UW or WW from the weights)",
    default_threshold=1e-5,
    aliases=("chi2test", "chisquare", "chi-square"),
    options={
        "mode": Option(str, "auto", "UU, UW, WW, or auto as ROOT chooses", ("auto", *MODES)),
        "norm": Option(bool, False, "NORM: histograms were scaled (UU only)"),
        "uf": Option(bool, False, "include underflow bins"),
        "of": Option(bool, False, "include overflow bins"),
    },
)
def run_chi2(
    path: str,
    test: Histogram,
    reference: Histogram,
    threshold: float,
    mode: str = "auto",
    norm: bool = False,
    uf: bool = False,
    of: bool = False,
) -> ComparisonResult:
    if is_empty(test) and is_empty(reference):
        return not_compared(path, "chi2", Status.NULL, Reason.EMPTY, "both histograms are empty")
    outcome = chi2_test(test, reference, mode=mode, norm=norm, underflow=uf, overflow=of)
    result = to_result(path, "chi2", outcome, threshold)
    if norm and outcome.mode != "UU":  # said, never dropped in silence
        result.info["norm"] = NORM_IGNORED.format(mode=outcome.mode)
    return result


#: ROOT's NORM changes only the unweighted test (UU); UW and WW compare shapes already.
NORM_IGNORED = (
    "norm not applied: ROOT's NORM is for unweighted histograms (UU); this comparison "
    "ran in {mode} mode, which compares shapes already"
)
