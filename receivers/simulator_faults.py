"""The simulator's fault schedule, as data: what goes wrong, where and when.

See :mod:`receivers.simulator` for the meaning of each kind and its fields. A
schedule is a list of mappings, given in code or as a YAML file (a list, or a
mapping with a ``faults`` list)::

    - {at_minute: 5, kind: hot_channel, subsystem: EMC, cell: [3, 10, 5], factor: 50}
    - {at_minute: 8, until_minute: 12, kind: rate_drop, subsystem: TPC, factor: 0.1}

``config/faults/demo.yaml`` (package data of ``overwatch.defaults``) is the
documented example, and the schedule ``overwatch demo`` uses by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FAULT_KINDS = ("hot_channel", "dead_region", "rate_drop", "counter_reset")


class FaultError(ValueError):
    """A fault in the schedule is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class Fault:
    """One scheduled fault; ``params`` holds the kind-specific fields as given."""

    kind: str
    subsystem: str
    at_minute: float
    until_minute: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "fault") -> Fault:
        if not isinstance(data, Mapping):
            raise FaultError(f"{where}: expected a mapping, got {data!r}")
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise FaultError(f"{where}: kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        subsystem = data.get("subsystem")
        if not isinstance(subsystem, str) or not subsystem:
            raise FaultError(f"{where}: 'subsystem' is required, e.g. subsystem: EMC")
        at = data.get("at_minute", 0.0)
        until = data.get("until_minute")
        for name, value in (("at_minute", at), ("until_minute", until)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise FaultError(f"{where}: {name} must be a number of minutes, got {value!r}")
        if until is not None and until <= at:
            raise FaultError(f"{where}: until_minute ({until}) must be after at_minute ({at})")
        params = {
            k: v
            for k, v in data.items()
            if k not in ("kind", "subsystem", "at_minute", "until_minute")
        }
        if kind in ("hot_channel", "rate_drop"):
            factor = params.get("factor")
            if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
                raise FaultError(f"{where}: {kind} needs a non-negative 'factor', got {factor!r}")
        if (
            kind == "hot_channel"
            and "cell" not in params
            and not {"histogram", "bin"} <= set(params)
        ):
            raise FaultError(
                f"{where}: hot_channel needs 'cell: [sm, eta, phi]' or 'histogram' and 'bin'"
            )
        if (
            kind == "dead_region"
            and "supermodule" not in params
            and not {"histogram", "bins"} <= set(params)
        ):
            raise FaultError(f"{where}: dead_region needs 'supermodule' or 'histogram' and 'bins'")
        return cls(kind, subsystem, float(at), None if until is None else float(until), params)

    @property
    def when(self) -> str:
        """The fault's time span in words, e.g. ``from minute 3 to minute 7``."""
        if self.kind == "counter_reset":
            return f"at minute {self.at_minute:g}"
        if self.until_minute is None:
            return f"from minute {self.at_minute:g} to the end of the run"
        return f"from minute {self.at_minute:g} to minute {self.until_minute:g}"

    def describe(self) -> str:
        """One line for a person: when, where, what (e.g. for the demo's start-up schedule)."""
        details = " ".join(f"{k} {v}" for k, v in self.params.items())
        return f"{self.when}: {self.subsystem} {self.kind}" + (f" ({details})" if details else "")

    def active(self, minute: float) -> bool:
        return minute >= self.at_minute and (
            self.until_minute is None or minute < self.until_minute
        )


def check_subsystems(faults: Iterable[Fault], subsystems: Iterable[str]) -> None:
    """Refuse a fault whose subsystem is not simulated: it would silently never happen."""
    names = list(subsystems)
    for number, fault in enumerate(faults):
        if fault.subsystem not in names:
            raise FaultError(
                f"faults[{number}] ({fault.kind} {fault.when}) is for "
                f"{fault.subsystem}, which is not simulated (subsystems: {', '.join(names)}); "
                "remove it from the schedule or simulate that subsystem"
            )


def load_faults(source: str | Path | Iterable[Mapping[str, Any]]) -> list[Fault]:
    """Faults from a YAML file (a list, or a mapping with a ``faults`` list) or from dicts."""
    where = "fault"
    if isinstance(source, str | Path):
        where = str(source)
        try:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise FaultError(f"{source}: cannot read the fault schedule: {error}") from error
        if isinstance(data, dict):
            data = data.get("faults")
        if data is None:
            return []
        if not isinstance(data, list):
            raise FaultError(f"{source}: expected a list of faults (or 'faults: [...]')")
        source = data
    return [Fault.from_dict(item, f"{where}[{i}]") for i, item in enumerate(source)]
