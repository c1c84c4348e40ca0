"""Loading and validating ``checks.yaml`` into compiled check definitions.

The file is composed with ``yaml.compose`` rather than loaded, so that every
error can name the file, the LINE and the dotted key at fault (an unknown
check, a missing parameter, a bad regex, a wrong type, an unknown key, a
duplicate key or name). Everything is validated before anything is returned:
processing never starts with half of its checks.

Shape (see ``config/checks.yaml`` for the documented version)::

    checks:
      - name: emc-hot-cells            # unique
        subsystem: EMC                 # name or glob, default "*"
        histogram: "EMCal/SM*/cellHits"  # glob (``*`` also crosses "/"), or
        # histogram_regex: "EMCal/SM0[0-9]/cellHits"   (must match the whole path)
        trend: hot_cells               # optional: check this trend of the histogram
        check: between_values
        parameters: {min: 0, max: 0}
        on_fail: Bad                   # quality when the check fails: Bad or Medium
        group: EMCal                   # optional; default: the plugin's group
        minimum: {events: 500}         # optional: too little data in the slice -> Null
        # (events of the slice, entries of the histogram, seconds the slice lasts)
      - name: tpc-cluster-charge
        subsystem: TPC
        histogram: TPC/clusterCharge
        check: all                     # or any; sub-checks share the target
        checks:
          - check: mean
            parameters: {min: 20, max: 80}
          - check: bins_above_threshold
            parameters: {threshold: 1.0e6, max_bins: 0}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yaml.nodes import Node, SequenceNode

from overwatch.globs import compile_glob
from overwatch.quality import Quality
from overwatch.resources import resource
from overwatch.yamlnodes import NodeReader, YamlFileError, compose, is_null, read_text, suggest
from processing.analysis.checks.kinds import KINDS, CheckKind, Param

#: ``config/checks.yaml`` of the repository, shipped as package data (see overwatch.resources).
DEFAULT_CHECKS_FILE = resource("checks.yaml")

_ON_FAIL = {"bad": Quality.BAD, "medium": Quality.MEDIUM}
_ENTRY_KEYS = (
    "name",
    "description",
    "enabled",
    "subsystem",
    "histogram",
    "histogram_regex",
    "trend",
    "group",
    "check",
    "parameters",
    "on_fail",
    "checks",
    "minimum",
)
#: What a slice must hold before a check decides (else its quality is Null).
MINIMUM_KEYS = ("events", "entries", "seconds")
_SUB_KEYS = ("name", "trend", "check", "parameters", "on_fail", "checks")


class CheckConfigError(YamlFileError):
    """An invalid checks file; names the file, the line (1-based) and the dotted key."""


@dataclass(frozen=True)
class CheckSpec:
    """One node of a check: a leaf check with its parameters, or an all/any composition.

    ``trend`` is the effective trend (inherited from the parent when not set):
    None means the node checks the histogram itself.
    """

    kind: CheckKind
    params: dict[str, Any]
    on_fail: Quality
    trend: str | None
    label: str
    children: tuple[CheckSpec, ...] = ()

    def trends(self) -> set[str]:
        names = {self.trend} if self.trend and not self.children else set()
        for child in self.children:
            names |= child.trends()
        return names

    def needs_histogram(self) -> bool:
        if self.children:
            return any(child.needs_histogram() for child in self.children)
        return self.trend is None


@dataclass(frozen=True)
class CheckDefinition:
    """One configured check: which targets it selects and what it runs on them."""

    name: str
    subsystem: str
    pattern: str
    is_regex: bool
    trend: str | None
    group: str | None
    spec: CheckSpec
    source: str
    line: int
    path_matcher: re.Pattern[str] = field(repr=False, compare=False)
    #: Every trend the check (or one of its sub-checks) reads.
    trend_names: frozenset[str] = field(compare=False)
    subsystem_matcher: re.Pattern[str] | None = field(repr=False, compare=False)
    description: str = ""
    #: What a slice must hold for a decision: {"events"|"entries"|"seconds": at least}.
    minimum: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def needs_histogram(self) -> bool:
        return self.spec.needs_histogram()

    def applies_to_subsystem(self, subsystem: str) -> bool:
        matcher = self.subsystem_matcher
        return matcher is None or matcher.fullmatch(subsystem) is not None

    def selects(self, path: str) -> bool:
        return self.path_matcher.fullmatch(path) is not None


# --------------------------------------------------------------------------- parsing


def _parameter(reader: NodeReader, param: Param, node: Node, key: str) -> tuple[Any, float | None]:
    """The validated value of one parameter and the number to compare for ordering."""
    if param.kind == "choice":
        value = reader.scalar(node, key)
        assert param.choices is not None
        if not isinstance(value, str) or value not in param.choices:
            raise reader.error(
                node, key, f"expected one of {', '.join(param.choices)}, got {value!r}"
            )
        return param.choices[value], None
    if param.kind == "int":
        number: float = reader.integer(node, key)
    else:
        number = reader.number(node, key)
        if param.kind == "ratio" and not 0.0 <= number <= 1.0:
            raise reader.error(node, key, f"expected a fraction in [0, 1], got {number:g}")
    if param.ge is not None and number < param.ge:
        raise reader.error(node, key, f"expected a value >= {param.ge:g}, got {number:g}")
    return number, number


def _parameters(
    reader: NodeReader,
    kind: CheckKind,
    on_trend: bool,
    items: dict[str, tuple[Node, Node]],
    owner: Node,
    key: str,
) -> dict[str, Any]:
    """Validate a ``parameters`` mapping against the kind's table (names, types, order)."""
    allowed = kind.params_for(on_trend)
    names = tuple(p.name for p in allowed)
    pkey = f"{key}.parameters"
    if "parameters" in items:
        key_node, node = items["parameters"]
        given = {} if is_null(node) else reader.mapping(node, pkey, None, "parameter: value")
        anchor: Node = key_node
    else:
        given, anchor = {}, owner
    for name, (name_node, _) in given.items():
        if name not in names:
            target = "a trend" if on_trend else "a histogram"
            extra = ""
            if kind.param(name) is not None:
                extra = f" when checking {target}"
            raise reader.error(
                name_node,
                f"{pkey}.{name}",
                f"unknown parameter of {kind.name}{extra}{suggest(name, names) if names else ''}",
            )
    params: dict[str, Any] = {}
    numbers: dict[str, tuple[float, Node]] = {}
    for param in allowed:
        if param.name not in given:
            if param.required:
                raise reader.error(
                    anchor,
                    f"{pkey}.{param.name}",
                    f"missing required parameter '{param.name}' of {kind.name}",
                )
            params[param.keyword] = param.default
            continue
        node = given[param.name][1]
        value, number = _parameter(reader, param, node, f"{pkey}.{param.name}")
        params[param.keyword] = value
        if number is not None:
            numbers[param.name] = (number, node)
    for small, large in kind.ordered:
        if small in numbers and large in numbers and numbers[small][0] > numbers[large][0]:
            # Blame the tolerance (medium_*) when one is involved: the nominal limit is the intent.
            bad = small if "medium" in small else large
            raise reader.error(
                numbers[bad][1],
                f"{pkey}.{bad}",
                f"{small} ({numbers[small][0]:g}) must not exceed {large} ({numbers[large][0]:g})",
            )
    return params


def _spec(
    reader: NodeReader,
    node: Node,
    key: str,
    allowed: tuple[str, ...],
    inherited_trend: str | None,
    label: str,
    items: dict[str, tuple[Node, Node]] | None = None,
) -> CheckSpec:
    """Parse one check node (entry or sub-check) recursively."""
    if items is None:
        items = reader.mapping(node, key, allowed, "a check")
    if "check" not in items:
        raise reader.error(node, f"{key}.check", "missing key 'check' (the check to run)")
    check_node = items["check"][1]
    kind_name = reader.string(check_node, f"{key}.check")
    kind = KINDS.get(kind_name)
    if kind is None:
        raise reader.error(
            check_node,
            f"{key}.check",
            f"unknown check '{kind_name}'{suggest(kind_name, list(KINDS))}",
        )
    trend = inherited_trend
    if "trend" in items:
        trend = reader.string(items["trend"][1], f"{key}.trend")
    on_fail = Quality.BAD
    if "on_fail" in items:
        text = reader.scalar(items["on_fail"][1], f"{key}.on_fail")
        if not isinstance(text, str) or text.lower() not in _ON_FAIL:
            raise reader.error(
                items["on_fail"][1], f"{key}.on_fail", f"expected Bad or Medium, got {text!r}"
            )
        on_fail = _ON_FAIL[text.lower()]
    if allowed is _SUB_KEYS and "name" in items:
        label = reader.string(items["name"][1], f"{key}.name")

    if kind.composite:
        if "parameters" in items:
            raise reader.error(
                items["parameters"][0],
                f"{key}.parameters",
                f"'{kind.name}' takes no parameters; list its sub-checks under 'checks'",
            )
        if "checks" not in items:
            raise reader.error(check_node, f"{key}.checks", f"'{kind.name}' needs a list 'checks'")
        list_node = items["checks"][1]
        if not isinstance(list_node, SequenceNode) or not list_node.value:
            raise reader.error(list_node, f"{key}.checks", "expected a non-empty list of checks")
        children = tuple(
            _spec(reader, child, f"{key}.checks[{i}]", _SUB_KEYS, trend, f"#{i + 1}")
            for i, child in enumerate(list_node.value)
        )
        return CheckSpec(kind, {}, on_fail, trend, label, children)

    if "checks" in items:
        raise reader.error(
            items["checks"][0], f"{key}.checks", "only 'all' and 'any' take sub-checks"
        )
    on_trend = trend is not None
    if on_trend and kind.trend is None:
        raise reader.error(
            check_node,
            f"{key}.check",
            f"'{kind.name}' checks histograms, not trends; remove 'trend' or use a trend check",
        )
    if not on_trend and kind.histogram is None:
        raise reader.error(
            check_node,
            f"{key}.check",
            f"'{kind.name}' checks trends; set 'trend' to the trend value to check",
        )
    params = _parameters(reader, kind, on_trend, items, node, key)
    return CheckSpec(kind, params, on_fail, trend, label)


def _definition(
    reader: NodeReader, node: Node, key: str, items: dict[str, tuple[Node, Node]]
) -> CheckDefinition | None:
    """One entry of the ``checks`` list; None when it is disabled (but still validated)."""
    if "name" not in items:
        raise reader.error(node, f"{key}.name", "missing key 'name' (a unique name)")
    name = reader.string(items["name"][1], f"{key}.name")
    subsystem = "*"
    if "subsystem" in items:
        subsystem = reader.string(items["subsystem"][1], f"{key}.subsystem")
    has_glob, has_regex = "histogram" in items, "histogram_regex" in items
    if has_glob == has_regex:
        anchor = items["histogram_regex"][0] if has_regex else node
        raise reader.error(
            anchor,
            f"{key}.histogram",
            "give exactly one of 'histogram' (a glob) or 'histogram_regex'",
        )
    if has_glob:
        pattern = reader.string(items["histogram"][1], f"{key}.histogram")
        compiled = compile_glob(pattern)
    else:
        pattern_node = items["histogram_regex"][1]
        pattern = reader.string(pattern_node, f"{key}.histogram_regex")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise reader.error(
                pattern_node, f"{key}.histogram_regex", f"bad regular expression {pattern!r}: {exc}"
            ) from exc
    trend = reader.string(items["trend"][1], f"{key}.trend") if "trend" in items else None
    group = reader.string(items["group"][1], f"{key}.group") if "group" in items else None
    description = ""
    if "description" in items:
        description = reader.string(items["description"][1], f"{key}.description", empty=True)
    enabled = reader.boolean(items["enabled"][1], f"{key}.enabled") if "enabled" in items else True
    minimum: dict[str, float] = {}
    if "minimum" in items:
        limits = reader.mapping(items["minimum"][1], f"{key}.minimum", MINIMUM_KEYS, "a minimum")
        for what, (_key_node, value_node) in limits.items():
            value = reader.number(value_node, f"{key}.minimum.{what}")
            if value < 0:
                raise reader.error(value_node, f"{key}.minimum.{what}", "must be 0 or more")
            minimum[what] = value
    spec = _spec(reader, node, key, _ENTRY_KEYS, None, name, items)
    if not enabled:
        return None
    return CheckDefinition(
        name=name,
        subsystem=subsystem,
        pattern=pattern,
        is_regex=has_regex,
        trend=trend,
        group=group,
        spec=spec,
        source=reader.source,
        line=node.start_mark.line + 1,
        path_matcher=compiled,
        trend_names=frozenset(spec.trends()),
        subsystem_matcher=None if subsystem == "*" else compile_glob(subsystem),
        description=description,
        minimum=minimum,
    )


def parse_checks(text: str, source: str = "<checks>") -> list[CheckDefinition]:
    """Validate a whole checks document; raises :class:`CheckConfigError` on the first problem."""
    reader = NodeReader(source, CheckConfigError)
    root = compose(text, source, CheckConfigError)
    if root is None or is_null(root):
        return []
    items = reader.mapping(root, "", ("checks",), "with a key 'checks'")
    if "checks" not in items:
        return []
    list_node = items["checks"][1]
    if is_null(list_node):
        return []
    if not isinstance(list_node, SequenceNode):
        raise reader.error(list_node, "checks", "expected a list of checks")
    definitions: list[CheckDefinition] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(list_node.value):
        key = f"checks[{index}]"
        items = reader.mapping(entry, key, _ENTRY_KEYS, "a check")
        definition = _definition(reader, entry, key, items)
        name_node = items["name"][1]
        name = reader.scalar(name_node, f"{key}.name")
        if name in seen:
            raise reader.error(
                name_node,
                f"{key}.name",
                f"duplicate check name '{name}' (first used on line {seen[name]})",
            )
        seen[name] = name_node.start_mark.line + 1
        if definition is not None:
            definitions.append(definition)
    return definitions


def load_checks(path: str | Path) -> list[CheckDefinition]:
    """Read and validate a checks file."""
    return parse_checks(read_text(path, "checks file", CheckConfigError), str(path))
