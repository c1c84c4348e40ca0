"""Built-in detector plugins (EMC, TPC, HLT) and the helpers they share.

The plugins are registered in ``pyproject.toml`` under the entry-point group
``overwatch.detectors`` and found by name with
:func:`overwatch.plugins.load_plugin`; nothing imports them directly. A
site plugin for another subsystem is any ``DetectorPlugin`` subclass
registered the same way from its own distribution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from overwatch.histogram import Axis, Histogram
from overwatch.plugins import SliceContext


def events_in(histogram: Histogram) -> float:
    """Events counted by an events histogram (its in-range content)."""
    return histogram.integral()


def event_rate(histogram: Histogram, context: SliceContext) -> dict[str, float]:
    """``{"event_rate": events per second}`` of the slice; empty when it has no duration."""
    if context.duration <= 0:
        return {}
    return {"event_rate": events_in(histogram) / context.duration}


def rescale_axis(
    histogram: Histogram, axis: int, factor: float, name: str, title: str, axis_title: str
) -> Histogram:
    """A copy whose axis edges are multiplied by ``factor`` (e.g. ADC -> GeV); contents unchanged."""
    if factor <= 0:
        raise ValueError(f"an axis can only be rescaled by a positive factor, not {factor}")
    result = histogram.copy(name=name)
    old = result.axes[axis]
    result.axes[axis] = dataclasses.replace(old, edges=old.edges * factor, title=axis_title)
    result.title = title
    result.stats = result.compute_stats()
    return result


def divided(histogram: Histogram, divisor: float, name: str, title: str) -> Histogram:
    """A copy with contents and errors divided by ``divisor`` (per event, per second)."""
    result = histogram.scaled(1.0 / divisor)
    result.name = name
    result.title = title
    return result


def summary_histogram(
    name: str,
    title: str,
    labels: Mapping[str, float],
    errors: Sequence[float] | None = None,
    axis_title: str = "",
) -> Histogram:
    """A TH1D with one labelled bin per entry of ``labels`` (errors 0 unless given)."""
    axis = Axis.regular(len(labels), 0, len(labels), title=axis_title)
    axis.labels = {i + 1: label for i, label in enumerate(labels)}
    histogram = Histogram.empty(name, [axis], "TH1D", title=title, weighted=True)
    histogram.values[1:-1] = list(labels.values())
    if errors is not None:
        histogram.sumw2[1:-1] = np.square(np.asarray(errors, dtype=np.float64))
    histogram.entries = float(len(labels))
    histogram.stats = histogram.compute_stats()
    return histogram
