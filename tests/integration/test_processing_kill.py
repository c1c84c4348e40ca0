"""``kill -9`` of processing at random moments, then a restart: nothing missing or doubled.

Snapshots keep arriving between the kills (including a counter reset and a file
that arrives late with an older time). After the last restart, ``--once``
finishes the work; then every snapshot on disk has exactly one record and one
latest slice, the slices chain from one snapshot to the next, and every cached
array equals both an uninterrupted run and an independent uproot computation.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from overwatch.store.db import open_db, read
from processing.ingest.cache import ArrayCache
from processing.pipeline import Pipeline
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0, free_port, snapshot_path, uproot_sums, write_snapshot

pytestmark = pytest.mark.integration

RUN, SYS = 77, "EMC"
RESET_MINUTE = 14.5  # the sender restarts between the snapshots of minutes 14 and 15


def environment(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path),
        OVERWATCH_PROCESSING__INTERVAL="0.3",
        OVERWATCH_RECEIVER__NOTIFY_ADDRESS=f"tcp://127.0.0.1:{free_port()}",
    )
    return env


def process(data, uri, tmp_path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "overwatch.cli",
        "process",
        "--data-dir",
        str(data),
        "--db",
        uri,
    ]
    return subprocess.Popen(
        [*command, *extra], cwd=tmp_path, env=environment(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_kill_nine_at_random_points_loses_and_doubles_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    uri = f"file://{tmp_path / 'meta.fs'}"
    simulator = DetectorSimulator(
        [SYS], run=RUN, seed=9, start_time=T0, event_rate=300,
        faults=[{"kind": "counter_reset", "subsystem": SYS, "at_minute": RESET_MINUTE}],
    )  # fmt: skip
    snapshots: dict[float, dict] = {}
    late: tuple[float, dict] | None = None

    def add(count: int) -> None:
        nonlocal late
        for _ in range(count):
            simulator.advance(60)
            ts = T0 + simulator.elapsed
            histograms = simulator.snapshot(SYS)
            if late is None and simulator.elapsed == 600:  # held back: arrives late
                late = (ts, histograms)
                continue
            snapshots[ts] = histograms
            write_snapshot(data, RUN, SYS, ts, histograms.values())

    rng = random.Random(1234)
    add(6)
    for iteration in range(7):
        child = process(data, uri, tmp_path)
        time.sleep(
            rng.uniform(0.8, 3.0)
        )  # start-up takes about a second: kill before, during, after
        add(4)
        if iteration == 4:
            snapshots[late[0]] = late[1]  # the held-back snapshot, older than processed ones
            write_snapshot(data, RUN, SYS, late[0], late[1].values())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    done = process(data, uri, tmp_path, "--once")
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr.decode()[-2000:]

    times = sorted(snapshots)
    db = open_db(uri)
    try:
        view = read(db, lambda ow: _copy(ow.runs[RUN].subsystems[SYS]))
    finally:
        db.close()
    records, slices, cache_files, bad, segments = view
    assert bad == {}
    assert sorted(records) == times  # exactly one record per snapshot (BTree keys are unique)
    assert sorted(slices) == times
    assert [slices[t] for t in times] == [0.0, *times[:-1]]  # each slice starts at the previous
    assert segments == 2

    # Every cached array equals an uninterrupted run, bit for bit.
    reference = tmp_path / "reference"
    shutil.copytree(data / f"Run{RUN}", reference / f"Run{RUN}")
    reference_db = open_db("memory://")
    assert Pipeline(reference, reference_db).run_until_idle().processed == len(times)
    cache, reference_cache = ArrayCache(data), ArrayCache(reference)
    for t in times:
        name = cache_files[t].rsplit("/", 1)[1]
        mine, theirs = cache.load(RUN, SYS, name), reference_cache.load(RUN, SYS, name)
        np.testing.assert_array_equal(mine.eff, theirs.eff)
        assert (mine.off is None) == (theirs.off is None)
    # ... and an independent computation: raw content, plus what was there before the reset.
    before_reset = max(t for t in times if t - T0 < RESET_MINUTE * 60)
    paths = ["EMCTrigger/events", "EMCal/SM00/cellHits"]
    for t in times[::3] + [times[-1]]:
        state = cache.load(RUN, SYS, cache_files[t].rsplit("/", 1)[1])
        for path in paths:
            expected = uproot_sums(snapshot_path(data, RUN, SYS, t), path)
            if t > before_reset:
                earlier = uproot_sums(snapshot_path(data, RUN, SYS, before_reset), path)
                expected = {k: expected[k] + earlier[k] for k in expected}
            got = state.layout.histogram(state.eff, path)
            np.testing.assert_array_equal(got.values, expected["values"])
            assert got.entries == expected["entries"]


def _copy(sub):
    return (
        {t: r.n_histograms for t, r in sub.snapshots.items()},
        {t: s.start for t, s in sub.slices.items()},
        {t: r.cache_file for t, r in sub.snapshots.items()},
        dict(sub.bad_snapshots.items()),
        sub.segments,
    )
