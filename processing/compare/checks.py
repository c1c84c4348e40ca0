"""Checks and helpers every test shares: can two histograms be compared, which
bins does a test look at, is one side empty, ROOT's chi-square probability."""

from __future__ import annotations

import numpy as np
from scipy import special

from overwatch.histogram import Histogram
from processing.compare.results import ComparisonResult, Reason, Status, not_compared

#: Edges closer than this (relative to the axis span) are the same edge; files
#: written by different programs round regular edges differently.
EDGE_TOLERANCE = 1e-9


def incompatibility(test: Histogram, reference: Histogram) -> tuple[Reason, str] | None:
    """Why two histograms cannot be compared bin by bin, or None if they can.

    The storage type does not matter (a TH1F compares with a TH1D); the number
    of dimensions, histogram versus profile, the edges and bin labels do.
    """
    if test.ndim != reference.ndim or test.is_profile != reference.is_profile:
        return Reason.DIFFERENT_CLASS, f"{test.class_name} vs {reference.class_name}"
    for number, (mine, theirs) in enumerate(zip(test.axes, reference.axes, strict=True)):
        name = "xyz"[number]
        if mine.nbins != theirs.nbins:
            return Reason.DIFFERENT_BINNING, f"{name}: {mine.nbins} vs {theirs.nbins} bins"
        if mine.edges is theirs.edges or np.array_equal(mine.edges, theirs.edges):
            pass
        elif not np.allclose(
            mine.edges, theirs.edges, rtol=0.0, atol=EDGE_TOLERANCE * _span(mine, theirs)
        ):
            return Reason.DIFFERENT_BINNING, f"{name}: edges differ"
        if mine.labels and theirs.labels and mine.labels != theirs.labels:
            return Reason.DIFFERENT_BINNING, f"{name}: bin labels differ"
    return None


def _span(a, b) -> float:
    return max(abs(a.high - a.low), abs(b.high - b.low), 1e-300)


def region(histogram: Histogram, underflow: bool = False, overflow: bool = False) -> tuple:
    """Index of the bins a test uses: in range, plus the flow bins asked for."""
    return tuple(
        slice(0 if underflow else 1, axis.nbins + 2 if overflow else axis.nbins + 1)
        for axis in histogram.axes
    )


def flat(array: np.ndarray, index: tuple) -> np.ndarray:
    """The selected bins in ROOT's global-bin order (x fastest)."""
    return np.ravel(array[index], order="F")


def is_empty(histogram: Histogram) -> bool:
    """No content anywhere, flow bins included (no entries at all for a profile)."""
    return not (histogram.bin_entries if histogram.is_profile else histogram.values).any()


#: Reasons that are a failure, not a null: one side empty while the other is not.
FAILING_REASONS = frozenset({Reason.EMPTY_IN_TEST, Reason.EMPTY_IN_REFERENCE})


def from_problem(path: str, test: str, reason: Reason, detail: str) -> ComparisonResult:
    """RelMon's rule: both empty is null (nothing to say), one side empty is a failure."""
    status = Status.FAIL if reason in FAILING_REASONS else Status.NULL
    return not_compared(path, test, status, reason, detail)


def empty_problem(sum1: float, sum2: float) -> tuple[Reason, str] | None:
    """The reason when either sum of contents is zero, else None."""
    if sum1 == 0 and sum2 == 0:
        return Reason.EMPTY, "both histograms are empty in the compared range"
    if sum1 == 0:
        return Reason.EMPTY_IN_TEST, "the test histogram is empty in the compared range"
    if sum2 == 0:
        return Reason.EMPTY_IN_REFERENCE, "the reference is empty in the compared range"
    return None


def weight_sums(histogram: Histogram) -> tuple[float, float]:
    """(sum of weights, sum of squared weights) as ROOT's TH1::GetStats gives them.

    The stored running sums are used when present; a histogram whose sums are
    zero (filled with SetBinContent) gets them from its in-range bins, as ROOT does.
    """
    sumw = histogram.stats.get("fTsumw", 0.0)
    if sumw != 0:
        return float(sumw), float(histogram.stats.get("fTsumw2", 0.0))
    inner = histogram.inner
    return float(histogram.values[inner].sum()), float(histogram.variances()[inner].sum())


def is_weighted(histogram: Histogram) -> bool:
    """ROOT's test: the effective number of entries differs from the sum of weights."""
    sumw, sumw2 = weight_sums(histogram)
    effective = sumw * sumw / sumw2 if sumw2 else 0.0
    return abs(sumw - effective) >= 1


def root_prob(chi2: float, ndf: int) -> float:
    """TMath::Prob: upper tail of the chi-square distribution, with ROOT's edge cases."""
    if ndf <= 0:
        return 0.0
    if chi2 <= 0:
        return 0.0 if chi2 < 0 else 1.0
    return float(special.gammaincc(0.5 * ndf, 0.5 * chi2))
