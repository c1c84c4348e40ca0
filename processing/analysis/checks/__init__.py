"""Checks on time slices and trends: YAML configuration, check functions, engine.

``CheckEngine.from_file("config/checks.yaml")`` validates the whole file
(raising :class:`CheckConfigError` with file, line and key) and returns an
engine whose :meth:`~CheckEngine.evaluate` gives one quality per check and
target, rolled up per group and per subsystem.
"""

from processing.analysis.checks.config import (
    DEFAULT_CHECKS_FILE,
    CheckConfigError,
    CheckDefinition,
    load_checks,
    parse_checks,
)
from processing.analysis.checks.engine import CheckEngine, CheckResult, EvaluationResult
from processing.analysis.checks.kinds import KINDS
from processing.analysis.checks.library import Outcome

__all__ = [
    "DEFAULT_CHECKS_FILE",
    "KINDS",
    "CheckConfigError",
    "CheckDefinition",
    "CheckEngine",
    "CheckResult",
    "EvaluationResult",
    "Outcome",
    "load_checks",
    "parse_checks",
]
