"""Clean data under real timing, for the soak test and ``make bench``'s false-alarm figure.

A detector simulator read at uneven whole-second intervals (1 to 5 s: a mean of 3 s
varied by more than ±50 %, as receivers polling on their own cadence with jitter cut
snapshots), every snapshot processed at once by the real pipeline with the shipped
checks and alarm manager. The simulator's clock runs faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from overwatch import timestamps
from overwatch.config import ProcessingSettings
from overwatch.store.db import open_db, read
from overwatch.store.layout import atomic_write
from processing.analysis.alarms import AlarmManager
from processing.analysis.live import load_engine
from processing.pipeline import Pipeline
from receivers.simulator import DetectorSimulator

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
SUBSYSTEMS = ("EMC", "TPC", "HLT")


@dataclass
class JitteredRun:
    """What a jittered run produced: spacing, Bad results, Good decisions, alarms."""

    steps: list[float] = field(default_factory=list)
    bad: list[tuple] = field(default_factory=list)  # (elapsed s, subsystem, check, path, quality)
    good: dict[str, int] = field(default_factory=dict)  # Good results per subsystem
    alarms: int = 0
    notices: int = 0


def run_jittered(root: Path, minutes: float, *, seed: int = 17, run: int = 21) -> JitteredRun:
    """Simulate ``minutes`` of clean data of every built-in subsystem and process it."""
    data = root / "data"
    db = open_db(f"file://{root / 'ow.fs'}")
    notices: list = []
    pipeline = Pipeline(
        data, db, ProcessingSettings(), checks=load_engine(), alarms=AlarmManager(notify=notices.append)
    )  # fmt: skip
    simulator = DetectorSimulator(list(SUBSYSTEMS), run=run, seed=seed, start_time=T0)
    rng = np.random.default_rng(seed)
    found = JitteredRun(good=dict.fromkeys(SUBSYSTEMS, 0))

    def latest(ow) -> dict:
        return {
            name: [(r["check"], r["histogram"], r["quality"]) for r in sub.check_results]
            for name, sub in ow.runs[run].subsystems.items()
        }

    try:
        while simulator.elapsed < minutes * 60:
            step = float(rng.integers(1, 6))  # whole seconds: snapshot names tell the second
            found.steps.append(step)
            simulator.advance(step)
            for name in SUBSYSTEMS:
                relative = timestamps.snapshot_relpath(
                    run, name, timestamps.from_unix(simulator.now)
                )
                atomic_write(data / relative, simulator.payload(name), fsync=False)
            report = pipeline.run_pass()
            if report.processed != len(SUBSYSTEMS) or report.failed:
                raise RuntimeError(f"processing failed: {report}")
            for name, results in read(db, latest).items():
                found.bad += [(simulator.elapsed, name, *r) for r in results if r[2] == "Bad"]
                found.good[name] += sum(1 for r in results if r[2] == "Good")
        found.alarms = read(db, lambda ow: len(ow.alarms))
        found.notices = len(notices)
    finally:
        db.close()
    return found
