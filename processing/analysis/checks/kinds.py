"""The checks the YAML can name: their target kinds, parameters, types and bounds.

The config loader validates every parameter against this table, so a check
function never sees a missing or mistyped parameter. YAML names (``min``,
``max``) map to keyword arguments (``low``, ``high``) that do not shadow
Python built-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from processing.analysis.checks.library import (
    Outcome,
    absolute_previous_value,
    bins_above_threshold,
    check_last_n,
    histogram_between_values,
    histogram_mean,
    histogram_rms,
    max_in_window,
    mean_in_range,
    rate_drop,
    relative_previous_value,
    trend_between_values,
)

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One YAML parameter: its name, the keyword it becomes, its type and bounds.

    ``kind`` is "number" (int or float, ±.inf allowed), "int", "ratio" (a
    number in [0, 1]) or "choice" (one of ``choices``, mapped through them).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    arg: str = ""
    choices: dict[str, Any] | None = None
    ge: float | None = None

    @property
    def keyword(self) -> str:
        return self.arg or self.name

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class CheckKind:
    """A check the YAML can name: what it looks at and which parameters it takes.

    ``histogram`` / ``trend`` are the functions for each target kind (None:
    the kind cannot check that target). ``ordered`` lists (smaller, larger)
    parameter pairs that must not be reversed.
    """

    name: str
    histogram: Callable[..., Outcome] | None
    trend: Callable[..., Outcome] | None
    params: tuple[Param, ...]
    histogram_only: tuple[str, ...] = ()
    ordered: tuple[tuple[str, str], ...] = ()
    composite: bool = False

    def param(self, name: str) -> Param | None:
        for param in self.params:
            if param.name == name:
                return param
        return None

    def params_for(self, on_trend: bool) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not (on_trend and p.name in self.histogram_only))


AXES = {"x": 0, "y": 1, "z": 2}
STATISTICS = {name: name for name in ("integral", "entries", "mean", "std", "maximum")}
DIRECTIONS = {name: name for name in ("both", "drop", "rise")}

_RANGE = (
    Param("min", "number", arg="low"),
    Param("max", "number", arg="high"),
    Param("medium_min", "number", None, arg="medium_low"),
    Param("medium_max", "number", None, arg="medium_high"),
)
_RANGE_ORDER = (("min", "max"), ("medium_min", "min"), ("max", "medium_max"))
_WINDOW = (
    *_RANGE,
    Param("axis", "choice", 0, choices=AXES),
    Param("min_entries", "int", 1, ge=0),
)

KINDS: dict[str, CheckKind] = {
    kind.name: kind
    for kind in (
        CheckKind(
            "between_values",
            histogram_between_values,
            trend_between_values,
            (
                Param("value", "choice", choices=STATISTICS),
                *_RANGE,
                Param("axis", "choice", 0, choices=AXES),
                Param("min_entries", "int", None, ge=0),
            ),
            histogram_only=("value", "axis", "min_entries"),
            ordered=_RANGE_ORDER,
        ),
        CheckKind("mean", histogram_mean, None, _WINDOW, ordered=_RANGE_ORDER),
        CheckKind("rms", histogram_rms, None, _WINDOW, ordered=_RANGE_ORDER),
        CheckKind(
            "bins_above_threshold",
            bins_above_threshold,
            None,
            (
                Param("threshold", "number"),
                Param("max_bins", "int", ge=0),
                Param("max_bins_medium", "int", None, ge=0),
                Param("min_entries", "int", 1, ge=0),
            ),
            ordered=(("max_bins", "max_bins_medium"),),
        ),
        CheckKind(
            "mean_in_range",
            None,
            mean_in_range,
            (Param("n", "int", ge=1), *_RANGE),
            ordered=_RANGE_ORDER,
        ),
        CheckKind(
            "check_last_n",
            None,
            check_last_n,
            (
                Param("n", "int", ge=1),
                Param("min", "number", arg="low"),
                Param("max", "number", arg="high"),
                Param("ratio", "ratio"),
                Param("ratio_medium", "ratio", None),
            ),
            ordered=(("min", "max"), ("ratio_medium", "ratio")),
        ),
        CheckKind(
            "absolute_previous_value",
            None,
            absolute_previous_value,
            (Param("max_delta", "number", ge=0), Param("max_delta_medium", "number", None, ge=0)),
            ordered=(("max_delta", "max_delta_medium"),),
        ),
        CheckKind(
            "relative_previous_value",
            None,
            relative_previous_value,
            (
                Param("max_ratio", "number", ge=0),
                Param("max_ratio_medium", "number", None, ge=0),
                Param("direction", "choice", "both", choices=DIRECTIONS),
            ),
            ordered=(("max_ratio", "max_ratio_medium"),),
        ),
        CheckKind(
            "rate_drop",
            None,
            rate_drop,
            (
                Param("seconds", "number", 60.0, ge=1),
                Param("history_seconds", "number", 600.0, ge=1),
                Param("max_ratio", "ratio", 0.5),
                Param("min_events", "number", 100.0, ge=0),
            ),
        ),
        CheckKind(
            "max_in_window",
            None,
            max_in_window,
            (
                Param("seconds", "number", 120.0, ge=1),
                Param("max", "number", 0.0, arg="high"),
            ),
        ),
        CheckKind("all", None, None, (), composite=True),
        CheckKind("any", None, None, (), composite=True),
    )
}
