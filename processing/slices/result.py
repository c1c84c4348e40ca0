"""The view of one slice, and the trend series its checks read.

:class:`SliceView` is everything any page or API answer shows for one slice
(the whole run, the latest slice or an on-demand interval alike): raw and
derived histograms, stacks with their members, groups, display hints,
annotations, check results and qualities per histogram, group and subsystem,
and the slice's context. It is made by :class:`processing.slices.service.SliceService`
from :func:`processing.analysis.slice_analysis.analyse_slice`, the analysis the
live pipeline runs; callers only read it.

:class:`SliceTrends` is the ``trends`` mapping the checks of a slice see.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from overwatch.histogram import Histogram, dimension_of
from overwatch.jsroot import stack as stack_json
from overwatch.jsroot import to_jsroot
from overwatch.lru import LRU
from overwatch.plugins import DetectorPlugin, Display, SliceContext, run_hook
from processing.analysis.slice_analysis import STACK_CLASS, SliceAnalysis
from processing.analysis.trending import TrendStore
from processing.ingest.objects import ObjectRecord, assemble, part_path
from processing.slices import draw_options
from processing.slices.reader import UnknownHistogram
from processing.slices.spec import SliceSpec, minute_of

#: How the plugin draws a histogram does not change from one slice to the next:
#: remembered per (plugin, path, class) for every view of this process.
_DISPLAYS = LRU(100_000)
#: A 2D draw option with a palette (colz, col7z, contz, surf...z): JSROOT draws the palette.
_PALETTE = re.compile(r"(?i)\b(col\d*|cont\d*|surf\d*|lego\d*)z\b")


@dataclass
class SliceView:
    """One computed slice as every page shows it (see the module docs)."""

    spec: SliceSpec
    plugin: DetectorPlugin
    context: SliceContext  # as the hooks saw it: raw and derived histograms
    run_start: float
    snapshots: int  # snapshots whose content the slice holds
    analysis: SliceAnalysis
    paths: list[tuple[str, str]]  # (path, class): raw in file order, derived, then stacks
    errors: list[str]
    left_out: list[str]
    seconds: float
    computed_at: float = field(default_factory=time.time)
    #: The other objects of the snapshot the view ends at (graphs, functions, stacks...).
    objects: dict[str, ObjectRecord] = field(default_factory=dict)
    #: Their parts sliced as the view slices (``<path>;<part>`` -> histogram).
    parts: dict[str, Histogram] = field(default_factory=dict)
    #: What the web keeps per histogram (encoded JSON); dropped with the view.
    encoded: dict[Any, Any] = field(default_factory=dict, repr=False)
    _shown: dict[str, Histogram] = field(default_factory=dict, repr=False)

    # -- what the slice holds ---------------------------------------------------------
    @property
    def slice_id(self) -> str:
        return self.spec.slice_id

    @property
    def histograms(self) -> dict[str, Histogram]:
        """Raw slice plus derived histograms, by path (read-only)."""
        return self.analysis.histograms

    @property
    def derived(self) -> list[str]:
        return self.analysis.derived

    @property
    def annotations(self) -> dict[str, dict]:
        return self.analysis.annotations

    @property
    def n_events(self) -> float:
        return self.context.n_events

    def class_of(self, path: str) -> str:
        """The class a path is listed with; UnknownHistogram if the view has no such path."""
        if path in self.analysis.stacks:
            return STACK_CLASS
        if path in self.objects:
            return self.objects[path].class_name
        histogram = self.analysis.histograms.get(path)
        if histogram is None:
            raise UnknownHistogram(
                f"no histogram {path!r} in run {self.spec.run} {self.spec.subsystem} "
                f"({self.describe()}), neither in the snapshot nor derived by the detector plugin"
            )
        return histogram.class_name

    def counts(self) -> dict[str, int]:
        """The one count of what the view shows: the snapshot's histograms and objects, and
        apart from them what the plugin derives (histograms and stacks)."""
        derived = len(self.analysis.derived) + len(self.analysis.stacks)
        return {"histograms": len(self.paths) - derived, "derived": derived}

    def title_of(self, path: str) -> str:
        """The title a path is shown with: a stack's, an object's or a histogram's own."""
        if path in self.analysis.stacks:
            return self.analysis.stacks[path].title
        if path in self.objects:
            return self.objects[path].title
        histogram = self.analysis.histograms.get(path)
        return histogram.title if histogram is not None else ""

    def describe(self) -> str:
        """A few words naming the slice, for messages and badges."""
        spec = self.spec
        start = "run start" if spec.start is None else f"minute {self._minute(spec.start):g}"
        return f"slice {self.slice_id}: {start} to minute {self._minute(spec.end):g}"

    def _minute(self, ts: float) -> float:
        return round(minute_of(ts, self.run_start), 2)

    # -- how it is shown ------------------------------------------------------------------
    @property
    def transforms(self) -> bool:
        """Whether the plugin shows histograms otherwise than they are (its ``transform``)."""
        return type(self.plugin).transform is not DetectorPlugin.transform

    def shown(self, path: str) -> Histogram:
        """The histogram as the page shows it: the plugin's ``transform`` with the options."""
        found = self._shown.get(path)
        if found is None:
            self.class_of(path)  # UnknownHistogram for a path the view does not hold
            histogram = self.histograms[path]
            found = histogram
            if self.transforms:
                options = self.spec.option_values
                found, error = run_hook(
                    self.plugin, "transform", path, histogram, options, self.context
                )
                if error:
                    self.errors.append(f"{path}: {error}")
                    found = histogram
            self._shown[path] = found
        return found

    def display(self, path: str) -> Display:
        """How the plugin wants a path drawn (a stack: its own option and log axes)."""
        class_name = self.class_of(path)
        spec = self.analysis.stacks.get(path)
        if spec is not None:
            return Display(draw_option=spec.draw_option, logx=spec.logx, logy=spec.logy)
        if path in self.objects:  # drawn as the producer drew it (its own fOption)
            return Display(draw_option="")
        key = (self.plugin.name, id(type(self.plugin)), path, class_name)
        found = _DISPLAYS.get(key)
        if found is None:
            if type(self.plugin).display is DetectorPlugin.display:
                found = default_display(class_name)
            else:
                found, error = run_hook(self.plugin, "display", path, self.histograms[path])
                if error:
                    self.errors.append(error)
                    found = default_display(class_name)
            _DISPLAYS.put(key, found)
        return found

    def draw_option(self, path: str, user: str = "") -> str:
        """A JSROOT draw option: the plugin's option plus its log axes ("colz;logz"), with
        ``user``'s option merged in (see :mod:`processing.slices.draw_options`; a wrong one
        raises DrawOptionError).

        A map drawn with a palette goes without a stat box: JSROOT puts both at the
        right edge, and the box covers the palette's labels and the map's cells.
        """
        display = self.display(path)
        parts = [display.draw_option.strip()]
        parts += [axis for axis in ("logx", "logy", "logz") if getattr(display, axis)]
        own = ";".join(part for part in parts if part)
        if self.dimension(path) == 2 and _PALETTE.search(own):
            own += ";nostat"
        return draw_options.merge(own, draw_options.check(user)) if user.strip() else own

    def user_draw_option(self, path: str, own: str, page: str = "") -> draw_options.Merged:
        """The option a page draws ``path`` with: the user's for this histogram (``own``),
        else the page-wide one for a 1D histogram or stack, merged with the plugin's; a
        refused one keeps the plugin's and says why."""
        user = own if own.strip() else (page if self.dimension(path) == 1 else "")
        return draw_options.merged(self.draw_option(path), user)

    def dimension(self, path: str) -> int:
        """A histogram's dimension; 1 for stacks and the producer's other objects."""
        histogram = self.histograms.get(path)
        return 1 if histogram is None or path in self.analysis.stacks else histogram.ndim

    def jsroot(self, path: str) -> dict:
        """TBufferJSON of a path as shown: a histogram, a stack of its members, or another
        object of the producer (its sliced parts in place)."""
        record = self.objects.get(path)
        if record is not None:
            parts = {
                name: self.parts[part_path(path, name)]
                for name in record.parts
                if part_path(path, name) in self.parts
            }
            return assemble(record, parts)
        spec = self.analysis.stacks.get(path)
        if spec is None:
            return to_jsroot(self.shown(path))
        obj = stack_json(spec.name, spec.title, [self.shown(m) for m in spec.members])
        option = self.draw_option(path)
        obj["fOption"] = option
        nostack = "nostack" in option.lower()
        if nostack:  # drawn over each other: filled members would hide the rest
            for member in obj["fHists"]["arr"]:
                member["fFillStyle"] = 0
        members = obj["fHists"]["arr"]
        if len(members) > 1:
            # JSROOT draws the functions of each member it draws, and a THStack has no list
            # of its own: the legend rides on the last member (drawn last, so on top).
            legend = stack_legend(members, spec.members, "l" if nostack else "f")
            members[-1]["fFunctions"] = {
                "_typename": "TList", "name": "TList", "arr": [legend], "opt": [""],
            }  # fmt: skip
        return obj

    def shown_all(self) -> dict[str, Histogram]:
        """Every histogram (raw and derived, not stacks) as shown: what an export writes."""
        return {path: self.shown(path) for path, _ in self.paths if path in self.histograms}

    # -- plain data -------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        total = 0
        for h in self.histograms.values():
            for array in (h.values, h.sumw2, h.bin_entries, h.bin_sumw2):
                total += array.nbytes if array is not None else 0
        return total

    def interval(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "start": spec.start,
            "end": spec.end,
            "from_run_start": spec.start is None,
            "start_minute": 0.0 if spec.start is None else minute_of(spec.start, self.run_start),
            "end_minute": minute_of(spec.end, self.run_start),
            "run_start": self.run_start,
            "duration": self.context.duration,
            "snapshots": self.snapshots,
            "n_events": self.n_events,
        }

    def to_dict(self) -> dict[str, Any]:
        """The view as plain JSON data (``GET /api/runs/<run>/<sys>/view``)."""
        spec, analysis = self.spec, self.analysis
        return {
            "id": self.slice_id,
            "run": spec.run,
            "subsystem": spec.subsystem,
            "slice": {"id": self.slice_id, "link": spec.link(), **self.interval()},
            "options": spec.option_values,
            "histograms": [{"path": p, "class_name": c} for p, c in self.paths],
            "derived": list(analysis.derived),
            "stacks": [
                {"name": s.name, "title": s.title, "members": list(s.members)}
                for s in analysis.stacks.values()
            ],
            "groups": [
                {"name": name, "histograms": list(paths)} for name, paths in analysis.groups.items()
            ],
            "display": {p: self.draw_option(p) for p, _ in self.paths},
            "annotations": analysis.annotations,
            "check_results": analysis.check_results(),
            "qualities": analysis.qualities(),
            "left_out": list(self.left_out),
            "not_sliced": self.not_sliced(),
            "errors": list(self.errors),
            "seconds": self.seconds,
        }

    def not_sliced(self) -> list[str]:
        """Objects a slice cannot change (graphs, functions): shown as at the view's end."""
        return [path for path, record in self.objects.items() if not record.sliced]

    def summary(self) -> dict[str, Any]:
        """The description of an on-demand slice (``/api/runs/<run>/<sys>/slices``).

        The same view as :meth:`to_dict`, told the way the slice form reads it:
        ``quality``/``groups`` are the subsystem and group qualities, ``checks``
        the check results.
        """
        spec, analysis = self.spec, self.analysis
        return {
            "id": self.slice_id,
            "run": spec.run,
            "subsystem": spec.subsystem,
            "interval": self.interval(),
            "options": spec.option_values,
            "link": spec.link(),
            "n_events": self.n_events,
            "quality": analysis.quality,
            "groups": analysis.group_qualities(),
            "checks": analysis.check_results(),
            "annotations": analysis.annotations,
            "derived": list(analysis.derived),
            "left_out": list(self.left_out),
            "errors": list(self.errors),
            "histograms": [{"path": p, "class_name": c} for p, c in self.paths],
            "seconds": self.seconds,
        }


def default_display(class_name: str) -> Display:
    """What the base plugin shows without a histogram at hand: 2D classes as ``colz``."""
    try:
        ndim = dimension_of(class_name)
    except ValueError:
        ndim = 1
    return Display(draw_option="colz" if ndim == 2 else "")


class SliceTrends(Mapping):
    """Trend series as the checks of a slice see them.

    Keys are the slice's own trend values; each series is the live points up to
    ``before`` (at most ``n - 1`` of them, read only when a check asks, through
    one ``TrendStore.window`` so every chunk file is mapped once) and then the
    slice's point at ``end``.
    """

    def __init__(
        self,
        store: TrendStore | None,
        before: float | None,
        end: float,
        values: Mapping[tuple[str, str], float],
        n: int,
    ) -> None:
        self._before, self._end = before, end
        self._values, self._n = values, max(int(n), 1)
        self._window: Mapping | None = None
        if store is not None and before is not None and self._n > 1:
            times = store.times()
            later = len(times) - int(np.searchsorted(times, before, side="right"))
            self._window = store.window(self._n - 1 + later)

    def __getitem__(self, key: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
        own = self._values[key]
        times, values = np.empty(0), np.empty(0)
        if self._window is not None and key in self._window:
            times, values = self._window[key]
            keep = times <= self._before
            times, values = times[keep][-(self._n - 1) :], values[keep][-(self._n - 1) :]
        return np.append(times, self._end), np.append(values, own)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


__all__ = ["SliceTrends", "SliceView", "default_display"]


# -- the legend of a stack ------------------------------------------------------------------
#: Entries per legend column before a second column is used.
LEGEND_ROWS = 6


def legend_labels(paths: tuple[str, ...] | list[str]) -> list[str]:
    """What tells the members apart: the path segments not common to all of them."""
    split = [path.split("/") for path in paths]
    common = set.intersection(*(set(enumerate(parts)) for parts in split)) if split else set()
    labels = []
    for path, parts in zip(paths, split, strict=True):
        own = [part for index, part in enumerate(parts) if (index, part) not in common]
        labels.append("/".join(own) or path)
    return labels


def stack_legend(members: list[dict], paths: tuple[str, ...], option: str) -> dict:
    """A TLegend (TBufferJSON) naming each member in its colour; JSROOT's TPavePainter draws it.

    Entries carry their own line/fill/marker attributes (no ``fObject`` references), so the
    legend needs nothing but itself; top right, in two columns beyond ``LEGEND_ROWS``.
    """
    columns = 1 if len(members) <= LEGEND_ROWS else 2
    rows = -(-len(members) // columns)
    entries = [
        {
            "_typename": "TLegendEntry", "fUniqueID": 0, "fBits": 0,
            "fTextAlign": 0, "fTextAngle": 0, "fTextColor": 0, "fTextFont": 42, "fTextSize": 0,
            "fLineColor": member.get("fLineColor", 1), "fLineStyle": 1, "fLineWidth": 2,
            "fFillColor": member.get("fFillColor", 0), "fFillStyle": 1001 if "f" in option else 0,
            "fMarkerColor": member.get("fMarkerColor", 1), "fMarkerStyle": 1, "fMarkerSize": 1,
            "fObject": None, "fLabel": label, "fOption": option,
        }
        for member, label in zip(members, legend_labels(paths), strict=True)
    ]  # fmt: skip
    height = min(0.6, 0.06 * rows + 0.02)
    return {
        "_typename": "TLegend", "fUniqueID": 0, "fBits": 0, "fName": "legend", "fTitle": "",
        "fLineColor": 1, "fLineStyle": 1, "fLineWidth": 1, "fFillColor": 0, "fFillStyle": 1001,
        "fX1": 0, "fY1": 0, "fX2": 0, "fY2": 0, "fBorderSize": 1, "fInit": 0,
        "fShadowColor": 1, "fCornerRadius": 0, "fOption": "brNDC",
        "fX1NDC": 0.98 - 0.2 * columns, "fY1NDC": 0.9 - height, "fX2NDC": 0.98, "fY2NDC": 0.9,
        "fTextAngle": 0, "fTextSize": 0, "fTextAlign": 12, "fTextColor": 1, "fTextFont": 42,
        "fPrimitives": {"_typename": "TList", "name": "TList", "arr": entries,
                        "opt": [""] * len(entries)},
        "fEntrySeparation": 0.1, "fMargin": 0.25, "fNColumns": columns, "fColumnSeparation": 0,
    }  # fmt: skip
