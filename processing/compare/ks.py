"""Kolmogorov-Smirnov test on binned data, with ROOT's ``KolmogorovTest`` semantics.

The distance is the largest difference of the two normalised cumulative
contents; the probability is ``TMath::KolmogorovProb(z)`` with
``z = d * sqrt(n1 * n2 / (n1 + n2))`` where n1, n2 are the effective numbers of
entries (sum^2 / sum of squared errors), so weighted histograms are handled. A
histogram with all errors zero is treated as a function (z = d * sqrt(n_other)).

In several dimensions the cumulative depends on the order bins are visited; as
ROOT's TH2/TH3 do, the distance is the mean over the orderings of the axes (2
for TH2, 6 for TH3). ROOT's TH2 code multiplies by the plain sum of the second
histogram instead of its effective entries; the effective entries are used here
in every dimension (identical for unweighted histograms).

Options: ``uf``/``of`` include the flow bins, ``n`` combines with the
normalisation probability (ROOT "N"), and ``max_distance`` judges on the
distance (ROOT "M") instead of the probability: fail when d > max_distance.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from overwatch.histogram import Histogram
from processing.compare.checks import empty_problem, from_problem, is_empty, region, root_prob
from processing.compare.registry import Option, register
from processing.compare.results import ComparisonResult, Reason, Status, judged, not_compared

_FJ = (-2.0, -8.0, -18.0, -32.0)
_W = 2.50662827
_C1, _C2, _C3 = -1.2337005501361697, -11.103304951225528, -30.842513753404244


def kolmogorov_prob(z: float) -> float:
    """TMath::KolmogorovProb: P(K > z) for the Kolmogorov distribution, ROOT's series."""
    u = abs(z)
    if u < 0.2:
        return 1.0
    if u < 0.755:
        v = 1.0 / (u * u)
        return 1.0 - _W * (math.exp(_C1 * v) + math.exp(_C2 * v) + math.exp(_C3 * v)) / u
    if u < 6.8116:
        v = u * u
        terms = [0.0, 0.0, 0.0, 0.0]
        for j in range(max(1, round(3.0 / u))):
            terms[j] = math.exp(_FJ[j] * v)
        return 2.0 * (terms[0] - terms[1] + terms[2] - terms[3])
    return 0.0


@dataclass
class KsOutcome:
    probability: float = 0.0
    distance: float = 0.0
    effective1: float = 0.0
    effective2: float = 0.0
    problem: tuple[Reason, str] | None = None


def _max_distance(c1: np.ndarray, c2: np.ndarray, sum1: float, sum2: float) -> float:
    """Mean, over the orderings of the axes, of the largest cumulative difference."""
    distances = []
    for order in itertools.permutations(range(c1.ndim)):
        # The first axis of the permutation varies slowest, as ROOT's nested loops.
        a = np.transpose(c1, order).ravel()
        b = np.transpose(c2, order).ravel()
        distances.append(float(np.max(np.abs(np.cumsum(a) / sum1 - np.cumsum(b) / sum2))))
    return float(np.mean(distances))


def ks_test(
    test: Histogram,
    reference: Histogram,
    underflow: bool = False,
    overflow: bool = False,
    normalisation: bool = False,
) -> KsOutcome:
    """``test.KolmogorovTest(reference, option)`` on two histograms of the same binning."""
    index = region(test, underflow, overflow)
    c1, c2 = test.values[index], reference.values[index]
    sum1, sum2 = float(c1.sum()), float(c2.sum())
    outcome = KsOutcome()
    outcome.problem = empty_problem(sum1, sum2)
    if outcome.problem is not None:
        return outcome
    if c1.size < 2:
        outcome.problem = (Reason.TOO_FEW_BINS, "a single bin has no distribution to compare")
        return outcome
    w1 = float(test.variances()[index].sum())
    w2 = float(reference.variances()[index].sum())
    if w1 <= 0 and w2 <= 0:
        outcome.problem = (Reason.ZERO_ERRORS, "errors are zero for both histograms")
        return outcome
    esum1 = sum1 * sum1 / w1 if w1 > 0 else 0.0
    esum2 = sum2 * sum2 / w2 if w2 > 0 else 0.0
    outcome.effective1, outcome.effective2 = esum1, esum2
    outcome.distance = _max_distance(c1, c2, sum1, sum2)
    if w1 <= 0:  # the test histogram is exact: compare the reference with a function
        z = outcome.distance * math.sqrt(esum2)
    elif w2 <= 0:
        z = outcome.distance * math.sqrt(esum1)
    else:
        z = outcome.distance * math.sqrt(esum1 * esum2 / (esum1 + esum2))
    probability = kolmogorov_prob(z)
    if normalisation and w1 > 0 and w2 > 0:
        # Shape and normalisation combined (Eadie et al., 11.6.2), as ROOT's "N".
        difference = esum1 - esum2
        norm_probability = root_prob(difference * difference / (esum1 + esum2), 1)
        if probability > 0 and norm_probability > 0:
            probability *= norm_probability * (1 - math.log(probability * norm_probability))
        else:
            probability = 0.0
    outcome.probability = probability
    return outcome


@register(
    "ks",
    "Kolmogorov-Smirnov test on the binned contents (ROOT TH1::KolmogorovTest)",
    default_threshold=1e-5,
    aliases=("kolmogorov", "kolmogorovtest", "kolmogorov-smirnov"),
    options={
        "uf": Option(bool, False, "include underflow bins (ROOT option U)"),
        "of": Option(bool, False, "include overflow bins (ROOT option O)"),
        "n": Option(bool, False, "also compare the normalisations (ROOT option N)"),
        "max_distance": Option(
            float, None, "judge on the distance (ROOT option M): fail above it", minimum=0.0
        ),
    },
)
def run_ks(
    path: str,
    test: Histogram,
    reference: Histogram,
    threshold: float,
    uf: bool = False,
    of: bool = False,
    n: bool = False,
    max_distance: float | None = None,
) -> ComparisonResult:
    if test.is_profile:
        return not_compared(
            path,
            "ks",
            Status.SKIPPED,
            Reason.UNSUPPORTED,
            "a profile holds means, not a distribution",
        )
    if is_empty(test) and is_empty(reference):
        return not_compared(path, "ks", Status.NULL, Reason.EMPTY, "both histograms are empty")
    outcome = ks_test(test, reference, underflow=uf, overflow=of, normalisation=n)
    if outcome.problem is not None:
        return from_problem(path, "ks", *outcome.problem)
    if max_distance is not None:
        # ROOT's "M": the distance is the figure of merit; report it as the rank.
        status = Status.FAIL if outcome.distance > max_distance else Status.SUCCESS
        return ComparisonResult(
            path=path,
            test="ks",
            status=status,
            statistic=outcome.distance,
            pvalue=outcome.probability,
            info={"max_distance": max_distance},
        )
    return judged(
        path,
        "ks",
        outcome.probability,
        threshold,
        statistic=outcome.distance,
        effective_test=outcome.effective1,
        effective_reference=outcome.effective2,
    )
