"""Reference comparison: statistical tests between histograms and whole files.

Library use::

    from processing.compare import configure, compare_files

    chi2 = configure("chi2", threshold=1e-5)
    result = chi2.run("EMC/energy", test_histogram, [reference_histogram])
    run = compare_files("run.root", ["reference.root"], ["chi2", "ks"], jobs=2)

The command line is ``overwatch compare`` (see :mod:`processing.compare.cli`).
Tests live in a registry (:mod:`processing.compare.registry`), so a new test
plugs in with the :func:`register` decorator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from processing.compare.registry import (
    ConfiguredTest,
    SpecError,
    available_tests,
    configure,
    get_test,
    register,
)
from processing.compare.results import ComparisonResult, Reason, Status
from processing.compare.runner import CompareRequest, CompareRun, run_comparison
from processing.compare.walk import WalkError, parse_blacklist

__all__ = [
    "ComparisonResult",
    "CompareRequest",
    "CompareRun",
    "ConfiguredTest",
    "Reason",
    "SpecError",
    "Status",
    "WalkError",
    "available_tests",
    "compare_files",
    "configure",
    "get_test",
    "register",
    "run_comparison",
]


def compare_files(
    test_file: str | Path,
    reference_files: Sequence[str | Path],
    tests: Sequence[str] = ("chi2",),
    threshold: float | None = None,
    directory: str = "",
    blacklist: str | None = None,
    jobs: int = 1,
) -> CompareRun:
    """Compare two files (more references for beta_binomial) as ``overwatch compare`` does."""
    request = CompareRequest(
        test_file=Path(test_file),
        reference_files=[Path(p) for p in reference_files],
        tests=[configure(spec, threshold) for spec in tests],
        directory=directory.strip("/"),
        blacklist=parse_blacklist(blacklist),
        jobs=jobs,
    )
    return run_comparison(request)
