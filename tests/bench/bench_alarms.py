"""Alarms a control room can trust: false alarms on a clean, jittered hour.

- ``false_alarms_per_hour``: alarms raised by an hour of clean simulated data of
  EMC, TPC and HLT read at uneven 1-5 s intervals (``tests.jittered``), processed
  with the shipped checks and the default alarm rules. Target 0.
- ``bad_results_per_hour``: Bad check results over the same hour (target 0).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.jittered import run_jittered


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        found = run_jittered(Path(folder), minutes=60, seed=29)
    return {
        "false_alarms_per_hour": float(found.alarms),
        "bad_results_per_hour": float(len(found.bad)),
        "jittered_snapshots_per_subsystem": float(len(found.steps)),
    }
