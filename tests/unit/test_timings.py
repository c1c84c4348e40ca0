"""Stage times of the pipeline (processing.timings): every second of a pass is in one stage."""

from __future__ import annotations

import time

import numpy as np

from overwatch.config import ProcessingSettings
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db
from processing.pipeline import Pipeline
from processing.timings import STAGES, StageTimes
from tests.processing_helpers import T0, write_snapshot


def _histograms(k: int) -> list[Histogram]:
    made = []
    for i in range(20):
        h = Histogram.empty(f"dir/h{i}", [Axis.regular(50, 0, 1)], "TH1D")
        h.fill(np.random.default_rng(i + 100 * k).uniform(0, 1, 100 * (k + 1)))
        made.append(h)
    return made


def test_stage_times_add_up_to_the_passes(tmp_path) -> None:
    db = open_db(f"file://{tmp_path / 'db.fs'}")
    try:
        pipeline = Pipeline(tmp_path / "data", db, ProcessingSettings())
        elapsed = 0.0
        for k in range(4):
            write_snapshot(tmp_path / "data", 1, "TPC", T0 + 60 * k, _histograms(k))
            started = time.perf_counter()
            assert pipeline.run_pass().processed == 1
            elapsed += time.perf_counter() - started
    finally:
        db.close()
    times = pipeline.times
    assert times.snapshots == 3  # the first one apart
    assert set(times.seconds) == set(STAGES)
    assert set(times.first) == set(STAGES) - {"other"}
    assert all(seconds > 0 for seconds in times.seconds.values()), times.seconds
    assert all(seconds > 0 for seconds in times.first.values()), times.first
    # Nothing is counted twice, and the stages hold most of each pass (the scan and the
    # pass's own bookkeeping lie outside them; on a loaded machine that part grows).
    total = sum(times.seconds.values()) + sum(times.first.values())
    assert 0.6 * elapsed < total <= elapsed, (total, elapsed)
    per = times.per_snapshot_ms()
    assert per["read"] == 1000 * times.seconds["read"] / 3


def test_a_bad_snapshot_counts_as_other(tmp_path) -> None:
    db = open_db(f"file://{tmp_path / 'db.fs'}")
    try:
        pipeline = Pipeline(tmp_path / "data", db, ProcessingSettings())
        for k in range(2):
            write_snapshot(tmp_path / "data", 1, "TPC", T0 + 60 * k, _histograms(k))
            assert pipeline.run_pass().processed == 1
        before = dict(pipeline.times.seconds)
        bad = write_snapshot(tmp_path / "data", 1, "TPC", T0 + 120, _histograms(2))
        bad.write_bytes(b"root" + bytes(300))  # damaged: recorded as bad, not processed
        assert pipeline.run_pass().bad == 1
    finally:
        db.close()
    after = pipeline.times.seconds
    assert pipeline.times.snapshots == 1
    assert {k: v for k, v in after.items() if k != "other"} == {
        k: v for k, v in before.items() if k != "other"
    }
    assert after["other"] > before["other"]


def test_describe_names_every_stage_and_the_total() -> None:
    times = StageTimes()
    times.add("read", 0.3)
    times.add("commit", 0.1)
    times.done()  # the first: apart
    times.add("read", 0.2)
    times.done()
    times.add("read", 0.4)
    times.add("commit", 0.1)
    times.done()
    line = times.describe()
    assert line.startswith("stage times per snapshot (2 after the first): read=300.0ms resets=0.0")
    assert "commit=50.0ms" in line and "total=350.0ms; the first: read=300.0ms" in line
