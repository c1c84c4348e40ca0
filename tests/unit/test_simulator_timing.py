"""Continuous accumulation: snapshots cut at any time hold the events of their real length."""

from __future__ import annotations

import numpy as np
import pytest

from receivers.simulator import DetectorSimulator, FaultError

START = 1_700_000_000.0
RATE = 1000.0


def sim(subsystems=("TPC",), **kwargs) -> DetectorSimulator:
    return DetectorSimulator(subsystems, start_time=START, event_rate=RATE, **kwargs)


def _slices(simulator: DetectorSimulator, steps, subsystem: str = "TPC") -> list[int]:
    """Events of each slice cut after each step."""
    out, last = [], simulator.events(subsystem)
    for step in steps:
        simulator.advance(step)
        now = simulator.events(subsystem)
        out.append(now - last)
        last = now
    return out


def test_uneven_steps_give_the_rate_within_poisson_error():
    rng = np.random.default_rng(12)
    steps = rng.uniform(0.3, 4.7, size=200)
    events = np.array(_slices(sim(seed=3), steps))
    total, seconds = events.sum(), steps.sum()
    assert abs(total - RATE * seconds) < 4 * np.sqrt(RATE * seconds)
    # Each slice: Poisson with mean RATE * its length, so the pulls are standard normal.
    pulls = (events - RATE * steps) / np.sqrt(RATE * steps)
    assert abs(pulls.mean()) < 4 / np.sqrt(len(steps))
    assert 0.8 < pulls.std() < 1.2


def test_no_tick_quantisation():
    """A 2.5 s slice holds 2.5 s of events, not 2 or 3 whole seconds."""
    simulator = sim(seed=5)
    events = np.array(_slices(simulator, [2.5] * 40))
    assert np.all(np.abs(events - 2500) < 5 * np.sqrt(2500))
    assert abs(events.mean() - 2500) < 4 * np.sqrt(2500 / 40)
    # Alternating 1.0 / 2.0 / 0.25 s slices keep their proportions.
    short = np.array(_slices(simulator, [1.0, 2.0, 0.25] * 30)).reshape(30, 3).mean(axis=0)
    np.testing.assert_allclose(short, [1000, 2000, 250], rtol=0.05)


def test_content_is_filled_when_asked_and_timestamped_with_its_time():
    simulator = sim(["TPC", "HLT"], seed=1)
    simulator.advance(1.25)
    assert simulator.content_time("TPC") == pytest.approx(START + 1.25)
    before = simulator.version("HLT")
    simulator.advance(0.001)
    assert simulator.version("HLT") != before  # even a millisecond is filled
    assert simulator.version("HLT") == simulator.version("HLT")  # no time passed: unchanged


def test_a_rate_drop_starts_and_ends_at_its_minute_whatever_the_steps():
    faults = [{"at_minute": 1, "until_minute": 1.5, "kind": "rate_drop", "subsystem": "TPC",
               "factor": 0.0}]  # fmt: skip
    simulator = sim(seed=2, faults=faults)
    simulator.advance(55.5)
    before = simulator.events()
    simulator.advance(7)  # 55.5 s .. 62.5 s: the drop starts at 60 s, inside the step
    first = simulator.events() - before
    assert abs(first - 4500) < 5 * np.sqrt(4500)
    simulator.advance(25)  # 62.5 .. 87.5 s: all dropped
    assert simulator.events() - before == first
    simulator.advance(5)  # 87.5 .. 92.5 s: back at 90 s
    assert abs(simulator.events() - before - first - 2500) < 5 * np.sqrt(2500)


def test_counter_reset_inside_a_step_keeps_only_what_came_after():
    faults = [{"at_minute": 0.5, "kind": "counter_reset", "subsystem": "HLT"}]
    simulator = sim(["HLT"], seed=4, faults=faults)
    simulator.advance(27.3)
    assert simulator.events() > 20_000
    simulator.advance(10)  # resets at 30 s: 7.3 s of events remain
    assert abs(simulator.events() - 7300) < 5 * np.sqrt(7300)
    simulator.advance(60)  # once only
    assert abs(simulator.events() - 67_300) < 5 * np.sqrt(67_300)


def test_hot_channel_boundary_inside_one_uneven_fill():
    cell = [3, 10, 5]
    faults = [{"at_minute": 0.5, "until_minute": 1, "kind": "hot_channel", "subsystem": "EMC",
               "cell": cell, "factor": 100}]  # fmt: skip
    simulator = sim(["EMC"], seed=6, faults=faults)
    simulator.advance(200)  # one fill over the whole run: 30 s of it hot
    plain = sim(["EMC"], seed=6)
    plain.advance(200)
    hits = simulator.snapshot()["EMCal/SM03/cellHits"].values[cell[1] + 1, cell[2] + 1]
    normal = plain.snapshot()["EMCal/SM03/cellHits"].values[cell[1] + 1, cell[2] + 1]
    # 170 s at the normal rate plus 30 s at 100 times: ~ (170 + 3000) / 200 = 15.85 times.
    assert 10 * normal < hits < 22 * normal


def test_run_end_inside_a_step_fills_up_to_the_end_only():
    simulator = sim(seed=1, run=4, run_seconds=10, gap_seconds=5)
    simulator.advance(12.5)
    assert not simulator.running
    assert abs(simulator.events() - 10_000) < 5 * np.sqrt(10_000)
    assert simulator.content_time() == START + 10
    simulator.advance(10)  # the next run started at 15 s
    assert simulator.run == 5 and abs(simulator.events() - 7500) < 5 * np.sqrt(7500)


def test_a_fault_for_a_subsystem_not_simulated_is_refused():
    faults = [{"at_minute": 2, "kind": "rate_drop", "subsystem": "TOF", "factor": 0.1}]
    with pytest.raises(FaultError, match=r"rate_drop.*TOF.*not simulated.*EMC, TPC"):
        sim(["EMC", "TPC"], faults=faults)


def test_server_fills_up_to_the_request_and_stamps_the_content_time(monkeypatch):
    from receivers import simulator_server, wire

    clock = [1000.0]
    monkeypatch.setattr(simulator_server.time, "monotonic", lambda: clock[0])
    simulator = sim(["TPC"], seed=8)
    server = simulator_server.SimulatorServer(simulator, "tcp://127.0.0.1:*", speed=10)
    try:
        stamps, events = [], []
        for wall in (0.25, 0.3, 0.5):  # requests at uneven wall times: 2.5, 3, 5 simulated s
            clock[0] += wall
            reply = server._answer(b'{"subsystem": "TPC"}')
            stamps.append(wire.parse_header(reply[0]).timestamp)
            events.append(simulator.events())
        assert stamps == pytest.approx([START + 2.5, START + 5.5, START + 10.5])
        assert events[0] == pytest.approx(2500, abs=5 * 50)
        assert events[2] - events[1] == pytest.approx(5000, abs=5 * 71)
    finally:
        server.close()
