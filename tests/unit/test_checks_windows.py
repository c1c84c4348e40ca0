"""Decisions under real timing: rates over time windows, and no decision on too little data.

Slices here have uneven lengths (1 to 4 s, as receivers polling on their own cadence
cut them), whole-second times (snapshot names), and Poisson counts: the per-slice rate
swings by tens of per cent, which is what made per-slice rate checks cry wolf.
"""

from __future__ import annotations

import numpy as np

from overwatch.histogram import Axis, Histogram
from overwatch.plugins import SliceContext
from overwatch.quality import Quality
from processing.analysis.checks import CheckEngine
from processing.analysis.checks.library import rate_drop


def jittered_rates(rate: float, seconds: float, seed: int, drop_at: float | None = None):
    """(slice end times, per-slice rates) of a Poisson source read at uneven whole seconds."""
    rng = np.random.default_rng(seed)
    times, rates, now = [0.0], [np.nan], 0.0  # the run's first slice has no rate
    while now < seconds:
        step = float(rng.integers(1, 5))
        mean = rate * step * (0.1 if drop_at is not None and now >= drop_at else 1.0)
        now += step
        times.append(now)
        rates.append(rng.poisson(mean) / step)
    return np.array(times), np.array(rates)


def test_no_false_drop_on_an_hour_of_jittered_slices() -> None:
    times, rates = jittered_rates(50.0, 3600.0, seed=1)
    per_slice = rates[1:][np.isfinite(rates[1:])]
    assert per_slice.min() < 0.6 * per_slice.max()  # the slices themselves swing a lot
    qualities = [rate_drop((times[: i + 1], rates[: i + 1])).quality for i in range(2, len(times))]
    assert Quality.BAD not in qualities
    assert qualities.count(Quality.GOOD) > 0.8 * len(qualities)


def test_a_drop_is_bad_on_every_window_while_it_lasts() -> None:
    times, rates = jittered_rates(50.0, 900.0, seed=2, drop_at=600.0)
    verdicts = {
        float(times[i]): rate_drop((times[: i + 1], rates[: i + 1])).quality
        for i in range(2, len(times))
    }
    before = [q for t, q in verdicts.items() if t <= 600.0]
    during = [q for t, q in verdicts.items() if t > 660.0]  # a whole window inside the drop
    assert Quality.BAD not in before
    assert during and set(during) == {Quality.BAD}


def test_too_little_for_a_decision_is_null() -> None:
    times, rates = jittered_rates(0.5, 300.0, seed=3)  # ~30 events a minute, 100 needed
    outcome = rate_drop((times, rates))
    assert outcome.quality is Quality.NULL and "not enough events" in outcome.message
    short = rate_drop((times[:5], rates[:5]))
    assert short.quality is Quality.NULL


def _events_histogram(count: float) -> Histogram:
    values = np.zeros(3)
    values[1] = count
    return Histogram(
        name="events", class_name="TH1D", axes=[Axis.regular(1, 0.0, 1.0)],
        values=values, sumw2=values.copy(), entries=count,
    )  # fmt: skip


def test_a_minimum_makes_a_check_null_instead_of_deciding() -> None:
    engine = CheckEngine.from_text(
        "checks:\n"
        "  - name: has-events\n"
        "    histogram: events\n"
        "    check: between_values\n"
        "    parameters: {value: entries, min: 1000, max: .inf}\n"
        "    minimum: {events: 500, seconds: 10}\n"
    )
    (definition,) = engine.definitions
    assert definition.minimum == {"events": 500.0, "seconds": 10.0}

    def quality(events: float, seconds: float) -> tuple[Quality, str]:
        context = SliceContext(1, "TPC", 0.0, seconds, events)
        evaluation = engine.evaluate(
            1, "TPC", {"events": _events_histogram(events)}, {}, lambda p: "g", context
        )
        (result,) = evaluation.results
        return result.quality, result.message

    assert quality(200, 30)[0] is Quality.NULL and "events 200 < 500" in quality(200, 30)[1]
    assert quality(800, 2)[0] is Quality.NULL and "seconds 2 < 10" in quality(800, 2)[1]
    assert quality(800, 30)[0] is Quality.BAD  # enough data: below 1000 entries is Bad
    assert quality(1500, 30)[0] is Quality.GOOD


def test_a_bad_minimum_names_file_line_and_key() -> None:
    import pytest

    from processing.analysis.checks import CheckConfigError

    with pytest.raises(CheckConfigError) as error:
        CheckEngine.from_text(
            "checks:\n  - name: x\n    histogram: events\n    check: between_values\n"
            "    parameters: {value: entries, min: 1, max: 2}\n    minimum: {evnts: 5}\n",
            "checks.yaml",
        )
    text = str(error.value)
    assert text.startswith("checks.yaml:6: checks[0].minimum.evnts: unknown key")


def test_max_in_window_holds_a_one_slice_finding_for_the_window() -> None:
    from processing.analysis.checks.library import max_in_window

    times = np.arange(0.0, 400.0, 3.0)
    values = np.zeros_like(times)
    values[times == 150.0] = 12  # one slice shows it (a counter reset)

    def quality(upto: float) -> Quality:
        keep = times <= upto
        return max_in_window((times[keep], values[keep]), seconds=120.0).quality

    assert max_in_window((np.empty(0), np.empty(0))).quality is Quality.NULL
    assert quality(147.0) is Quality.GOOD
    assert all(quality(t) is Quality.BAD for t in times[(times >= 150) & (times < 270)])
    assert all(quality(t) is Quality.GOOD for t in times[times >= 270])
    outcome = max_in_window((times[times <= 200], values[times <= 200]), seconds=120.0)
    assert outcome.message.startswith("12 (above 0) 48 s before the newest point")


def test_a_counter_reset_is_trended_and_opens_one_alarm_that_closes(tmp_path) -> None:
    """Snapshots at uneven 2-9 s steps; the sender restarts at minute 2: one alarm, closed."""
    from overwatch.config import AlarmSettings, ProcessingSettings
    from overwatch.store.db import open_db, read
    from processing.analysis.alarms import AlarmManager
    from processing.analysis.live import load_engine
    from processing.analysis.trending import TrendStore, trend_dir
    from processing.pipeline import Pipeline
    from receivers.simulator import DetectorSimulator
    from tests.processing_helpers import T0, write_snapshot

    simulator = DetectorSimulator(
        ["HLT"], run=9, seed=3, start_time=T0, event_rate=200,
        faults=[{"kind": "counter_reset", "subsystem": "HLT", "at_minute": 2.0}],
    )  # fmt: skip
    db = open_db(f"file://{tmp_path / 'ow.fs'}")
    pipeline = Pipeline(
        tmp_path, db, ProcessingSettings(), checks=load_engine(),
        alarms=AlarmManager.from_settings(AlarmSettings()),
    )  # fmt: skip
    rng = np.random.default_rng(4)
    qualities = {}
    now = 0.0
    try:
        while now < 330:
            step = float(rng.integers(2, 10))
            simulator.advance(step)
            now += step
            write_snapshot(tmp_path, 9, "HLT", T0 + now, simulator.snapshot("HLT").values())
            pipeline.run_pass()

            def result(ow):
                checks = ow.runs[9].subsystems["HLT"].check_results
                return next((r["quality"] for r in checks if r["check"] == "counter-reset"), None)

            qualities[now] = read(db, result)
        alarms = read(db, lambda ow: [(a.check, a.path, a.cleared_at) for a in ow.alarms.values()])
    finally:
        db.close()
    times, resets = TrendStore(trend_dir(tmp_path, 9, "HLT")).series("events", "counter_resets")
    assert resets.sum() > 0 and np.count_nonzero(resets) == 1  # one slice holds the reset
    reset_at = float(times[resets > 0][0]) - T0
    assert 120 <= reset_at < 130
    assert {q for t, q in qualities.items() if reset_at <= t < reset_at + 120} == {"Bad"}
    assert {q for t, q in qualities.items() if t < reset_at or t >= reset_at + 120} == {"Good"}
    (alarm,) = alarms
    assert alarm[:2] == ("counter-reset", "events") and alarm[2] >= T0 + reset_at + 120
