"""Soak: thirty simulated minutes of clean data under real timing raise nothing.

Snapshots come at uneven whole-second intervals (1 to 5 s: a mean of 3 s varied by
more than ±50 %, as receivers polling on their own cadence with jitter cut them), with
Poisson-fluctuating events, for every built-in subsystem, through the real pipeline
with the shipped checks and alarm manager. Zero alarms, and no histogram is ever Bad.
The simulator's clock runs faster than real time; the spacing is what matters.
"""

from __future__ import annotations

import numpy as np
import pytest

from overwatch import timestamps
from overwatch.config import ProcessingSettings
from overwatch.store.db import open_db, read
from overwatch.store.layout import atomic_write
from processing.analysis.alarms import AlarmManager
from processing.analysis.live import load_engine
from processing.pipeline import Pipeline
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0

pytestmark = pytest.mark.integration

RUN = 21
MINUTES = 30
SUBSYSTEMS = ("EMC", "TPC", "HLT")


@pytest.mark.timeout(900)
def test_thirty_jittered_minutes_of_clean_data_raise_no_alarm(tmp_path) -> None:
    data = tmp_path / "data"
    db = open_db(f"file://{tmp_path / 'ow.fs'}")
    notices: list = []
    pipeline = Pipeline(
        data, db, ProcessingSettings(), checks=load_engine(), alarms=AlarmManager(notify=notices.append)
    )  # fmt: skip
    simulator = DetectorSimulator(list(SUBSYSTEMS), run=RUN, seed=17, start_time=T0)
    rng = np.random.default_rng(17)
    steps: list[float] = []
    bad: list[tuple] = []
    judged = {name: 0 for name in SUBSYSTEMS}

    def latest(ow) -> dict:
        return {
            name: [(r["check"], r["histogram"], r["quality"]) for r in sub.check_results]
            for name, sub in ow.runs[RUN].subsystems.items()
        }

    while simulator.elapsed < MINUTES * 60:
        step = float(rng.integers(1, 6))  # whole seconds: snapshot names tell time to the second
        steps.append(step)
        simulator.advance(step)
        for name in SUBSYSTEMS:
            path = data / timestamps.snapshot_relpath(
                RUN, name, timestamps.from_unix(simulator.now)
            )
            atomic_write(path, simulator.payload(name), fsync=False)
        report = pipeline.run_pass()
        assert report.processed == len(SUBSYSTEMS) and not report.failed, report
        for name, results in read(db, latest).items():
            bad += [(simulator.elapsed, name, *r) for r in results if r[2] == "Bad"]
            judged[name] += sum(1 for r in results if r[2] == "Good")
    spread = np.array(steps)
    assert spread.min() <= 0.5 * spread.mean() and spread.max() >= 1.5 * spread.mean()
    assert bad == []
    assert read(db, lambda ow: len(ow.alarms)) == 0 and notices == []
    # The checks did decide (Good), not only "cannot tell", on every subsystem.
    assert all(count > 0 for count in judged.values()), judged
    db.close()
