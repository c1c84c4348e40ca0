"""What an on-demand slice yields, and the trend series its checks read.

:class:`SliceResult` is one computed slice (histograms raw and derived,
annotations, check results, what the plugin shows); :class:`SliceTrends` is
the ``trends`` mapping :func:`processing.analysis.slice_analysis.analyse_slice` gives the
checks of an on-demand slice. Both are made by
:class:`processing.slices.service.SliceService`, whose module docs explain the rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from overwatch.histogram import Histogram
from overwatch.plugins import DetectorPlugin, SliceContext, run_hook
from processing.analysis.trending import TrendStore
from processing.slices.spec import SliceSpec, minute_of


@dataclass
class SliceResult:
    """One computed slice: histograms (raw and derived), annotations, check results."""

    spec: SliceSpec
    slice_id: str
    plugin: DetectorPlugin
    context: SliceContext
    run_start: float
    histograms: dict[str, Histogram]  # raw slice plus derived
    paths: list[tuple[str, str]]  # (path, class name): slice paths in file order, then derived
    derived: list[str]
    annotations: dict[str, dict]
    evaluation: dict | None
    errors: list[str]
    left_out: list[str]
    seconds: float
    computed_at: float = field(default_factory=time.time)
    #: What the web keeps per histogram (encoded JSON); dropped with the slice.
    encoded: dict[str, Any] = field(default_factory=dict, repr=False)
    _shown: dict[str, Histogram] = field(default_factory=dict, repr=False)

    @property
    def n_events(self) -> float:
        return self.context.n_events

    def shown(self, path: str) -> Histogram:
        """The histogram as the page shows it: the plugin's ``transform`` with the options."""
        found = self._shown.get(path)
        if found is None:
            histogram = self.histograms[path]  # KeyError for a path not in the slice
            found = histogram
            if type(self.plugin).transform is not DetectorPlugin.transform:
                options = self.spec.option_values
                found, error = run_hook(
                    self.plugin, "transform", path, histogram, options, self.context
                )
                if error:
                    self.errors.append(f"{path}: {error}")
                    found = histogram
            self._shown[path] = found
        return found

    def shown_all(self) -> dict[str, Histogram]:
        return {path: self.shown(path) for path, _ in self.paths}

    @property
    def nbytes(self) -> int:
        total = 0
        for h in self.histograms.values():
            for array in (h.values, h.sumw2, h.bin_entries, h.bin_sumw2):
                total += array.nbytes if array is not None else 0
        return total

    def summary(self) -> dict[str, Any]:
        """Plain JSON data: interval, options, quality, checks, annotations, histograms."""
        spec = self.spec
        evaluation = self.evaluation or {}
        return {
            "id": self.slice_id,
            "run": spec.run,
            "subsystem": spec.subsystem,
            "interval": {
                "start": spec.start,
                "end": spec.end,
                "from_run_start": spec.start is None,
                "start_minute": 0.0
                if spec.start is None
                else minute_of(spec.start, self.run_start),
                "end_minute": minute_of(spec.end, self.run_start),
                "run_start": self.run_start,
            },
            "options": spec.option_values,
            "link": spec.link(),
            "n_events": self.n_events,
            "quality": evaluation.get("quality", "Null"),
            "groups": evaluation.get("groups", {}),
            "checks": evaluation.get("results", []),
            "annotations": self.annotations,
            "derived": list(self.derived),
            "left_out": list(self.left_out),
            "errors": list(self.errors),
            "histograms": [{"path": p, "class_name": c} for p, c in self.paths],
            "seconds": self.seconds,
        }


class SliceTrends(Mapping):
    """Trend series as the checks of an on-demand slice see them (see the module docs).

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


__all__ = ["SliceResult", "SliceTrends"]
