"""Bin-by-bin comparison, exact or within a relative tolerance (RelMon's Bin2Bin).

The rank is the fraction of bins that agree, under- and overflow included, so
the default threshold of 1 asks for every bin to agree. Two contents a and b
agree when ``|a - b| <= rtol * max(|a|, |b|) + atol``; both tolerances are 0
by default (exact). Profiles agree when their sums (Σw·y) and entries (Σw) do,
which is exactly "same means from the same fills".
"""

from __future__ import annotations

import numpy as np

from overwatch.histogram import Histogram
from processing.compare.checks import is_empty
from processing.compare.registry import Option, register
from processing.compare.results import ComparisonResult, Reason, Status, judged, not_compared


def agreeing_bins(a: np.ndarray, b: np.ndarray, rtol: float = 0.0, atol: float = 0.0) -> np.ndarray:
    """Boolean array: which bins agree within the tolerances."""
    difference = np.abs(a - b)
    return difference <= rtol * np.maximum(np.abs(a), np.abs(b)) + atol


@register(
    "bin2bin",
    "Bin-by-bin equality, exact or within a relative tolerance (RelMon Bin2Bin)",
    default_threshold=1.0,
    aliases=("bintobin", "bin-to-bin", "exact"),
    options={
        "rtol": Option(float, 0.0, "relative tolerance per bin", minimum=0.0),
        "atol": Option(float, 0.0, "absolute tolerance per bin", minimum=0.0),
        "errors": Option(bool, False, "also compare the squared errors (sumw2)"),
    },
)
def run_bin2bin(
    path: str,
    test: Histogram,
    reference: Histogram,
    threshold: float,
    rtol: float = 0.0,
    atol: float = 0.0,
    errors: bool = False,
) -> ComparisonResult:
    if rtol < 0 or atol < 0:
        raise ValueError("bin2bin tolerances must not be negative")
    if is_empty(test) and is_empty(reference):
        return not_compared(path, "bin2bin", Status.NULL, Reason.EMPTY, "both histograms are empty")
    agree = agreeing_bins(test.values, reference.values, rtol, atol)
    if test.is_profile:
        agree &= agreeing_bins(test.bin_entries, reference.bin_entries, rtol, atol)
    if errors:
        agree &= agreeing_bins(test.variances(), reference.variances(), rtol, atol)
    nbins = agree.size
    differing = int(nbins - np.count_nonzero(agree))
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(test.values - reference.values) / np.maximum(
            np.abs(test.values), np.abs(reference.values)
        )
    largest = float(np.nanmax(relative)) if differing else 0.0
    return judged(
        path,
        "bin2bin",
        (nbins - differing) / nbins,
        threshold,
        statistic=float(differing),
        differing_bins=differing,
        largest_relative_difference=largest,
    )
