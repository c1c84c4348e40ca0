"""The demo's fault schedule: the shipped file, --faults/--no-faults, the printed schedule."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from overwatch import demo
from receivers.simulator import DetectorSimulator, load_faults

BIN = Path(sys.executable).parent


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.register(parser.add_subparsers())
    return parser.parse_args(["demo", *argv])


def _bad_schedule(tmp_path: Path) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(
        "- {kind: hot_channel, subsystem: EMC, cell: [1, 2, 3], factor: 20, at_minute: 1}\n"
        "- {kind: rate_drop, subsystem: TOF, factor: 0.5, at_minute: 2, until_minute: 4}\n"
    )
    return path


def test_the_shipped_schedule_covers_the_demo_subsystems_in_ten_minutes():
    assert demo.DEFAULT_FAULTS.is_file()
    faults = load_faults(demo.DEFAULT_FAULTS)
    kinds = {(f.subsystem, f.kind) for f in faults}
    assert {("EMC", "hot_channel"), ("EMC", "dead_region"), ("TPC", "rate_drop"),
            ("HLT", "counter_reset")} <= kinds  # fmt: skip
    assert {f.subsystem for f in faults} <= set(demo.SUBSYSTEMS)
    assert all(0 < f.at_minute <= 10 for f in faults)
    for fault in faults:
        if fault.kind != "counter_reset":
            assert fault.until_minute is not None and fault.until_minute <= 10, fault
    dead = next(f for f in faults if f.kind == "dead_region")
    assert set(dead.params) == {"supermodule"}  # a whole supermodule


def test_the_shipped_schedule_happens_in_the_simulator():
    faults = load_faults(demo.DEFAULT_FAULTS)
    dead = next(f for f in faults if f.kind == "dead_region")
    path = f"EMCal/SM{int(dead.params['supermodule']):02d}/cellHits"
    simulator = DetectorSimulator(demo.SUBSYSTEMS, seed=1, start_time=0.0, faults=faults)
    simulator.advance(dead.at_minute * 60)
    before = simulator.snapshot("EMC")[path].values.copy()
    simulator.advance((dead.until_minute - dead.at_minute) * 60)
    during = simulator.snapshot("EMC")[path].values
    assert before.sum() > 0 and np.array_equal(before, during)
    simulator.advance(60)
    assert simulator.snapshot("EMC")[path].values.sum() > during.sum()


def test_demo_arguments_choose_the_schedule(tmp_path):
    assert _parse().faults == demo.DEFAULT_FAULTS and not _parse().no_faults
    assert _parse("--faults", "mine.yaml").faults == Path("mine.yaml")
    assert _parse("--no-faults").no_faults
    with pytest.raises(SystemExit):
        _parse("--faults", "mine.yaml", "--no-faults")


def _simulator_command(plan: demo.DemoPlan) -> str:
    lines = plan.render().splitlines()
    return next(line for line in lines if line.startswith("command=") and " simulate " in line)


def test_the_template_passes_the_schedule_to_the_simulator(tmp_path):
    plan = demo.DemoPlan(tmp_path, BIN, 1, 1, 2.0, 2, 3, 4, faults=tmp_path / "my faults.yaml")
    assert _simulator_command(plan).endswith(f"--faults '{tmp_path / 'my faults.yaml'}'")
    plan.faults = None
    assert "--faults" not in _simulator_command(plan)


def test_the_schedule_is_checked_by_the_simulator_and_told():
    lines = demo.fault_schedule(BIN, demo.DEFAULT_FAULTS)
    assert len(lines) == len(load_faults(demo.DEFAULT_FAULTS))
    assert lines[0].startswith("from minute 1.5 to minute 5: EMC hot_channel")
    assert any(line.startswith("at minute 8: HLT counter_reset") for line in lines)


def test_a_fault_for_a_subsystem_not_simulated_stops_the_demo_at_start(tmp_path, caplog):
    with pytest.raises(demo.DemoFaultError, match=r"TOF, which is not simulated.*EMC, TPC, HLT"):
        demo.fault_schedule(BIN, _bad_schedule(tmp_path))
    said: list[str] = []
    with caplog.at_level(logging.ERROR, logger="overwatch.demo"):
        code = demo.run_demo(
            tmp_path / "data", faults=_bad_schedule(tmp_path), say=said.append, web_port=1
        )
    assert code == 2 and said == []
    assert "faults[1] (rate_drop from minute 2 to minute 4) is for TOF" in caplog.text
    assert not (tmp_path / "data").exists()  # nothing started, nothing deleted


def test_the_demo_prints_the_schedule_before_starting(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "_port_open", lambda port: True)  # stop right after the schedule
    said: list[str] = []
    assert demo.run_demo(tmp_path / "data", say=said.append) == 2
    assert said[0] == f"simulated faults ({demo.DEFAULT_FAULTS}), in minutes of the run:"
    assert "  from minute 3 to minute 7: EMC dead_region (supermodule 7)" in said
    assert "  from minute 4 to minute 6: TPC rate_drop (factor 0.1)" in said
    said.clear()
    assert demo.run_demo(tmp_path / "data", faults=None, say=said.append) == 2
    assert said == ["simulated faults: none (--no-faults)"]
