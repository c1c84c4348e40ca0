"""What a comparison says about one histogram: status, typed reason, numbers.

Statuses follow RelMon's vocabulary so reports read the same to its users:

- ``success``: the test ran and the p-value (or rank) is at or above the threshold;
- ``fail``: it ran and is below, or one histogram is empty while the other is not;
- ``null``: it ran but has no meaningful answer (both empty, too few bins, zero errors);
- ``skipped``: it could not run (missing in one file, different class or binning,
  a class the test does not handle, an unreadable object).

Every status other than success carries a :class:`Reason`, so nothing that could
not be compared disappears silently from a report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    SUCCESS = "success"
    NULL = "null"
    FAIL = "fail"
    SKIPPED = "skipped"

    @property
    def severity(self) -> int:
        """Order for "worst first": fail, skipped, null, success."""
        return _SEVERITY[self]


_SEVERITY = {Status.FAIL: 3, Status.SKIPPED: 2, Status.NULL: 1, Status.SUCCESS: 0}

#: Statuses from worst to best, the order reports list them in.
STATUS_ORDER = (Status.FAIL, Status.SKIPPED, Status.NULL, Status.SUCCESS)


class Reason(StrEnum):
    """Why a comparison is not a plain success or failure on its p-value."""

    DIFFERENT_BINNING = "different_binning"
    DIFFERENT_CLASS = "different_class"
    EMPTY = "empty"
    EMPTY_IN_TEST = "empty_in_test"
    EMPTY_IN_REFERENCE = "empty_in_reference"
    TOO_FEW_BINS = "too_few_bins"
    MISSING_IN_TEST = "missing_in_test"
    MISSING_IN_REFERENCE = "missing_in_reference"
    ZERO_ERRORS = "zero_errors"
    UNSUPPORTED = "unsupported"
    UNREADABLE = "unreadable"
    TEST_ERROR = "test_error"


@dataclass
class ComparisonResult:
    """The outcome of one test on one histogram path.

    ``pvalue`` is the p-value, or the rank for tests that define one (bin2bin:
    the fraction of agreeing bins); the status compares it with the threshold.
    ``info`` holds test-specific scalars (mode, maximum pull, distance, ...).
    """

    path: str
    test: str
    status: Status
    statistic: float | None = None
    pvalue: float | None = None
    ndf: int | None = None
    reason: Reason | None = None
    detail: str = ""
    info: dict[str, float | str] = field(default_factory=dict)

    def to_record(self) -> dict:
        """The JSON record of ``overwatch compare --json`` (non-finite numbers -> null)."""
        return {
            "path": self.path,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "pvalue": _finite(self.pvalue),
            "ndf": self.ndf,
            "status": self.status.value,
            "reason": self.reason.value if self.reason is not None else None,
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def judged(
    path: str,
    test: str,
    pvalue: float,
    threshold: float,
    statistic: float | None = None,
    ndf: int | None = None,
    **info: float | str,
) -> ComparisonResult:
    """A result whose status is decided by ``pvalue < threshold``."""
    status = Status.FAIL if not pvalue >= threshold else Status.SUCCESS
    return ComparisonResult(
        path=path, test=test, status=status, statistic=statistic, pvalue=pvalue, ndf=ndf, info=info
    )


def not_compared(
    path: str, test: str, status: Status, reason: Reason, detail: str = ""
) -> ComparisonResult:
    """A result without numbers: skipped or null, or a fail such as one side empty."""
    return ComparisonResult(path=path, test=test, status=status, reason=reason, detail=detail)
