"""Reference comparison: statistical tests between histograms and whole files.

Library use::

    from processing.compare import configure, compare_files

    chi2 = configure("chi2", threshold=1e-5)
    result = chi2.run("EMC/energy", test_histogram, [reference_histogram])
    run = compare_files("run.root", ["reference.root"], ["chi2", "ks"], jobs=2)

The command line is ``overwatch compare`` (see :mod:`processing.compare.cli`).
Tests live in a registry (:mod:`processing.compare.registry`), so a new test
plugs in with the :func:`register` decorator.

Names are imported on first use: every ``overwatch`` command registers
``overwatch compare``, and importing the tests (scipy) and the readers
(uproot) up front cost each process, receivers included, about 0.4 s and
60 MB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overwatch.lazy import lazy_exports

#: Public name -> the module that defines it.
_EXPORTS = {
    "ConfiguredTest": "processing.compare.registry",
    "SpecError": "processing.compare.registry",
    "available_tests": "processing.compare.registry",
    "configure": "processing.compare.registry",
    "get_test": "processing.compare.registry",
    "register": "processing.compare.registry",
    "ComparisonResult": "processing.compare.results",
    "Reason": "processing.compare.results",
    "Status": "processing.compare.results",
    "CompareRequest": "processing.compare.runner",
    "CompareRun": "processing.compare.runner",
    "compare_files": "processing.compare.runner",
    "run_comparison": "processing.compare.runner",
    "WalkError": "processing.compare.walk",
    "parse_blacklist": "processing.compare.walk",
}

__all__ = [
    "CompareRequest",
    "CompareRun",
    "ComparisonResult",
    "ConfiguredTest",
    "Reason",
    "SpecError",
    "Status",
    "WalkError",
    "available_tests",
    "compare_files",
    "configure",
    "get_test",
    "parse_blacklist",
    "register",
    "run_comparison",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:  # what type checkers and readers see
    from processing.compare.registry import (
        ConfiguredTest,
        SpecError,
        available_tests,
        configure,
        get_test,
        register,
    )
    from processing.compare.results import ComparisonResult, Reason, Status
    from processing.compare.runner import (
        CompareRequest,
        CompareRun,
        compare_files,
        run_comparison,
    )
    from processing.compare.walk import WalkError, parse_blacklist
