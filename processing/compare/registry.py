"""The comparison tests by name, with aliases and typed options, so new tests plug in.

A test is a function ``(path, test, references, threshold, **options) ->
ComparisonResult`` registered with :func:`register`. The registry does the
checks every test needs first (same class, same binning, a reference given), so
a test only sees pairs it can compare.

On the command line a test is named with optional options:
``chi2``, ``chi2:norm,of``, ``bin2bin:rtol=1e-3``, ``ks:max_distance=0.05``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from overwatch.histogram import Histogram
from processing.compare.checks import incompatibility
from processing.compare.results import ComparisonResult, Status, not_compared

TestFunction = Callable[..., ComparisonResult]


class SpecError(ValueError):
    """An unknown test name or a malformed test option."""


@dataclass(frozen=True)
class Option:
    """One option of a test: its type, default and a one-line help."""

    kind: type  # bool, int, float or str
    default: Any
    help: str = ""
    #: Allowed values (compared case-insensitively for strings), empty for any.
    choices: tuple = ()
    #: Smallest allowed value of a number.
    minimum: float | None = None


@dataclass(frozen=True)
class TestDefinition:
    __test__ = False  # not a pytest test class
    name: str
    function: TestFunction
    description: str
    default_threshold: float
    aliases: tuple[str, ...] = ()
    options: dict[str, Option] = field(default_factory=dict)
    #: True when the test uses several references at once (beta_binomial).
    multi_reference: bool = False


@dataclass(frozen=True)
class ConfiguredTest:
    """A test with its options and threshold decided: what a worker runs."""

    definition: TestDefinition
    threshold: float
    options: dict[str, Any]

    @property
    def name(self) -> str:
        return self.definition.name

    def run(self, path: str, test: Histogram, references: Sequence[Histogram]) -> ComparisonResult:
        """Compare, after the checks every test shares."""
        if not references:
            raise ValueError(f"{self.name}: no reference histogram for {path!r}")
        problem = incompatibility(test, references[0])
        if problem is not None:
            return not_compared(path, self.name, Status.SKIPPED, *problem)
        if not self.definition.multi_reference:
            return self.definition.function(
                path, test, references[0], self.threshold, **self.options
            )
        # Extra references that do not match are left out, as AutoDQM does.
        usable = [r for r in references if incompatibility(test, r) is None]
        return self.definition.function(path, test, usable, self.threshold, **self.options)


_TESTS: dict[str, TestDefinition] = {}
_ALIASES: dict[str, str] = {}


def register(
    name: str,
    description: str,
    default_threshold: float,
    aliases: Sequence[str] = (),
    options: dict[str, Option] | None = None,
    multi_reference: bool = False,
) -> Callable[[TestFunction], TestFunction]:
    """Decorator adding a test under ``name`` and its aliases (case-insensitive)."""

    def add(function: TestFunction) -> TestFunction:
        definition = TestDefinition(
            name=name,
            function=function,
            description=description,
            default_threshold=default_threshold,
            aliases=tuple(aliases),
            options=dict(options or {}),
            multi_reference=multi_reference,
        )
        keys = [key.lower() for key in (name, *aliases)]
        for key in keys:
            if key in _ALIASES and _ALIASES[key] != name:
                raise ValueError(f"test name {key!r} is already taken by {_ALIASES[key]!r}")
        for key in keys:
            _ALIASES[key] = name
        _TESTS[name] = definition
        return function

    return add


def _load_builtin_tests() -> None:
    # The built-in tests register themselves on import.
    from processing.compare import beta_binomial, bin2bin, chi2, ks, pull  # noqa: F401


def available_tests() -> dict[str, TestDefinition]:
    _load_builtin_tests()
    return dict(_TESTS)


def get_test(name: str) -> TestDefinition:
    """The test called ``name`` or one of its aliases."""
    _load_builtin_tests()
    canonical = _ALIASES.get(name.strip().lower())
    if canonical is None:
        known = ", ".join(sorted(_TESTS))
        raise SpecError(f"unknown test {name!r} (known tests: {known})")
    return _TESTS[canonical]


def _convert(test: str, key: str, option: Option, text: str | None) -> Any:
    if option.kind is bool:
        if text is None or text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise SpecError(f"{test}: option {key!r} takes true or false, not {text!r}")
    if text is None:
        raise SpecError(f"{test}: option {key!r} needs a value ({key}=...)")
    try:
        value = option.kind(text)
    except ValueError:
        raise SpecError(
            f"{test}: option {key!r} needs a {option.kind.__name__}, not {text!r}"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{test}: option {key!r} must be finite, not {text!r}")
    if option.minimum is not None and value < option.minimum:
        raise SpecError(f"{test}: option {key!r} must be at least {option.minimum}, not {text!r}")
    if option.choices:
        folded = value.lower() if isinstance(value, str) else value
        allowed = [c.lower() if isinstance(c, str) else c for c in option.choices]
        if folded not in allowed:
            listed = ", ".join(str(c) for c in option.choices)
            raise SpecError(f"{test}: option {key!r} must be one of {listed}, not {text!r}")
        return option.choices[allowed.index(folded)]
    return value


def configure(spec: str, threshold: float | None = None) -> ConfiguredTest:
    """Parse ``NAME[:opt[=value],...]`` and fix the threshold (the test's default if None)."""
    name, _, rest = spec.partition(":")
    definition = get_test(name)
    options = {key: option.default for key, option in definition.options.items()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, text = item.partition("=")
        key = key.strip().lower()
        if key not in definition.options:
            known = ", ".join(sorted(definition.options)) or "none"
            raise SpecError(f"{definition.name}: unknown option {key!r} (options: {known})")
        options[key] = _convert(
            definition.name, key, definition.options[key], text if sep else None
        )
    if threshold is None:
        threshold = definition.default_threshold
    validate_threshold(threshold)
    return ConfiguredTest(definition=definition, threshold=float(threshold), options=options)


def validate_threshold(threshold: float) -> None:
    """A threshold is a p-value or rank: between 0 and 1 inclusive."""
    if not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
        raise SpecError(f"threshold must be between 0 and 1, not {threshold!r}")
