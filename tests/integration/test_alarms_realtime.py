"""Alarms in real time: every fault kind opens exactly one alarm, held while it lasts.

The whole demo runs for five minutes of wall time (simulator,
receivers polling every 2 s with 50 % jitter, processing woken by their
notices, ZEO, web; real processes under supervisord) on a fault schedule with
one fault of each kind. Nothing here steps a clock: slices are as long as the
receivers' jittered polls make them, and event counts are Poisson.

Per fault, with the default checks and alarm rules (open after K=2 Bad results,
close after M=3 non-Bad): exactly one alarm, opened within 2 processing cycles
(+1 s) of the first snapshot that shows the fault (the rate drop: of the first
moment its one-minute window can show it), open until the fault ends, closed
within M cycles after (plus the window's own lag); no other alarm anywhere; and
the dead supermodule's group Bad on every slice from its first Bad to the
fault's end.
"""

from __future__ import annotations

import pytest

from overwatch.config import AlarmSettings, ProcessingSettings
from overwatch.quality import Quality
from processing.analysis.live import load_engine
from processing.slices.service import SliceService
from processing.slices.spec import SliceSpec
from tests.realtime import (
    RATE_WINDOW,
    RUN,
    alarm_key,
    lasts_until,
    opening_latencies,
    run_realtime,
)

SECONDS = 300.0
pytestmark = [pytest.mark.integration, pytest.mark.timeout(SECONDS + 400)]
FAULTS = {  # (subsystem, check, path, trend): fault
    ("EMC", "emc-hot-cells", "EMCal/SM03/cellHits", "hot_cells"): {
        "kind": "hot_channel", "subsystem": "EMC", "cell": [3, 10, 5], "factor": 50,
        "at_minute": 0.75, "until_minute": 2.25},
    ("EMC", "emc-dead-cells", "EMCal/SM07/cellHits", "dead_cells"): {
        "kind": "dead_region", "subsystem": "EMC", "supermodule": 7,
        "at_minute": 1.25, "until_minute": 3.25},
    ("TPC", "tpc-event-rate-drop", "events", "event_rate"): {
        "kind": "rate_drop", "subsystem": "TPC", "factor": 0.1,
        "at_minute": 1.75, "until_minute": 3.25},
    ("HLT", "counter-reset", "events", "counter_resets"): {
        "kind": "counter_reset", "subsystem": "HLT", "at_minute": 2.25},
}  # fmt: skip


def _lag(fault: dict) -> float:
    """Seconds a check may stay Bad after the fault ended, by its own window."""
    return RATE_WINDOW if fault["kind"] == "rate_drop" else 0.0


@pytest.fixture(scope="module")
def realtime(tmp_path_factory) -> object:
    return run_realtime(tmp_path_factory.mktemp("realtime"), list(FAULTS.values()), SECONDS)


def test_receivers_cut_uneven_slices(realtime) -> None:
    for subsystem in ("EMC", "TPC", "HLT"):
        shortest, longest = realtime.spacing(subsystem)
        cycle = realtime.cycle(subsystem)
        assert shortest <= 0.5 * cycle + 0.5 and longest >= 1.5 * cycle - 0.5, (
            subsystem, shortest, longest, cycle)  # fmt: skip


def test_each_fault_opens_exactly_one_alarm_and_nothing_else(realtime) -> None:
    keys = [alarm_key(a) for a in realtime.alarms]
    assert sorted(keys) == sorted(FAULTS), realtime.alarms
    assert all(a["run"] == RUN and a["quality"] == "Bad" for a in realtime.alarms)


def test_alarms_open_within_two_cycles_of_the_first_slice_that_shows_the_fault(realtime) -> None:
    latencies = opening_latencies(realtime, FAULTS)
    by_key = {alarm_key(a): a for a in realtime.alarms}
    for key, fault in FAULTS.items():
        allowed = 2 * realtime.cycle(key[0]) + 1.0
        assert 0 < latencies[key] <= allowed, (key, latencies[key], allowed)
        assert by_key[key]["first_seen"] >= realtime.at(fault["at_minute"]) - 1.0, by_key[key]


def test_alarms_stay_open_while_the_fault_lasts_and_close_within_m_cycles(realtime) -> None:
    close_after = AlarmSettings().close_after
    by_key = {alarm_key(a): a for a in realtime.alarms}
    for key, fault in FAULTS.items():
        alarm, cycle = by_key[key], realtime.cycle(key[0])
        ended = realtime.at(lasts_until(fault))
        assert alarm["cleared_at"], (key, "still open at the end", alarm)
        assert alarm["cleared_at"] >= ended - 1.0, (key, alarm["cleared_at"] - ended)
        assert alarm["last_seen"] >= ended - cycle - 1.0 - 3.0, (key, alarm["last_seen"] - ended)
        allowed = _lag(fault) + (close_after + 1) * cycle + 2.0
        assert alarm["cleared_at"] - ended <= allowed, (key, alarm["cleared_at"] - ended, allowed)
        assert alarm["occurrences"] >= 2


def test_the_dead_supermodule_is_bad_on_every_slice_while_it_lasts(realtime) -> None:
    fault = FAULTS[("EMC", "emc-dead-cells", "EMCal/SM07/cellHits", "dead_cells")]
    begin, end = realtime.at(fault["at_minute"]), realtime.at(fault["until_minute"])
    db = realtime.db()
    try:
        service = SliceService(
            realtime.data_dir, db, settings=ProcessingSettings(), engine=load_engine()
        )
        times = service.reader.snapshot_times(RUN, "EMC")
        qualities = []
        for start, stop in zip(times, times[1:], strict=False):
            if start < begin or stop > end - 1.0:
                continue  # only slices wholly inside the fault (names are whole seconds)
            view = service.compute(SliceSpec.create(RUN, "EMC", start, stop, {}))
            groups = view.analysis.group_qualities()
            (sm07,) = [g for g in groups if "SM07" in g] or [None]
            assert sm07 is not None, groups
            qualities.append((stop - begin, groups[sm07]))
    finally:
        db.close()
    first_bad = next(i for i, (_, q) in enumerate(qualities) if q == Quality.BAD.value)
    assert qualities[first_bad][0] <= 2 * realtime.cycle("EMC") + 1.0, qualities[: first_bad + 1]
    after = [q for _, q in qualities[first_bad:]]
    assert after == [Quality.BAD.value] * len(after), qualities
