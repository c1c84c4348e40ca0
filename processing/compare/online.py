"""Compare a run's subsystem with a reference run, from the array cache (the web's comparison).

The offline ``overwatch compare`` reads two ROOT files; online, both runs are
already processed, so both sides come from the array cache through
:class:`processing.slices.reader.SliceReader`: the latest effective cumulative of
every histogram of the run and of the reference run. No ROOT file is read.

Usage::

    comparer = ReferenceComparer(reader)
    found = comparer.compare(run, "EMC", reference, configure("chi2", 1e-5))
    found.ordered("worst")        # fail, skipped, null, success; lowest p-value first
    comparer.overlay(run, "EMC", reference, "EMCal/SM03/cellHits")

Every histogram of either run gets a result: one missing in the reference is
``skipped`` with reason ``missing_in_reference`` (and one only in the
reference ``missing_in_test``), never dropped. Results are cached per
(run, subsystem, version, reference, reference version, test): a new snapshot
of either run changes a version, so a cached result is never stale.

Overlays: the reference is scaled to the data's integral (in-range bins) so
shapes compare; profiles hold means, so a profile reference is not scaled.
The ratio data/reference is a ``TH<n>D`` (of bin means for profiles) with
ROOT's ``TH1::Divide`` errors for independent histograms; bins where the
reference is zero have ratio 0 and error 0, as in ROOT.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from overwatch.histogram import Histogram
from overwatch.lru import LRU
from processing.compare.checks import incompatibility
from processing.compare.registry import ConfiguredTest
from processing.compare.results import ComparisonResult, Reason, Status, not_compared
from processing.slices.reader import SliceReader, UnknownHistogram, UnknownRun, UnknownSubsystem

log = logging.getLogger(__name__)

#: Orders of :meth:`OnlineComparison.ordered`.
SORT_ORDERS = ("path", "worst")


class ReferenceNotFound(LookupError):
    """The reference run, its subsystem or one of its histograms is not there (text names it)."""


class OverlayError(ValueError):
    """Data and reference cannot be drawn over each other (different class or binning)."""


@dataclass(frozen=True)
class OnlineComparison:
    """Every histogram of a subsystem compared with the reference run's."""

    run: int
    subsystem: str
    reference: int
    test: str
    threshold: float
    version: str
    reference_version: str
    #: In the data run's file order, then the paths found only in the reference.
    results: tuple[ComparisonResult, ...]

    def ordered(self, order: str = "path") -> list[ComparisonResult]:
        return sort_results(self.results, order)

    def counts(self) -> dict[str, int]:
        """Number of results per status (every status present, zeros included)."""
        counts = {status.value: 0 for status in Status}
        for result in self.results:
            counts[result.status.value] += 1
        return counts


def _worst_key(result: ComparisonResult) -> tuple:
    pvalue = result.pvalue if result.pvalue is not None and math.isfinite(result.pvalue) else 2.0
    return (-result.status.severity, pvalue, result.path)


def sort_results(
    results: Iterable[ComparisonResult], order: str = "path"
) -> list[ComparisonResult]:
    """``path``: alphabetical; ``worst``: fail, skipped, null, success, lowest p-value first."""
    if order == "path":
        return sorted(results, key=lambda r: r.path)
    if order == "worst":
        return sorted(results, key=_worst_key)
    raise ValueError(f"sort must be one of {', '.join(SORT_ORDERS)}, not {order!r}")


def compare_sets(
    data: dict[str, Histogram], reference: dict[str, Histogram], test: ConfiguredTest
) -> list[ComparisonResult]:
    """One result per path of either set (data order first); one bad pair never loses the rest."""
    results = []
    for path, histogram in data.items():
        mine = reference.get(path)
        if mine is None:
            results.append(
                not_compared(
                    path,
                    test.name,
                    Status.SKIPPED,
                    Reason.MISSING_IN_REFERENCE,
                    "not in the reference run",
                )
            )
            continue
        try:
            results.append(test.run(path, histogram, [mine]))
        except Exception as error:  # a test bug on one histogram must not hide the others
            log.exception("%s failed on %s", test.name, path)
            results.append(
                not_compared(path, test.name, Status.SKIPPED, Reason.TEST_ERROR, repr(error))
            )
    for path in reference:
        if path not in data:
            results.append(
                not_compared(
                    path,
                    test.name,
                    Status.SKIPPED,
                    Reason.MISSING_IN_TEST,
                    "only in the reference run",
                )
            )
    return results


@dataclass(frozen=True)
class Overlay:
    """What the web draws for one histogram: data, scaled reference and their ratio."""

    data: Histogram
    reference: Histogram
    ratio: Histogram
    #: Factor applied to the reference, None when it was not scaled (profile, empty reference).
    scale: float | None


def normalised(reference: Histogram, data: Histogram) -> tuple[Histogram, float | None]:
    """The reference scaled to the data's in-range integral, and the factor (None: unscaled)."""
    if reference.is_profile:
        return reference.copy(), None
    total = reference.integral()
    if total == 0 or not math.isfinite(total):
        return reference.copy(), None
    factor = data.integral() / total
    return reference.scaled(factor), factor


def ratio(data: Histogram, reference: Histogram) -> Histogram:
    """data / reference bin by bin (flow bins too), errors of independent histograms.

    ROOT's TH1::Divide: e^2 = (e1^2 c2^2 + e2^2 c1^2) / c2^4; 0 where the reference is 0.
    """
    c1, c2 = data.contents(), reference.contents()
    v1, v2 = data.variances(), reference.variances()
    filled = c2 != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(filled, c1 / c2, 0.0)
        variances = np.where(filled, (v1 * c2 * c2 + v2 * c1 * c1) / c2**4, 0.0)
    result = Histogram(
        name=f"{data.name}_ratio",
        class_name=f"TH{data.ndim}D",
        axes=[axis.copy() for axis in data.axes],
        values=np.asfortranarray(values),
        sumw2=np.asfortranarray(variances),
        entries=float(np.count_nonzero(filled[data.inner])),
        title=f"{data.title or data.name} / reference",
    )
    result.stats = result.compute_stats()
    return result


def overlay_of(data: Histogram, reference: Histogram) -> Overlay:
    """Data, reference scaled to it, and the ratio; OverlayError if they cannot be overlaid."""
    problem = incompatibility(data, reference)
    if problem is not None:
        reason, detail = problem
        raise OverlayError(f"{data.name!r} cannot be overlaid on the reference: {reason}: {detail}")
    scaled, factor = normalised(reference, data)
    return Overlay(data=data, reference=scaled, ratio=ratio(data, scaled), scale=factor)


def _test_key(test: ConfiguredTest) -> tuple:
    return (test.name, test.threshold, tuple(sorted((k, repr(v)) for k, v in test.options.items())))


class ReferenceComparer:
    """Compares processed runs with reference runs, remembering the last results.

    ``version`` gives a subsystem's version (default ``reader.version``); the web
    passes its own short-lived cache of it. Safe to share between threads.
    """

    def __init__(
        self,
        reader: SliceReader,
        max_entries: int = 64,
        version: Callable[[int, str], str] | None = None,
    ) -> None:
        self.reader = reader
        self.max_entries = max_entries
        self._version = version or reader.version
        self._cache: LRU[tuple, OnlineComparison] = LRU(max_entries)
        self._lock = threading.Lock()  # guards the counter; the cache has its own lock
        self.computed = 0  # comparisons actually run (not served from the cache)

    def reference_version(self, reference: int, subsystem: str) -> str:
        """The reference's version; ReferenceNotFound naming it when it is not there."""
        try:
            return self._version(reference, subsystem)
        except UnknownRun:
            raise ReferenceNotFound(f"reference run {reference} is unknown") from None
        except UnknownSubsystem:
            raise ReferenceNotFound(
                f"reference run {reference} has no processed {subsystem} snapshot"
            ) from None

    def compare(
        self,
        run: int,
        subsystem: str,
        reference: int,
        test: ConfiguredTest,
        view: str = "cumulative",
    ) -> OnlineComparison:
        """Every histogram of ``run`` against ``reference``'s whole-run cumulative.

        ``view`` is the run's side: "cumulative" (the whole run) or "latest" (its
        latest slice), so a page judges what it shows: an empty latest slice of a
        histogram that the reference fills fails. Raises UnknownRun/UnknownSubsystem
        for the run, ReferenceNotFound for the reference.
        """
        if view not in ("cumulative", "latest"):
            raise ValueError(f"slice must be cumulative or latest, not {view!r}")
        # Versions first: content read afterwards is at least as new, never older.
        version = self._version(run, subsystem)
        reference_version = self.reference_version(reference, subsystem)
        key = (run, subsystem, view, version, reference, reference_version, _test_key(test))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if view == "latest":
            times = self.reader.snapshot_times(run, subsystem)
            base = times[-2] if len(times) > 1 else None
            data = self.reader.slice_between(run, subsystem, base, times[-1])
        else:
            data = self.reader.slice(run, subsystem, None, math.inf)
        try:
            mine = self.reader.slice(reference, subsystem, None, math.inf)
        except (UnknownRun, UnknownSubsystem) as error:  # vanished since the version look-up
            raise ReferenceNotFound(f"reference run {reference}: {error}") from None
        found = OnlineComparison(
            run=run,
            subsystem=subsystem,
            reference=reference,
            test=test.name,
            threshold=test.threshold,
            version=version,
            reference_version=reference_version,
            results=tuple(compare_sets(data, mine, test)),
        )
        with self._lock:
            self.computed += 1
        self._cache.put(key, found)
        return found

    def overlay(
        self, run: int, subsystem: str, reference: int, path: str, view: str = "cumulative"
    ) -> Overlay:
        """The overlay of one histogram: ``view`` "cumulative" or "latest" (slice) of the data.

        The reference side is always the reference run's whole-run cumulative.
        """
        if view == "latest":
            data = self.reader.latest_slice(run, subsystem, path)
        elif view == "cumulative":
            data = self.reader.cumulative(run, subsystem, path)
        else:
            raise ValueError(f"slice must be cumulative or latest, not {view!r}")
        try:
            mine = self.reader.cumulative(reference, subsystem, path)
        except UnknownRun:
            raise ReferenceNotFound(f"reference run {reference} is unknown") from None
        except UnknownSubsystem:
            raise ReferenceNotFound(
                f"reference run {reference} has no processed {subsystem} snapshot"
            ) from None
        except UnknownHistogram:
            raise ReferenceNotFound(
                f"histogram {path!r} is not in reference run {reference} {subsystem}"
            ) from None
        return overlay_of(data, mine)


def records(results: Sequence[ComparisonResult]) -> list[dict]:
    """The JSON records (as ``overwatch compare --json``) plus the detail text."""
    return [{**r.to_record(), "detail": r.detail} for r in results]


__all__ = [
    "SORT_ORDERS",
    "OnlineComparison",
    "Overlay",
    "OverlayError",
    "ReferenceComparer",
    "ReferenceNotFound",
    "compare_sets",
    "normalised",
    "overlay_of",
    "ratio",
    "records",
    "sort_results",
]
