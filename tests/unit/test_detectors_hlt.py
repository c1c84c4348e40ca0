"""The HLT plugin: trigger-class rates, event-size summary, trends."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.plugins import SliceContext, load_plugin, run_hook
from receivers.simulator import DetectorSimulator
from receivers.simulator_sets import TRIGGER_CLASSES

START = 1_700_000_000.0


@pytest.fixture(scope="module")
def hlt_slice():
    sim = DetectorSimulator(["HLT"], seed=2, start_time=START, tick=5.0, event_rate=800.0)
    sim.advance(60)
    first = sim.snapshot()
    sim.advance(120)
    piece = {path: h - first[path] for path, h in sim.snapshot().items()}
    events = piece["events"].integral()
    return piece, SliceContext(5, "HLT", START + 60, START + 180, events, histograms=piece)


@pytest.fixture(scope="module")
def plugin():
    return load_plugin("HLT")


def test_trigger_class_rates_and_counts_per_event(plugin, hlt_slice):
    piece, context = hlt_slice
    derived, error = run_hook(plugin, "derived", piece, {}, context)
    assert error is None and sorted(derived) == ["HLT/triggerClassPerEvent", "HLT/triggerClassRate"]
    counts = piece["HLT/triggerClasses"]
    rate, per_event = derived["HLT/triggerClassRate"], derived["HLT/triggerClassPerEvent"]
    np.testing.assert_allclose(rate.values, counts.values / 120.0)
    np.testing.assert_allclose(rate.errors(), np.sqrt(counts.values) / 120.0)
    np.testing.assert_allclose(per_event.values, counts.values / context.n_events)
    assert rate.axes[0].labels == counts.axes[0].labels
    assert rate.axes[0].labels[1] == TRIGGER_CLASSES[0]
    # Fractions per event match what the simulator was told (55 % x 1.3 for CINT7-B).
    assert per_event.values[1] == pytest.approx(0.55 * 1.3, rel=0.02)
    assert plugin.display("HLT/triggerClassRate", rate).draw_option == "hist textn nostat"
    # No duration: no rate; no events: no per-event counts; no trigger histogram: nothing.
    still = SliceContext(5, "HLT", START, START, 0.0)
    assert plugin.derived(piece, {}, still) == {}
    assert plugin.derived({"events": piece["events"]}, {}, context) == {}


def test_trend_values(plugin, hlt_slice):
    piece, context = hlt_slice
    assert plugin.trend_values("events", piece["events"], {}, context) == {
        "event_rate": pytest.approx(context.n_events / 120.0)
    }
    size = piece["HLT/eventSize"]
    values, error = run_hook(plugin, "trend_values", "HLT/eventSize", size, {}, context)
    assert error is None
    centers = size.axes[0].centers
    contents = size.values[1:-1]
    assert values["mean_event_size"] == pytest.approx((contents * centers).sum() / contents.sum())
    assert values["data_rate"] == pytest.approx((contents * centers).sum() / 120.0)
    assert 1.0 < values["mean_event_size"] < 4.0
    classes = plugin.trend_values("HLT/triggerClasses", piece["HLT/triggerClasses"], {}, context)
    assert set(classes) == {f"rate_{name}" for name in TRIGGER_CLASSES} | {"trigger_rate"}
    assert classes["rate_CINT7-B"] == pytest.approx(piece["HLT/triggerClasses"].values[1] / 120)
    assert classes["trigger_rate"] == pytest.approx(
        sum(classes[f"rate_{n}"] for n in TRIGGER_CLASSES)
    )
    assert plugin.trend_values("HLT/processingTime", piece["HLT/processingTime"], {}, context) == {}


def test_summary_block_on_the_events_histogram(plugin, hlt_slice):
    piece, context = hlt_slice
    annotation, error = run_hook(plugin, "annotate", "events", piece["events"], {}, context)
    assert error is None
    text = "\n".join(annotation.info)
    assert f"{context.n_events:.0f} events in 120 s" in text
    assert f"event rate {context.n_events / 120:.4g} Hz" in text
    assert "mean event size" in text and "data rate" in text
    assert "busiest trigger classes: CINT7-B" in text
    assert annotation.values["event_rate"] == pytest.approx(context.n_events / 120)
    assert set(annotation.values) == {"event_rate", "mean_event_size", "data_rate"}
    # Without the other histograms of the slice the block still gives the rate.
    alone = SliceContext(5, "HLT", context.start, context.end, context.n_events)
    assert plugin.annotate("events", piece["events"], {}, alone).info[1].startswith("event rate")


def test_per_histogram_annotations_and_groups(plugin, hlt_slice):
    piece, context = hlt_slice
    classes = plugin.annotate("HLT/triggerClasses", piece["HLT/triggerClasses"], {}, context)
    assert classes.info[0].startswith("CINT7-B: ") and classes.info[0].endswith(" Hz")
    size = plugin.annotate("HLT/eventSize", piece["HLT/eventSize"], {}, context)
    assert size.info[0].startswith("mean event size")
    assert plugin.annotate("HLT/processingTime", piece["HLT/processingTime"], {}, context) is None
    assert plugin.grouped(piece) == {
        "Triggers": ["HLT/triggerClasses"],
        "Event size": ["HLT/eventSize", "HLT/tracksVsEventSize"],
        "Processing": ["HLT/processingTime", "HLT/processingTimeVsEventSize"],
        "Events": ["events"],
    }
