"""Processed runs with plugin results, trends, qualities and alarms, for the web tests.

The data path is real: the detector simulator (with a hot cell and a dead
region in the EMC) writes snapshot files, and the processing pipeline, with
the checks of ``config/checks.yaml`` and an ``AlarmManager`` as the processing
service runs it, turns them into the array cache, ZODB records, trend stores,
the latest-slice fields of ``Subsystem`` (quality, group qualities, check
results, annotations, plugin errors) and alarms.
"""

from __future__ import annotations

import time
from pathlib import Path

import ZODB

from processing.analysis.alarms import AlarmManager
from processing.analysis.checks.engine import CheckEngine
from tests.unit.test_web_support import write_snapshot

REPO = Path(__file__).resolve().parents[2]
CHECKS = REPO / "config" / "checks.yaml"
#: A hot cell in supermodule 3 and a dead corner in supermodule 5, from the first minute.
FAULTS = (
    {"kind": "hot_channel", "subsystem": "EMC", "cell": [3, 10, 5], "factor": 60},
    {"kind": "dead_region", "subsystem": "EMC", "supermodule": 5, "eta": [0, 8], "phi": [0, 8]},
)
HOT_MAP = "EMCal/SM03/cellHits"
DEAD_MAP = "EMCal/SM05/cellHits"


def simulate(
    data_dir: Path,
    run: int = 1,
    subsystems: tuple[str, ...] = ("EMC", "TPC", "HLT"),
    snapshots: int = 4,
    step: float = 60.0,
    start: float | None = None,
    faults: tuple[dict, ...] = FAULTS,
) -> None:
    """Snapshot files of one run from the detector simulator (not processed yet)."""
    from receivers.simulator import DetectorSimulator

    start = float(int(time.time()) - snapshots * step) if start is None else start
    simulator = DetectorSimulator(
        subsystems=list(subsystems), start_time=start, seed=3, run=run, faults=list(faults)
    )
    for _ in range(snapshots):
        simulator.advance(step)
        for name in subsystems:
            write_snapshot(data_dir, run, name, simulator.now, simulator.payload(name))


def process_with_checks(data_dir: Path, db: ZODB.DB) -> None:
    """One processing pass with the checks of config/checks.yaml and alarms, as the service runs."""
    from processing.pipeline import Pipeline

    pipeline = Pipeline(data_dir, db, checks=CheckEngine.from_file(CHECKS), alarms=AlarmManager())
    report = pipeline.run_until_idle()
    assert not report.failed, report.failed


def build_evaluated_run(
    data_dir: Path,
    db: ZODB.DB,
    run: int = 1,
    subsystems: tuple[str, ...] = ("EMC", "TPC", "HLT"),
    snapshots: int = 4,
    step: float = 60.0,
    start: float | None = None,
    faults: tuple[dict, ...] = FAULTS,
) -> None:
    """A processed run with plugin results, trends, qualities and alarms (see the module doc)."""
    simulate(data_dir, run, subsystems, snapshots, step, start, faults)
    process_with_checks(data_dir, db)
