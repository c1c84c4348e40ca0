"""Processing options a detector plugin declares: types, ranges, defaults, validation.

Each plugin lists its options as :class:`OptionSpec` objects; the browser
builds its form from :meth:`OptionSpec.to_dict`, and every value that reaches
a plugin (from a URL, a form, a YAML file) goes through
:func:`validate_options` first, which fills in defaults and names what is
wrong with each bad field. Re-exported by :mod:`overwatch.plugins`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

OPTION_KINDS = ("float", "int", "bool", "choice")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class OptionSpec:
    """One processing option a plugin declares (the browser form is built from these).

    Ranges are inclusive; ``exclusive_minimum`` makes ``minimum`` a strict bound
    (e.g. a conversion factor that must be > 0).
    """

    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    help: str = ""
    exclusive_minimum: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not re.fullmatch(r"[A-Za-z_]\w*", self.name or ""):
            raise ValueError(f"option name {self.name!r} must be an identifier")
        if self.kind not in OPTION_KINDS:
            raise ValueError(f"option {self.name!r}: kind must be one of {OPTION_KINDS}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"option {self.name!r}: a choice needs choices")
        if self.kind not in ("float", "int") and (
            self.minimum is not None or self.maximum is not None
        ):
            raise ValueError(f"option {self.name!r}: only numbers have a range")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"option {self.name!r}: minimum is above maximum")
        value, error = self.parse(self.default)
        if error:
            raise ValueError(f"option {self.name!r}: default {self.default!r}: {error}")
        object.__setattr__(self, "default", value)

    def parse(self, value: Any) -> tuple[Any, str | None]:
        """The value converted to this option's type, or an error saying why not.

        Strings are parsed (values from a URL or a form are strings); other
        values must already have the right type (``True`` is not a number).
        """
        if self.kind == "bool":
            if isinstance(value, bool):
                return value, None
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE, None
            return None, f"expected true or false, got {value!r}"
        if self.kind == "choice":
            for choice in self.choices:
                if value == choice or (isinstance(value, str) and value == str(choice)):
                    return choice, None
            return None, f"expected one of {', '.join(map(str, self.choices))}, got {value!r}"
        number = _parse_number(value, integer=self.kind == "int")
        if isinstance(number, str):
            return None, number
        if self.minimum is not None and (
            number < self.minimum or (self.exclusive_minimum and number == self.minimum)
        ):
            bound = ">" if self.exclusive_minimum else ">="
            return None, f"out of range: {number} must be {bound} {self.minimum}"
        if self.maximum is not None and number > self.maximum:
            return None, f"out of range: {number} must be <= {self.maximum}"
        return number, None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (the browser builds its form from this)."""
        data = asdict(self)
        data["choices"] = list(self.choices)
        return data


def _parse_number(value: Any, integer: bool) -> int | float | str:
    """A finite int/float, or the error text (a str)."""
    wanted = "an integer" if integer else "a number"
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            return f"expected {wanted}, got {text!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected {wanted}, got {type(value).__name__} {value!r}"
    if not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if integer:
        if isinstance(value, float) and not value.is_integer():
            return f"expected {wanted}, got {value!r}"
        return int(value)
    return float(value)


def validate_options(
    specs: Sequence[OptionSpec], given: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check options against their specs: (every value, defaults filled in; errors by name).

    A missing option, ``None`` or an empty string (an empty form field) takes
    the default; an option with an error also keeps its default, so processing
    can go on while the error is shown beside the offending field.
    """
    given = dict(given or {})
    known = {spec.name: spec for spec in specs}
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in given:
        if name not in known:
            errors[str(name)] = (
                f"unknown option {name!r}; known options: {', '.join(known) or 'none'}"
            )
    for name, spec in known.items():
        raw = given.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            values[name] = spec.default
            continue
        value, error = spec.parse(raw)
        if error:
            errors[name] = error
            value = spec.default
        values[name] = value
    return values, errors
