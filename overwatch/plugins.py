"""The detector plugin protocol, its processing options and the registry.

A detector plugin tells Overwatch what is special about one subsystem: which
histograms to derive from a time slice (projections, ratios), which ones to
draw together (stacks), how to draw them, how to group them on the run page,
what to write beside a plot (:class:`Annotation`) and which numbers to trend.
Every hook has a default, so a subsystem without a plugin still gets a
sensible page (groups by first directory, 2D drawn ``colz``, only the generic
trend values processing computes for every histogram).

Plugins are found **by name** through the entry-point group
``overwatch.detectors`` (the name is the subsystem, e.g. ``EMC``) and are
never pickled: persistent objects store only the subsystem name and the
plugin is looked up at run time, so a database outlives any change of code.
This module imports nothing from ``processing``, ``receivers`` or ``webapp``.

Hooks run through :func:`run_hook`, which turns an exception or a malformed
result into an error message and a default result: a broken plugin never
stops processing, and the message can be recorded and shown.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from overwatch.histogram import Histogram
from overwatch.plugin_options import OPTION_KINDS, OptionSpec, validate_options

log = logging.getLogger(__name__)

__all__ = [
    "OPTION_KINDS",
    "Annotation",
    "Decoration",
    "DefaultPlugin",
    "DetectorPlugin",
    "Display",
    "OptionSpec",
    "SliceContext",
    "StackSpec",
    "available_plugins",
    "load_errors",
    "load_plugin",
    "reset_plugins",
    "run_hook",
    "validate_options",
]

ENTRY_POINT_GROUP = "overwatch.detectors"
OTHER_GROUP = "Other"
DECORATION_KINDS = ("marker", "box", "line", "text")


# --------------------------------------------------------------------------- hook results


@dataclass(frozen=True)
class Display:
    """How a histogram is drawn: title (None keeps the histogram's), JSROOT option, log axes."""

    title: str | None = None
    draw_option: str = ""
    logx: bool = False
    logy: bool = False
    logz: bool = False


@dataclass(frozen=True)
class Decoration:
    """Something drawn over a plot in axis coordinates: a marker, box, line or text.

    ``x2``/``y2`` are the opposite corner of a box or the end of a line.
    """

    kind: str
    x: float
    y: float
    x2: float | None = None
    y2: float | None = None
    label: str = ""
    color: str = "red"

    def __post_init__(self) -> None:
        if self.kind not in DECORATION_KINDS:
            raise ValueError(f"decoration kind must be one of {DECORATION_KINDS}")
        if self.kind in ("box", "line") and (self.x2 is None or self.y2 is None):
            raise ValueError(f"a {self.kind} decoration needs x2 and y2")


@dataclass
class Annotation:
    """What a plugin says about one histogram: lines of text, decorations, numbers."""

    info: list[str] = field(default_factory=list)
    decorations: list[Decoration] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON, ZODB): never store the object's class."""
        return {
            "info": list(self.info),
            "decorations": [asdict(d) for d in self.decorations],
            "values": {k: float(v) for k, v in self.values.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Annotation:
        return cls(
            info=list(data.get("info", ())),
            decorations=[Decoration(**d) for d in data.get("decorations", ())],
            values=dict(data.get("values", {})),
        )


@dataclass(frozen=True)
class StackSpec:
    """Histograms drawn together in one THStack (members are histogram paths)."""

    name: str
    title: str
    members: tuple[str, ...]
    draw_option: str = "nostack"
    logx: bool = False
    logy: bool = False


@dataclass(frozen=True)
class SliceContext:
    """The time slice a hook works on: interval (unix s), events in it, all its histograms.

    ``histograms`` (raw and derived, by path) lets a per-histogram hook compare
    a histogram with its neighbours, e.g. a silent supermodule with the others.
    """

    run: int
    subsystem: str
    start: float
    end: float
    n_events: float
    histograms: Mapping[str, Histogram] = field(default_factory=dict, compare=False, repr=False)
    events_path: str = ""  # the subsystem's events counter (see events_path())
    counter_resets: int = 0  # histograms whose sender's counter restarted within the slice

    @property
    def duration(self) -> float:
        return self.end - self.start


# --------------------------------------------------------------------------- the protocol


def first_directory(path: str) -> str:
    """The default group: first path component, "Other" for top-level histograms."""
    head, separator, _rest = path.partition("/")
    return head if separator and head else OTHER_GROUP


class DetectorPlugin:
    """Base class of every detector plugin; each hook's default is the no-plugin behaviour.

    ``groups`` is an ordered list of ``(group name, regular expression)``; a path
    goes to the first pattern that matches (``re.search``: anchor with ``^``),
    the name is expanded with the match (``r"SM\\g<sm>"``), and an unmatched
    path falls back to its first directory. Hooks that take ``options`` get the
    output of :func:`validate_options` for :attr:`options`; :meth:`option` reads
    one value with its declared default when the caller passed none.
    ``annotate`` and ``trend_values`` see the slice as it is (counts);
    ``transform`` only changes what is shown. ``events_histogram`` is the path
    of the subsystem's events counter (its ``event_rate`` trend).
    """

    name: str = "default"
    events_histogram: str = "events"
    options: tuple[OptionSpec, ...] = ()
    groups: tuple[tuple[str, str], ...] = ()

    def option(self, options: Mapping[str, Any], name: str) -> Any:
        if name in options:
            return options[name]
        for spec in self.options:
            if spec.name == name:
                return spec.default
        raise KeyError(f"{self.name} declares no option {name!r}")

    def group_of(self, path: str) -> str:
        for group, pattern in self.groups:
            match = re.search(pattern, path)
            if match:
                return match.expand(group)
        return first_directory(path)

    def grouped(self, paths: Iterable[str]) -> dict[str, list[str]]:
        """{group: paths}: groups in pattern order, then fallback groups by name, "Other" last."""
        groups: dict[str, list[str]] = {}
        rank: dict[str, tuple] = {}
        for path in paths:
            group = self.group_of(path)
            groups.setdefault(group, []).append(path)
            index = next(
                (i for i, (_, p) in enumerate(self.groups) if re.search(p, path)), len(self.groups)
            )
            key = (group == OTHER_GROUP, index, group.lower())
            rank[group] = min(rank.get(group, key), key)
        return {g: groups[g] for g in sorted(groups, key=rank.__getitem__)}

    def derived(
        self, histograms: Mapping[str, Histogram], options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, Histogram]:
        """New histograms computed from the slice, by path (must not reuse a slice path)."""
        return {}

    def stacks(self, paths: Iterable[str]) -> list[StackSpec]:
        return []

    def display(self, path: str, histogram: Histogram) -> Display:
        return Display(draw_option="colz" if histogram.ndim == 2 else "")

    def transform(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> Histogram:
        """The histogram as shown (e.g. scaled per event); trends and checks use the raw one."""
        return histogram

    def annotate(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> Annotation | None:
        return None

    def trend_values(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, float]:
        """Plugin trend values, beyond the generic ones processing computes for every histogram."""
        return {}


def events_path(plugin: DetectorPlugin, configured: Mapping[str, str], subsystem: str) -> str:
    """The one rule for a subsystem's events histogram: the setting, else the plugin's.

    ``configured`` is ``processing.events_histogram`` of the settings.
    """
    return configured.get(subsystem) or plugin.events_histogram


class DefaultPlugin(DetectorPlugin):
    """What a subsystem without a plugin (or with a broken one) gets."""


HOOKS = (
    "group_of",
    "grouped",
    "derived",
    "stacks",
    "display",
    "transform",
    "annotate",
    "trend_values",
)
_DEFAULT = DefaultPlugin()


# --------------------------------------------------------------------------- registry

#: Subsystem -> why its plugin could not be loaded (shown on the status page).
load_errors: dict[str, str] = {}
_cache: dict[str, DetectorPlugin] = {}
_lock = threading.Lock()


def available_plugins() -> dict[str, str]:
    """Installed plugins: {subsystem: "module:attribute"}."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_plugin(subsystem: str) -> DetectorPlugin:
    """The plugin registered under ``subsystem``, or the default one (cached per name).

    A plugin that fails to import, to instantiate or to declare valid options
    and groups is replaced by the default plugin; the error is logged and kept
    in :data:`load_errors`.
    """
    with _lock:
        plugin = _cache.get(subsystem)
        if plugin is None:
            plugin = _cache[subsystem] = _load(subsystem)
        return plugin


def reset_plugins() -> None:
    """Forget loaded plugins and load errors (after installing a plugin, and in tests)."""
    with _lock:
        _cache.clear()
        load_errors.clear()


def _load(subsystem: str) -> DetectorPlugin:
    found = list(metadata.entry_points(group=ENTRY_POINT_GROUP, name=subsystem))
    if not found:
        return _DEFAULT
    if len(found) > 1:
        log.warning("several plugins for %s; using %s", subsystem, found[0].value)
    entry = found[0]
    try:
        obj = entry.load()
        plugin = obj() if isinstance(obj, type) else obj
        if not isinstance(plugin, DetectorPlugin):
            raise TypeError(f"{entry.value} is not a DetectorPlugin (got {type(plugin).__name__})")
        _check_declarations(plugin)
    except Exception as error:  # noqa: BLE001 - any failure falls back to the default plugin
        message = f"plugin {entry.value!r} for {subsystem}: {type(error).__name__}: {error}"
        log.error("cannot load detector %s; using the default plugin", message)
        load_errors[subsystem] = message
        return _DEFAULT
    load_errors.pop(subsystem, None)
    return plugin


def _check_declarations(plugin: DetectorPlugin) -> None:
    names = [spec.name for spec in plugin.options]
    if any(not isinstance(spec, OptionSpec) for spec in plugin.options):
        raise TypeError("options must be OptionSpec objects")
    if len(set(names)) != len(names):
        raise ValueError(f"option names repeat: {names}")
    for group, pattern in plugin.groups:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"group {group!r}: bad pattern {pattern!r}: {error}") from error


# --------------------------------------------------------------------------- isolation

_reported: set[tuple[str, str, str]] = set()


def run_hook(plugin: DetectorPlugin, hook_name: str, *args: Any) -> tuple[Any, str | None]:
    """Call a hook; never raises: (result, None), or (default result, error text).

    The default result is what :class:`DefaultPlugin` returns for the same call.
    Results of the wrong shape count as errors, so they cannot break the caller later.
    The traceback is logged the first time a plugin fails in a hook in a given way.
    """
    if hook_name not in HOOKS:
        raise ValueError(f"unknown hook {hook_name!r}; hooks are {', '.join(HOOKS)}")
    try:
        result = getattr(plugin, hook_name)(*args)
        return _check_result(hook_name, result, args), None
    except Exception as error:  # noqa: BLE001 - isolation is the point of this function
        message = f"{plugin.name}.{hook_name}: {type(error).__name__}: {error}"
        key = (plugin.name, hook_name, type(error).__name__)
        if key not in _reported:
            _reported.add(key)
            log.error("detector plugin failed: %s", message, exc_info=True)
        else:
            log.debug("detector plugin failed again: %s", message)
    try:
        return getattr(_DEFAULT, hook_name)(*args), message
    except Exception:  # noqa: BLE001 - e.g. arguments the default cannot handle either
        return None, message


def _check_result(hook: str, result: Any, args: tuple) -> Any:
    """The result if it has the hook's shape (trend values as plain floats), else raises."""

    def fail(expected: str) -> None:
        raise TypeError(f"returned {type(result).__name__}, expected {expected}")

    if hook == "group_of" and not isinstance(result, str):
        fail("a group name (str)")
    elif hook == "grouped" and not (
        isinstance(result, dict) and all(isinstance(v, list) for v in result.values())
    ):
        fail("a dict of group -> paths")
    elif hook == "display" and not isinstance(result, Display):
        fail("a Display")
    elif hook == "transform" and not isinstance(result, Histogram):
        fail("a Histogram")
    elif hook == "annotate" and not (result is None or isinstance(result, Annotation)):
        fail("an Annotation or None")
    elif hook == "stacks":
        if not isinstance(result, list) or not all(isinstance(s, StackSpec) for s in result):
            fail("a list of StackSpec")
    elif hook == "derived":
        if not isinstance(result, dict) or not all(
            isinstance(k, str) and isinstance(v, Histogram) for k, v in result.items()
        ):
            fail("a dict of path -> Histogram")
        clash = sorted(set(result) & set(args[0]))
        if clash:
            raise ValueError(f"derived histograms would replace slice histograms: {clash}")
    elif hook == "trend_values":
        if not isinstance(result, dict):
            fail("a dict of name -> number")
        for name, value in result.items():
            if not isinstance(name, str) or isinstance(value, bool):
                raise TypeError(f"trend value {name!r}: {value!r} is not a number")
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"trend value {name!r}: {value!r} is not a finite number")
        return {name: float(value) for name, value in result.items()}
    return result
