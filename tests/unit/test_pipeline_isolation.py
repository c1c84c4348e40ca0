"""A chain that keeps failing is isolated: retried with backoff, shown on the status page,
while the other chains go on; a run folder beyond the run range is reported, not read.

The poisoned chain is real: its cache folder's parent is a plain file (a disk
fault confined to one chain), so every try to store its arrays fails with
``NotADirectoryError`` until the file is removed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from overwatch.names import MAX_RUN
from overwatch.store.db import read
from processing.pipeline import Pipeline
from tests.processing_helpers import T0, wait_for, write_snapshot
from tests.unit.test_web_support import add_user, login, make_app
from webapp.status import DEAD

GOOD, POISONED = (5, "TPC"), (7, "EMC")
RETRY, RETRY_MAX = 0.4, 1.0


def _hist(k: int) -> Histogram:
    h = Histogram.empty("events", [Axis.regular(1, 0, 1)], "TH1D")
    h.values = np.asfortranarray(np.array([0.0, 10.0 * k, 0.0]))
    h.entries = 10.0 * k
    h.stats = h.compute_stats()
    return h


def _snapshots(db, run: int, subsystem: str) -> list[float]:
    def work(ow):
        run_record = ow.runs.get(run)
        if run_record is None or subsystem not in run_record.subsystems:
            return []
        return list(run_record.subsystems[subsystem].snapshots)

    return read(db, work)


@pytest.fixture
def site(tmp_path: Path):
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    write_snapshot(data_dir, *GOOD, T0, [_hist(1)])
    (data_dir / "cache").mkdir(parents=True, exist_ok=True)
    (data_dir / "cache" / f"Run{POISONED[0]}").write_text("not a folder")  # the poison
    # Stored as an old receiver did (today's names refuse to write it).
    poisoned = write_snapshot(data_dir, *POISONED, T0, [_hist(1)])
    beyond = data_dir / f"Run{MAX_RUN + 1}" / "EMC"
    beyond.mkdir(parents=True)
    (beyond / poisoned.name).write_bytes(poisoned.read_bytes())
    client = app.test_client()
    login(client, "alice")
    pipeline = Pipeline(
        data_dir, db, analysis=False, retry_seconds=RETRY, retry_max_seconds=RETRY_MAX
    )
    yield pipeline, db, client, data_dir
    db.close()


def _until_due(pipeline: Pipeline) -> None:
    due = pipeline.failing[POISONED].next_retry
    wait_for(lambda: time.time() >= due, timeout=5, what="the next retry")


def test_a_failing_chain_is_retried_with_backoff_while_the_others_go_on(site) -> None:
    pipeline, db, client, data_dir = site
    report = pipeline.run_pass()
    assert report.processed == 1
    assert [f.split(":")[0] for f in report.failed] == ["Run7/EMC"]
    first = pipeline.failing[POISONED]
    assert first.failures == 1 and "NotADirectoryError" in first.error
    assert first.next_retry - time.time() == pytest.approx(RETRY, abs=0.2)

    # Before its retry is due the chain is left alone; the good one keeps being processed.
    write_snapshot(data_dir, *GOOD, T0 + 60, [_hist(2)])
    report = pipeline.run_pass()
    assert (report.processed, report.failed) == (1, [])
    assert pipeline.failing[POISONED].failures == 1
    assert _snapshots(db, *GOOD) == [T0, T0 + 60]

    # Each retry that fails doubles the wait, up to the bound.
    waits = []
    for _ in range(3):
        _until_due(pipeline)
        write_snapshot(data_dir, *GOOD, T0 + 60 * (len(waits) + 2), [_hist(len(waits) + 3)])
        report = pipeline.run_pass()
        assert report.processed == 1 and len(report.failed) == 1
        waits.append(pipeline.failing[POISONED].next_retry - time.time())
    assert [round(w, 1) for w in waits] == pytest.approx([2 * RETRY, RETRY_MAX, RETRY_MAX], abs=0.2)
    assert pipeline.failing[POISONED].failures == 4
    assert len(_snapshots(db, *GOOD)) == 5 and _snapshots(db, *POISONED) == []

    # The status page lists it with its error and next retry.
    status = client.get("/api/status").get_json()["processing"]
    (row,) = status["failing_chains"]
    assert row["chain"] == "Run7/EMC" and row["failures"] == 4
    assert "NotADirectoryError" in row["error"]
    assert row["next_retry"] == pytest.approx(pipeline.failing[POISONED].next_retry)
    assert status["status"] == DEAD
    page = client.get("/status").get_data(as_text=True)
    assert "Failing chains" in page and 'data-chain="Run7/EMC"' in page
    assert "failed 4 time(s) in a row" in page

    # Repaired: the next retry processes it and it leaves the list.
    (data_dir / "cache" / "Run7").unlink()
    _until_due(pipeline)
    report = pipeline.run_pass()
    assert (report.processed, report.failed) == (1, [])
    assert pipeline.failing == {} and _snapshots(db, *POISONED) == [T0]
    assert client.get("/api/status").get_json()["processing"]["failing_chains"] == []


def test_a_run_folder_beyond_the_run_range_is_reported_not_processed(site) -> None:
    pipeline, db, client, _data_dir = site
    report = pipeline.run_pass()
    assert report.processed == 1  # the good chain; the out-of-range run is never read
    name = f"Run{MAX_RUN + 1}"
    assert list(pipeline.bad_run_dirs) == [name]
    assert f"expected an integer from 1 to {MAX_RUN}" in pipeline.bad_run_dirs[name]
    status = client.get("/api/status").get_json()["processing"]
    assert [d["name"] for d in status["bad_run_dirs"]] == [name]
    page = client.get("/status").get_data(as_text=True)
    assert "Bad run directories" in page and f'data-run-dir="{name}"' in page


def test_process_once_goes_on_past_a_failing_chain(site) -> None:
    pipeline, db, _client, data_dir = site
    for k in range(1, 4):
        write_snapshot(data_dir, 6, "HLT", T0 + 60 * k, [_hist(k)])
    report = pipeline.run_until_idle()
    assert report.processed == 4  # Run5/TPC and the three of Run6/HLT
    assert [f.split(":")[0] for f in report.failed] == ["Run7/EMC"]  # tried once: backoff
    assert len(_snapshots(db, 6, "HLT")) == 3


def test_bad_snapshot_files_are_listed_with_their_reasons(site) -> None:
    """A file processing cannot read - its name or its bytes - is on the status page, with why."""
    pipeline, _db, client, data_dir = site
    folder = data_dir / f"Run{GOOD[0]}" / GOOD[1]
    (folder / "summary.root").write_bytes(b"not even ROOT")
    (folder / "TPChists.2026_02_30_10_00_00.root").write_bytes(b"")
    report = pipeline.run_pass()
    assert report.bad == 2
    rows = client.get("/api/status").get_json()["processing"]["bad_snapshots"]
    reasons = {row["file"]: row["reason"] for row in rows if row["run"] == GOOD[0]}
    assert set(reasons) == {"summary.root", "TPChists.2026_02_30_10_00_00.root"}
    assert "not a snapshot file name" in reasons["summary.root"]
    assert "not a valid date" in reasons["TPChists.2026_02_30_10_00_00.root"]
    page = client.get("/status").get_data(as_text=True)
    assert "Bad snapshot files" in page
    assert f'data-bad-snapshot="Run{GOOD[0]}/{GOOD[1]}/summary.root"' in page
