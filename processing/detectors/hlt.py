"""The HLT plugin: event-size and trigger-rate summaries of each time slice.

Derived: ``HLT/triggerClassRate`` (counts per trigger class / slice duration,
Hz) and ``HLT/triggerClassPerEvent`` (counts per class / events in the slice).
The events counter carries a summary block (event rate, mean event size, data
rate, busiest trigger classes); trends: ``event_rate``, ``mean_event_size``
(MB), ``data_rate`` (MB/s) and ``rate_<class>`` for every trigger class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from overwatch.histogram import Histogram
from overwatch.plugins import Annotation, DetectorPlugin, Display, SliceContext
from processing.detectors import divided, event_rate, events_in

EVENT_SIZE = "HLT/eventSize"
TRIGGER_CLASSES = "HLT/triggerClasses"
TRIGGER_RATE = "HLT/triggerClassRate"
TRIGGER_PER_EVENT = "HLT/triggerClassPerEvent"
LISTED_CLASSES = 5


def class_counts(histogram: Histogram) -> dict[str, float]:
    """Counts per trigger class, by bin label (``bin <n>`` for unlabelled bins)."""
    labels = histogram.axes[0].labels or {}
    counts = histogram.values[1:-1]
    return {labels.get(i + 1, f"bin {i + 1}"): float(c) for i, c in enumerate(counts)}


def size_summary(histogram: Histogram, context: SliceContext) -> dict[str, float]:
    """Mean event size (MB) and, for a slice with a duration, the data rate (MB/s)."""
    if histogram.integral() <= 0:
        return {}
    values = {"mean_event_size": histogram.mean(0)}
    if context.duration > 0:
        total = float((histogram.values[1:-1] * histogram.axes[0].centers).sum())
        values["data_rate"] = total / context.duration
    return values


class HLTPlugin(DetectorPlugin):
    name = "HLT"
    events_histogram = "events"
    groups = (
        ("Triggers", r"^HLT/triggerClass"),
        ("Event size", r"^HLT/(eventSize|tracksVsEventSize)$"),
        ("Processing", r"^HLT/processingTime"),
        ("Events", r"^events$"),
    )

    def derived(
        self, histograms: Mapping[str, Histogram], options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, Histogram]:
        out: dict[str, Histogram] = {}
        classes = histograms.get(TRIGGER_CLASSES)
        if classes is None:
            return out
        if context.duration > 0:
            out[TRIGGER_RATE] = divided(
                classes, context.duration, TRIGGER_RATE, "trigger class rate (Hz)"
            )
        if context.n_events > 0:
            out[TRIGGER_PER_EVENT] = divided(
                classes, context.n_events, TRIGGER_PER_EVENT, "trigger class counts per event"
            )
        return out

    def display(self, path: str, histogram: Histogram) -> Display:
        if path in (TRIGGER_CLASSES, TRIGGER_RATE, TRIGGER_PER_EVENT):
            # The numbers matter more than the shape. JSROOT's "text" turns them upright and
            # as tall as a bin is wide when bins are narrow (oversized, over the bars); the
            # "n" of "textn" keeps them level above each bar, all shrunk to fit the widest
            # bin. No stat box: the mean of a class index means nothing.
            return Display(draw_option="hist textn nostat")
        return super().display(path, histogram)

    def annotate(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> Annotation | None:
        if path == self.events_histogram:
            return self._summary(histogram, context)
        if path == EVENT_SIZE:
            values = size_summary(histogram, context)
            return Annotation(_size_lines(values), [], values) if values else None
        if path == TRIGGER_CLASSES and context.duration > 0:
            rates = {k: v / context.duration for k, v in class_counts(histogram).items()}
            lines = [f"{name}: {rate:.4g} Hz" for name, rate in rates.items()]
            return Annotation(lines, [], {f"rate_{k}": v for k, v in rates.items()})
        return None

    def _summary(self, events: Histogram, context: SliceContext) -> Annotation:
        values = dict(event_rate(events, context))
        lines = [f"{events_in(events):.0f} events in {context.duration:.0f} s"]
        if "event_rate" in values:
            lines.append(f"event rate {values['event_rate']:.4g} Hz")
        size = context.histograms.get(EVENT_SIZE)
        if size is not None:
            sizes = size_summary(size, context)
            values.update(sizes)
            lines += _size_lines(sizes)
        classes = context.histograms.get(TRIGGER_CLASSES)
        if classes is not None and context.duration > 0:
            counts = class_counts(classes)
            busiest = sorted(counts, key=counts.__getitem__, reverse=True)[:LISTED_CLASSES]
            rates = ", ".join(f"{k} {counts[k] / context.duration:.3g} Hz" for k in busiest)
            lines.append(f"busiest trigger classes: {rates}")
        return Annotation(lines, [], values)

    def trend_values(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, float]:
        if path == self.events_histogram:
            return event_rate(histogram, context)
        if path == EVENT_SIZE:
            return size_summary(histogram, context)
        if path == TRIGGER_CLASSES and context.duration > 0:
            counts = class_counts(histogram)
            values = {f"rate_{k}": v / context.duration for k, v in counts.items()}
            values["trigger_rate"] = float(np.sum(list(counts.values()))) / context.duration
            return values
        return {}


def _size_lines(values: Mapping[str, float]) -> list[str]:
    lines = []
    if "mean_event_size" in values:
        lines.append(f"mean event size {values['mean_event_size']:.3g} MB")
    if "data_rate" in values:
        lines.append(f"data rate {values['data_rate']:.4g} MB/s")
    return lines
