"""The EMC plugin: supermodule groups, EMCal/DCal stacks, hot and dead cells, trigger patches.

Supermodules SM00-SM11 form the EMCal, SM12-SM19 the DCal. Each
``EMCal/SMxx/cellHits`` map of a slice goes through the finder of
:mod:`processing.detectors.hot_channels`: hot cells are listed beside the plot
and marked on the map, dead regions are boxed, and the counts are trended as
``hot_cells`` and ``dead_cells`` (the names the alarm checks use). Trigger
patch amplitudes, recorded in ADC counts, get an energy-axis copy
(``adc_to_gev`` GeV per ADC count).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from overwatch.histogram import Histogram
from overwatch.plugins import (
    Annotation,
    Decoration,
    DetectorPlugin,
    Display,
    OptionSpec,
    SliceContext,
    StackSpec,
)
from processing.detectors import divided, event_rate, rescale_axis, summary_histogram
from processing.detectors.hot_channels import CellMapReport, inspect_cell_map, live_median

SUPERMODULES = 20
EMCAL_SUPERMODULES = range(0, 12)
DCAL_SUPERMODULES = range(12, 20)
CELL_MAP = re.compile(r"^EMCal/SM(\d+)/cellHits$")
#: Trigger patch amplitudes (ADC) -> their energy-axis copies.
PATCH_ENERGY = {
    "EMCTrigger/L1GammaPatchAmp": "EMCTrigger/L1GammaPatchEnergy",
    "EMCTrigger/L1JetPatchAmp": "EMCTrigger/L1JetPatchEnergy",
}
HITS_PER_SUPERMODULE = "EMCal/hitsPerSupermodule"
STACKS = {
    "EMCal": ("EMCal/EMCalCellAmplitude", EMCAL_SUPERMODULES),
    "DCal": ("EMCal/DCalCellAmplitude", DCAL_SUPERMODULES),
}
MAX_LISTED = 20  # hot cells listed beside a map; markers show them all


def amplitude_path(sm: int) -> str:
    return f"EMCal/SM{sm:02d}/cellAmplitude"


def cell_map_path(sm: int) -> str:
    return f"EMCal/SM{sm:02d}/cellHits"


class EMCPlugin(DetectorPlugin):
    name = "EMC"
    events_histogram = "EMCTrigger/events"
    options = (
        OptionSpec(
            "scale_by_events", "bool", False,
            help="Show histograms divided by the number of events in the slice.",
        ),
        OptionSpec(
            "hot_channel_threshold", "float", 10.0, minimum=1.0, maximum=1000.0,
            help="A cell is hot above this multiple of the median cell count of its supermodule.",
        ),
        OptionSpec(
            "min_median_for_hot", "float", 5.0, minimum=1.0,
            help="Below this median count per cell the map has not enough statistics "
            "to look for hot cells.",
        ),
        OptionSpec(
            "min_median_for_dead", "float", 25.0, minimum=1.0,
            help="An empty cell is dead only where at least this many counts were expected "
            "(at 25, a live cell is empty by chance with probability < 1e-5).",
        ),
        OptionSpec(
            "adc_to_gev", "float", 0.07, minimum=0.0, exclusive_minimum=True, maximum=100.0,
            help="Energy of one ADC count of a trigger patch, in GeV.",
        ),
    )  # fmt: skip
    # First match wins; "SM\g<sm>" becomes the supermodule's own group.
    groups = (
        ("Overview", r"^EMCal/(EMCalCellAmplitude|DCalCellAmplitude|hitsPerSupermodule)$"),
        (r"SM\g<sm>", r"^EMCal/SM(?P<sm>\d+)/"),
        ("Clusters", r"^EMCal/cluster"),
        ("Trigger patches", r"^EMCTrigger/L1\w*Patch"),
        ("FastOR", r"^EMCTrigger/FastOR"),
        ("Trigger", r"^EMCTrigger/"),
    )

    # -- derived and stacks --------------------------------------------------------
    def derived(
        self, histograms: Mapping[str, Histogram], options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, Histogram]:
        out: dict[str, Histogram] = {}
        factor = float(self.option(options, "adc_to_gev"))
        for source, target in PATCH_ENERGY.items():
            if source in histograms:
                h = histograms[source]
                out[target] = rescale_axis(
                    h, 0, factor, target, h.title.replace("amplitude", "energy"), "energy (GeV)"
                )
        maps = {sm: histograms.get(cell_map_path(sm)) for sm in range(SUPERMODULES)}
        if any(h is not None for h in maps.values()) and context.n_events > 0:
            hits = {f"SM{sm:02d}": h.integral() if h is not None else 0.0 for sm, h in maps.items()}
            counts = np.array(list(hits.values()))
            out[HITS_PER_SUPERMODULE] = summary_histogram(
                HITS_PER_SUPERMODULE,
                "cell hits per event in each supermodule",
                {k: v / context.n_events for k, v in hits.items()},
                errors=np.sqrt(counts) / context.n_events,
                axis_title="supermodule",
            )
        return out

    def stacks(self, paths: Iterable[str]) -> list[StackSpec]:
        present = set(paths)
        out = []
        for label, (name, supermodules) in STACKS.items():
            members = tuple(
                amplitude_path(sm) for sm in supermodules if amplitude_path(sm) in present
            )
            if members:
                first, last = members[0].split("/")[1], members[-1].split("/")[1]
                title = f"{label} cell amplitude ({first}-{last})"
                out.append(StackSpec(name, title, members, "nostack", logy=True))
        return out

    # -- presentation --------------------------------------------------------------
    def display(self, path: str, histogram: Histogram) -> Display:
        if CELL_MAP.match(path):
            return Display(draw_option="colz", logz=True)  # hot cells would flatten a linear scale
        if path.endswith("/cellAmplitude") or path == "EMCal/clusterEnergy":
            return Display(logy=True)
        if path in PATCH_ENERGY or path in PATCH_ENERGY.values():
            return Display(logy=True)
        if path == HITS_PER_SUPERMODULE:
            return Display(draw_option="hist")
        return super().display(path, histogram)

    def transform(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> Histogram:
        if (
            self.option(options, "scale_by_events")
            and context.n_events > 0
            and path not in (self.events_histogram, HITS_PER_SUPERMODULE)
        ):
            return divided(histogram, context.n_events, histogram.name, histogram.title)
        return histogram

    # -- hot and dead cells ------------------------------------------------------------
    def cell_report(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> CellMapReport:
        """The finder's verdict on one supermodule map of the slice (memoised, see _Memo)."""
        multiple = float(self.option(options, "hot_channel_threshold"))
        min_hot = float(self.option(options, "min_median_for_hot"))
        min_dead = float(self.option(options, "min_median_for_dead"))
        reference = _reference_median(path, context)
        total = _reference_total(path, context)
        return _memo.get(
            histogram,
            ("report", multiple, min_hot, min_dead, reference, total, *_content(histogram)),
            lambda: inspect_cell_map(
                histogram.values[histogram.inner],
                multiple=multiple,
                min_median_hot=min_hot,
                min_median_dead=min_dead,
                reference_median=reference,
                reference_total=total,
            ),
        )

    def annotate(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> Annotation | None:
        if not CELL_MAP.match(path):
            return None
        report = self.cell_report(path, histogram, options, context)
        cols, rows = histogram.axes[0], histogram.axes[1]
        info: list[str] = []
        decorations: list[Decoration] = []
        if not report.enough_statistics:
            info.append(
                f"not enough statistics to look for hot cells (median {report.median:.3g} "
                f"counts per cell, needs {self.option(options, 'min_median_for_hot'):g})"
            )
        else:
            multiple = self.option(options, "hot_channel_threshold")
            info.append(
                f"median {report.median:.4g} counts per cell; hot above "
                f"{report.threshold:.4g} ({multiple:g} x median)"
            )
            info.append(f"{len(report.hot)} hot cell(s)" if report.hot else "no hot cell")
            for cell in report.hot[:MAX_LISTED]:
                info.append(
                    f"hot: column {cell.column}, row {cell.row}: {cell.count:.0f} counts "
                    f"({cell.ratio:.1f} x median)"
                )
            if len(report.hot) > MAX_LISTED:
                info.append(f"... and {len(report.hot) - MAX_LISTED} more hot cells")
            for cell in report.hot:
                decorations.append(
                    Decoration(
                        "marker", float(cols.centers[cell.column]), float(rows.centers[cell.row]),
                        label=f"hot ({cell.column}, {cell.row})",
                    )
                )  # fmt: skip
        if report.dead:
            regions = report.dead_regions
            info.append(
                f"{len(report.dead)} dead cell(s) in {len(regions)} region(s) "
                f"(expected ~{report.dead_expected:.4g} counts each)"
            )
            for c0, c1, r0, r1 in regions:
                info.append(f"dead: columns {c0}-{c1 - 1}, rows {r0}-{r1 - 1}")
                decorations.append(
                    Decoration(
                        "box", float(cols.edges[c0]), float(rows.edges[r0]),
                        float(cols.edges[c1]), float(rows.edges[r1]), label="dead", color="black",
                    )
                )  # fmt: skip
        return Annotation(info, decorations, _report_values(report))

    def trend_values(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, float]:
        if path == self.events_histogram:
            return event_rate(histogram, context)
        if CELL_MAP.match(path):
            return _report_values(self.cell_report(path, histogram, options, context))
        return {}


def _report_values(report: CellMapReport) -> dict[str, float]:
    """Trend values of a map; a count the finder could not judge is left out (checks: Null)."""
    values = {"median_cell_counts": report.median}
    if report.enough_statistics:
        values["hot_cells"] = float(len(report.hot))
    if report.dead_judged:
        values["dead_cells"] = float(len(report.dead))
    return values


_MISSING = object()


class _Memo:
    """Results computed from one object (a histogram, a slice context), kept while it lives.

    Why: within one slice ``annotate`` and ``trend_values`` both inspect every
    cell map, and each map's reference level needs the live medians of all the
    other maps: without a memo that is 2 x 20 reports and 800 medians per slice
    (~50 ms), with it 20 reports and 20 medians. Entries are keyed by the
    object's identity (dropped when it is garbage collected) plus what the
    caller puts in ``key``: the options, and the identity and sum of a
    histogram's values (:func:`_content`), so a histogram whose content is
    replaced is inspected again. Safe to share between threads: a race only
    computes a result twice.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, dict]] = {}

    def get(self, obj: object, key: tuple, compute: Callable[[], Any]) -> Any:
        ident = id(obj)
        entry = self._entries.get(ident)
        if entry is None or entry[0]() is not obj:
            entry = (weakref.ref(obj, self._forget(ident)), {})
            self._entries[ident] = entry
        found = entry[1].get(key, _MISSING)
        if found is _MISSING:
            found = compute()
            if len(entry[1]) > 16:  # options churning on one object (a form): keep it small
                entry[1].clear()
            entry[1][key] = found
        return found

    def _forget(self, ident: int) -> Callable[[weakref.ref], None]:
        def forget(ref: weakref.ref) -> None:
            entry = self._entries.get(ident)
            if entry is not None and entry[0] is ref:
                self._entries.pop(ident, None)

        return forget


_memo = _Memo()


def _content(histogram: Histogram) -> tuple[int, float]:
    return id(histogram.values), float(histogram.values.sum())


def _map_levels(context: SliceContext) -> dict[str, tuple[float, float]]:
    """{cell map path: (live median, total)} of every map in the slice, once per context."""

    def compute() -> dict[str, tuple[float, float]]:
        return {
            path: (live_median(h.values[h.inner]), float(h.values[h.inner].sum()))
            for path, h in context.histograms.items()
            if path.endswith("/cellHits") and CELL_MAP.match(path)
        }

    # The context holds its histograms, so their identities are stable while it lives.
    key = ("map_levels", id(context.histograms), len(context.histograms))
    return _memo.get(context, key, compute)


def _reference_median(path: str, context: SliceContext) -> float | None:
    """Median over the other supermodules of their live medians in the same slice."""
    medians = [m for other, (m, _) in _map_levels(context).items() if other != path and m > 0]
    return float(np.median(medians)) if medians else None


def _reference_total(path: str, context: SliceContext) -> float | None:
    """Median over the other supermodules of their total counts in the same slice."""
    totals = [t for other, (_, t) in _map_levels(context).items() if other != path]
    return float(np.median(totals)) if totals else None
