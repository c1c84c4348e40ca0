"""The whole system in real time on a fault schedule: what tests and benchmarks read from it.

``run_realtime`` runs ``overwatch demo`` (supervisord starting a ZEO server, the
simulator, one receiver per subsystem polling with jitter, processing and the
web app, all real processes) on a given fault schedule for a given wall time,
then reads what it left: the simulated run's start (from the simulator's log),
every snapshot written (name time and file modification time), and every alarm
stored. Faults count their minutes from the run start, which is also wall time
because the demo simulates at real speed.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from overwatch import timestamps
from overwatch.store.db import open_db, read
from overwatch.store.layout import DataDir
from tests.processing_helpers import free_port

OVERWATCH = str(Path(sys.executable).parent / "overwatch")
RUN = 1
#: The shipped rate-drop checks: the last minute's rate below half of the ten minutes before.
RATE_WINDOW, RATE_RATIO = 60.0, 0.5
#: The shipped counter-reset check: Bad while a reset lies in the last two minutes.
RESET_WINDOW = 120.0
_STARTED = re.compile(r"run (\d+) started at unix ([0-9.]+)")


@dataclass
class Snapshot:
    timestamp: float  # the name's UTC time (whole seconds)
    written: float  # file modification time: when the receiver put it in place


@dataclass
class RealtimeRun:
    data_dir: Path
    run_start: float
    interval: float
    output: str
    snapshots: dict[str, list[Snapshot]] = field(default_factory=dict)
    alarms: list[dict] = field(default_factory=list)

    def at(self, minute: float) -> float:
        """Unix time of a minute of the run (as fault schedules give them)."""
        return self.run_start + 60.0 * minute

    def first_showing(self, subsystem: str, minute: float, *, instant: bool = False) -> Snapshot:
        """The snapshot ending the first slice that shows what began at ``minute``.

        A slice is the content between two consecutive snapshots. An instant (a
        counter reset) shows in the slice that holds it; a state (a hot cell, a
        dead region, a low rate) shows in the first slice lying wholly in it, as
        the one across its start may hold a fraction of a second of it. Names
        are the whole second of the content's time, so a snapshot named in the
        second before the start may already be after it: counted as after
        (the earliest choice, which makes latencies the longest).
        """
        begin = self.at(minute)
        snapshots = self.snapshots[subsystem]
        if instant:
            return next(s for s in snapshots if s.timestamp > begin - 1.0)
        pairs = zip(snapshots, snapshots[1:], strict=False)
        return next(b for a, b in pairs if a.timestamp > begin - 1.0)

    def cycle(self, subsystem: str) -> float:
        """Mean spacing of the subsystem's snapshots: the period of its processing."""
        times = [s.timestamp for s in self.snapshots[subsystem]]
        return (times[-1] - times[0]) / max(len(times) - 1, 1)

    def spacing(self, subsystem: str) -> tuple[float, float]:
        """Smallest and largest gap between consecutive snapshots (seconds)."""
        times = [s.timestamp for s in self.snapshots[subsystem]]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        return min(gaps), max(gaps)

    def db(self):
        """The demo's database, read directly now that its ZEO server has stopped."""
        return open_db(f"file://{self.data_dir / 'overwatch.fs'}")


def run_realtime(
    folder: Path, faults: list[dict], seconds: float, *, interval: float = 2.0
) -> RealtimeRun:
    """Run the demo on ``faults`` for ``seconds`` of wall time and read what it left."""
    schedule = folder / "faults.yaml"
    schedule.write_text(yaml.safe_dump({"faults": faults}))
    data_dir = folder / "demo"
    command = [OVERWATCH, "demo", "--duration", f"{seconds:g}", "--faults", str(schedule),
               "--data-dir", str(data_dir), "--port", str(free_port()), "--run", str(RUN),
               "--interval", f"{interval:g}"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
    finally:
        _stop_leftover(data_dir)  # the demo stops its supervisord, unless it was killed
    output = done.stdout + done.stderr
    if done.returncode != 0:
        logs = "\n".join(
            f"--- {log.name}\n{log.read_text()[-3000:]}"
            for log in sorted((data_dir / "logs").glob("*.log"))
        )
        raise AssertionError(f"demo exited {done.returncode}:\n{output}\n{logs}")
    return read_realtime(data_dir, interval, output)


def _stop_leftover(data_dir: Path) -> None:
    pid_file = data_dir / "supervisord.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return  # stopped already
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)


def read_realtime(data_dir: Path, interval: float, output: str = "") -> RealtimeRun:
    """What a demo run left in ``data_dir`` (its processes stopped)."""
    found = _STARTED.search((data_dir / "logs" / "simulator.log").read_text())
    if found is None or int(found.group(1)) != RUN:
        raise AssertionError("the simulator did not log the run start")
    result = RealtimeRun(data_dir, float(found.group(2)), interval, output)
    layout = DataDir(data_dir)
    for subsystem in ("EMC", "TPC", "HLT"):
        snapshots = []
        for path in layout.subsystem_dir(RUN, subsystem).glob("*.root"):
            ts = timestamps.parse_snapshot_filename(path.name).instant.timestamp()
            snapshots.append(Snapshot(ts, path.stat().st_mtime))
        result.snapshots[subsystem] = sorted(snapshots, key=lambda s: s.timestamp)
    db = result.db()
    try:
        result.alarms = read(db, _alarms)
    finally:
        db.close()
    return result


def _alarms(ow) -> list[dict]:
    return [
        {
            "id": alarm.id,
            "time": alarm.time,
            "run": alarm.run,
            "subsystem": alarm.subsystem,
            "check": alarm.check,
            "path": alarm.path,
            "trend": alarm.trend,
            "quality": alarm.quality,
            "message": alarm.message,
            "first_seen": alarm.first_seen,
            "last_seen": alarm.last_seen,
            "occurrences": alarm.occurrences,
            "cleared_at": getattr(alarm, "cleared_at", None),
        }
        for alarm in ow.alarms.values()
    ]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest rank: a value that was measured."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def shown_from(fault: dict) -> float:
    """Minute of the run from which a fault can show in its check's judgement.

    A rate drop by a factor f shows once more than (1 - ratio) / (1 - f) of the
    rate window lies in the drop; everything else from its first minute.
    """
    if fault["kind"] != "rate_drop":
        return fault["at_minute"]
    return fault["at_minute"] + RATE_WINDOW * (1 - RATE_RATIO) / (1 - fault["factor"]) / 60.0


def lasts_until(fault: dict) -> float:
    """Minute of the run until which a fault keeps its check Bad (at least)."""
    if fault["kind"] == "counter_reset":
        return fault["at_minute"] + RESET_WINDOW / 60.0
    return fault["until_minute"]


def alarm_key(alarm: dict) -> tuple[str, str, str, str]:
    return alarm["subsystem"], alarm["check"], alarm["path"], alarm["trend"]


def opening_latencies(result: RealtimeRun, faults: dict[tuple, dict]) -> dict[tuple, float]:
    """Per expected alarm: seconds from the first snapshot showing its fault to the alarm stored."""
    by_key = {alarm_key(a): a for a in result.alarms}
    return {
        key: by_key[key]["time"]
        - result.first_showing(
            key[0], shown_from(fault), instant=fault["kind"] == "counter_reset"
        ).written
        for key, fault in faults.items()
        if key in by_key
    }
