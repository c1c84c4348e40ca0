"""The live pipeline's analysis stage: plugin results, trends, checks and alarms per snapshot.

Snapshots come from the detector simulator; everything runs on real files, a
real trend store and a real (in-memory or file) ZODB.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from ZODB.FileStorage import FileStorage
from ZODB.utils import get_pickle_metadata

from overwatch import cli
from overwatch.config import ProcessingSettings
from overwatch.plugins import Annotation, DetectorPlugin
from overwatch.store.db import open_db, read
from overwatch.store.layout import atomic_write
from processing.analysis.alarms import AlarmManager
from processing.analysis.live import load_engine, window_size
from processing.analysis.trending import TrendStore, trend_dir
from processing.ingest import records
from processing.pipeline import Pipeline
from processing.rebuild import rebuild
from processing.slices.reader import SliceReader
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0, snapshot_path

SETTINGS = ProcessingSettings()
RESULT_FIELDS = records.RESULT_FIELDS


@pytest.fixture(scope="module")
def engine():
    return load_engine()


@pytest.fixture
def db():
    database = open_db("memory://")
    yield database
    database.close()


class Feed:
    """A simulator writing one snapshot per ``step`` seconds into a data directory."""

    def __init__(self, data: Path, subsystem: str = "TPC", *, run: int = 3, step: float = 60.0,
                 faults=(), **options) -> None:  # fmt: skip
        self.data, self.subsystem, self.run, self.step = data, subsystem, run, step
        options.setdefault("event_rate", 200.0)
        self.sim = DetectorSimulator([subsystem], run=run, seed=7, start_time=T0, faults=faults,
                                     **options)  # fmt: skip
        self.times: list[float] = []
        self.events: list[float] = []

    def write(self, count: int = 1) -> list[float]:
        written = []
        for _ in range(count):
            self.sim.advance(self.step)
            ts = self.sim.now
            path = snapshot_path(self.data, self.run, self.subsystem, ts)
            atomic_write(path, self.sim.payload(self.subsystem), fsync=False)
            self.times.append(ts)
            self.events.append(float(self.sim.events(self.subsystem)))
            written.append(ts)
        return written

    def expected_rates(self, times: list[float]) -> list[float]:
        """Events per second of each slice ending at ``times`` (not the run's first)."""
        events = dict(zip(self.times, self.events, strict=True))
        ordered = sorted(events)
        out = []
        for ts in times:
            i = ordered.index(ts)
            out.append((events[ts] - events[ordered[i - 1]]) / (ts - ordered[i - 1]))
        return out


def trend(data: Path, run: int, subsystem: str, path: str, name: str):
    return TrendStore(trend_dir(data, run, subsystem), readonly=True).series(path, name)


def results(db, run: int, subsystem: str) -> dict:
    def work(ow):
        sub = ow.runs[run].subsystems[subsystem]
        return {name: getattr(sub, name) for name in RESULT_FIELDS}

    return read(db, work)


def alarms(db) -> list[tuple]:
    def work(ow):
        return [
            (a.run, a.subsystem, a.check, a.path, a.trend, a.quality) for a in ow.alarms.values()
        ]

    return read(db, work)


# --------------------------------------------------------------------------- results


def test_results_and_alarm_are_committed_with_the_snapshot(tmp_path, engine) -> None:
    db = open_db(f"file://{tmp_path / 'ow.fs'}")
    notices = []
    feed = Feed(tmp_path / "data", "EMC", event_rate=500.0,
                faults=[{"kind": "hot_channel", "subsystem": "EMC", "at_minute": 2,
                         "cell": [3, 10, 5], "factor": 40}])  # fmt: skip
    pipeline = Pipeline(
        feed.data,
        db,
        SETTINGS,
        checks=engine,
        alarms=AlarmManager(notify=notices.append, open_after=1),  # one Bad slice: K=1
    )
    feed.write(2)
    assert pipeline.run_pass().processed == 2
    clean = results(db, 3, "EMC")
    assert clean["quality"] == "Good" and clean["evaluated_at"] == feed.times[1]
    assert alarms(db) == [] and notices == []

    feed.write()  # minute 2-3: the hot cell is in this slice
    pipeline.run_pass()
    after = results(db, 3, "EMC")
    assert after["quality"] == "Bad"
    assert after["evaluated_at"] == feed.times[2]
    assert after["group_qualities"]["SM03"] == "Bad"
    assert {g: q for g, q in after["group_qualities"].items() if g != "SM03"} == {
        **{f"SM{i:02d}": "Good" for i in range(20) if i != 3},
        # The rate check has no minute of history yet (Null: no decision), and no
        # counter restarted (counter-reset: Good).
        "Trigger": "Good",
    }
    # Group qualities follow the plugin's page order: supermodules, then the trigger group.
    assert list(after["group_qualities"]) == [f"SM{i:02d}" for i in range(20)] + ["Trigger"]
    bad = [r for r in after["check_results"] if r["quality"] == "Bad"]
    assert [(r["check"], r["histogram"], r["trend"]) for r in bad] == [
        ("emc-hot-cells", "EMCal/SM03/cellHits", "hot_cells")
    ]
    note = after["annotations"]["EMCal/SM03/cellHits"]
    assert any(line.startswith("hot: column 10, row 5") for line in note["info"])
    assert note["values"]["hot_cells"] == 1.0
    assert all(n["info"] or n["decorations"] or n["values"] for n in after["annotations"].values())
    assert after["plugin_errors"] == ()
    assert alarms(db) == [(3, "EMC", "emc-hot-cells", "EMCal/SM03/cellHits", "hot_cells", "Bad")]
    assert [n.path for n in notices] == ["EMCal/SM03/cellHits"]  # after the commit, once

    # The alarm was written by the very transaction that recorded the snapshot.
    db.close()
    storage = FileStorage(str(tmp_path / "ow.fs"), read_only=True)
    try:
        classes = [
            {get_pickle_metadata(r.data)[1] for r in t}
            for t in storage.iterator()
            if "process Run3/EMC" in t.description.decode()
        ]
    finally:
        storage.close()
    assert len(classes) == 3
    assert "Alarm" in classes[2] and "SnapshotRecord" in classes[2]
    assert "Alarm" not in classes[0] | classes[1]


def test_a_steady_snapshot_writes_few_small_objects(tmp_path, engine) -> None:
    """No check state, alarm or histogram info is rewritten while qualities stay the same."""
    db = open_db(f"file://{tmp_path / 'ow.fs'}")
    feed = Feed(tmp_path / "data", "EMC", event_rate=500.0)
    pipeline = Pipeline(feed.data, db, SETTINGS, checks=engine, alarms=AlarmManager())
    for _ in range(6):
        feed.write()
        pipeline.run_pass()
    assert results(db, 3, "EMC")["quality"] == "Good"
    db.close()
    storage = FileStorage(str(tmp_path / "ow.fs"), read_only=True)
    try:
        writes = [
            [(get_pickle_metadata(r.data)[1], len(r.data)) for r in t]
            for t in storage.iterator()
            if "process Run3/EMC" in t.description.decode()
        ]
    finally:
        storage.close()
    states = [sum(1 for name, _ in write if name == "CheckState") for write in writes]
    # 20 maps x 2 checks and the counter-reset check, then the event rate once it has a
    # minute of history: each once.
    assert states == [41, 0, 0, 1, 0, 0]
    for steady in writes[4:]:
        names = [name for name, _ in steady]
        assert not {"CheckState", "Alarm", "HistogramInfo"} & set(names), names
        assert len(names) <= 8
        assert sum(size for _, size in steady) < 16_000, steady  # ~8 kB, 7 kB the Subsystem


# --------------------------------------------------------------------------- trends


def test_trends_keep_growing_across_passes_restarts_and_rebuild(tmp_path, db, engine) -> None:
    feed = Feed(tmp_path)
    pipeline = Pipeline(tmp_path, db, SETTINGS, checks=engine)
    feed.write(3)
    assert pipeline.run_pass().processed == 3
    for _ in range(2):  # pass after pass (the job of the scheduler)
        feed.write()
        assert pipeline.run_pass().processed == 1
    assert list(trend(tmp_path, 3, "TPC", "events", "entries")[0]) == feed.times
    feed.write(2)  # a restart: a new pipeline resumes the same store
    assert Pipeline(tmp_path, db, SETTINGS, checks=engine).run_until_idle().processed == 2
    times, rates = trend(tmp_path, 3, "TPC", "events", "event_rate")
    assert list(times) == feed.times[1:]  # the run's first slice has no known duration
    np.testing.assert_allclose(rates, feed.expected_rates(feed.times[1:]), rtol=1e-12)
    before = {
        name: trend(tmp_path, 3, "TPC", "TPC/clusterCharge", name) for name in ("mean", "std")
    }

    report = rebuild(tmp_path, db, SETTINGS, checks=engine)
    assert report.processed == 7
    for name, (t, v) in before.items():
        after = trend(tmp_path, 3, "TPC", "TPC/clusterCharge", name)
        np.testing.assert_array_equal(after[0], t)
        np.testing.assert_array_equal(after[1], v)
    feed.write()
    assert Pipeline(tmp_path, db, SETTINGS, checks=engine).run_until_idle().processed == 1
    assert list(trend(tmp_path, 3, "TPC", "events", "entries")[0]) == feed.times
    assert len(TrendStore(trend_dir(tmp_path, 3, "TPC"), readonly=True)) == 8
    assert results(db, 3, "TPC")["evaluated_at"] == feed.times[-1]


def test_a_crash_before_the_commit_replaces_the_trend_point(tmp_path, db, monkeypatch) -> None:
    feed = Feed(tmp_path)
    feed.write(4)
    calls = {"n": 0}
    real_commit = records.commit_outcome

    def dying_commit(database, outcome, *rest):
        calls["n"] += 1
        if calls["n"] == 3:  # the trend point of the third snapshot is written, its record is not
            raise KeyboardInterrupt("killed")
        return real_commit(database, outcome, *rest)

    monkeypatch.setattr(records, "commit_outcome", dying_commit)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    monkeypatch.setattr(records, "commit_outcome", real_commit)
    assert list(trend(tmp_path, 3, "TPC", "events", "entries")[0]) == feed.times[:3]
    # A point of a snapshot that was never committed (e.g. a database restored from a backup).
    TrendStore(trend_dir(tmp_path, 3, "TPC")).append(
        feed.times[3] + 600, {("events", "entries"): -1.0}
    )

    assert Pipeline(tmp_path, db, SETTINGS).run_until_idle().processed == 2
    times, rates = trend(tmp_path, 3, "TPC", "events", "event_rate")
    assert list(times) == feed.times[1:]
    np.testing.assert_allclose(rates, feed.expected_rates(feed.times[1:]), rtol=1e-12)
    assert list(trend(tmp_path, 3, "TPC", "events", "entries")[0]) == feed.times


def test_a_late_snapshot_rewinds_and_refills_the_trends(tmp_path, db, engine) -> None:
    feed = Feed(tmp_path)
    feed.write(4)
    late = snapshot_path(tmp_path, 3, "TPC", feed.times[1])
    held = late.read_bytes()
    late.unlink()
    pipeline = Pipeline(tmp_path, db, SETTINGS, checks=engine)
    assert pipeline.run_pass().processed == 3
    assert (
        list(trend(tmp_path, 3, "TPC", "events", "entries")[0]) == feed.times[:1] + feed.times[2:]
    )
    atomic_write(late, held, fsync=False)
    assert pipeline.run_pass().processed == 1
    times, rates = trend(tmp_path, 3, "TPC", "events", "event_rate")
    assert list(times) == feed.times[1:]
    np.testing.assert_allclose(rates, feed.expected_rates(feed.times[1:]), rtol=1e-12)
    latest = results(db, 3, "TPC")
    assert latest["evaluated_at"] == feed.times[-1]
    rate_check = [r for r in latest["check_results"] if r["check"] == "tpc-event-rate-drop"]
    assert [r["quality"] for r in rate_check] == ["Good"]


# --------------------------------------------------------------------------- isolation


class ExplodingPlugin(DetectorPlugin):
    """A plugin whose hooks raise: the subsystem must still be processed and shown."""

    name = "EXPLODING"

    def derived(self, histograms, options, context):
        raise RuntimeError("derived exploded")

    def annotate(self, path, histogram, options, context):
        raise ValueError(f"annotate exploded on {path}")

    def trend_values(self, path, histogram, options, context):
        raise ZeroDivisionError("trend exploded")


def test_a_plugin_that_raises_costs_only_its_own_output(
    tmp_path, db, engine, monkeypatch, caplog
) -> None:
    monkeypatch.setattr("processing.analysis.live.load_plugin", lambda subsystem: ExplodingPlugin())
    feed = Feed(tmp_path)
    feed.write(3)
    with caplog.at_level(logging.ERROR, logger="overwatch.plugins"):
        assert Pipeline(tmp_path, db, SETTINGS, checks=engine).run_until_idle().processed == 3
    errors = results(db, 3, "TPC")["plugin_errors"]
    assert errors[0] == "EXPLODING.derived: RuntimeError: derived exploded"
    assert any("EXPLODING.annotate: ValueError: annotate exploded on TPC/dcaZ" in e for e in errors)
    assert len(errors) == 21 and errors[-1].startswith("... and ")  # capped, counted
    logged = [r.getMessage() for r in caplog.records if "detector plugin failed" in r.getMessage()]
    assert len(logged) == 3  # once per hook and kind of error, not per histogram or snapshot
    # The histograms are sliced, stored and served; generic trends are recorded.
    reader = SliceReader(tmp_path, db)
    assert reader.latest_slice(3, "TPC", "events").entries == feed.events[2] - feed.events[1]
    assert list(trend(tmp_path, 3, "TPC", "TPC/trackPt", "mean")[0]) == feed.times
    assert trend(tmp_path, 3, "TPC", "events", "event_rate")[0].size == 0


class BrokenEventsPlugin(DetectorPlugin):
    """Its declared events histogram is not a path: the analysis itself fails."""

    name = "BROKENEVENTS"
    events_histogram = ["not", "a", "path"]  # type: ignore[assignment]


def test_a_failing_analysis_is_recorded_and_the_snapshot_kept(tmp_path, db, monkeypatch) -> None:
    monkeypatch.setattr(
        "processing.analysis.live.load_plugin", lambda subsystem: BrokenEventsPlugin()
    )
    feed = Feed(tmp_path, "XYZ")  # no events histogram configured: the plugin's is used
    feed.write(2)
    assert Pipeline(tmp_path, db, SETTINGS).run_until_idle().processed == 2
    latest = results(db, 3, "XYZ")
    assert latest["plugin_errors"][0].startswith("analysis failed: TypeError")
    assert latest["evaluated_at"] == feed.times[-1] and latest["quality"] == "Null"
    assert SliceReader(tmp_path, db).snapshot_times(3, "XYZ") == feed.times


class OddNotesPlugin(DetectorPlugin):
    """Annotations the processing cannot store as numbers."""

    name = "ODDNOTES"

    def annotate(self, path, histogram, options, context):
        if path == "events":
            return Annotation(info=["fine"], values={"rate": "fast"})  # type: ignore[dict-item]
        return Annotation(info=[f"{path} looks fine"]) if path == "TPC/dcaZ" else None


def test_an_annotation_that_cannot_be_stored_is_an_error(tmp_path, db, monkeypatch) -> None:
    monkeypatch.setattr("processing.analysis.live.load_plugin", lambda subsystem: OddNotesPlugin())
    Feed(tmp_path).write(2)
    assert Pipeline(tmp_path, db, SETTINGS).run_until_idle().processed == 2
    latest = results(db, 3, "TPC")
    assert latest["annotations"] == {
        "TPC/dcaZ": {"info": ["TPC/dcaZ looks fine"], "decorations": [], "values": {}}
    }
    assert latest["plugin_errors"] == (
        "events: ODDNOTES.annotate: invalid annotation: could not convert string to float: 'fast'",
    )


def test_the_plain_pipeline_runs_no_plugin_trend_or_check(tmp_path, db, engine) -> None:
    feed = Feed(tmp_path)
    feed.write(2)
    assert (
        Pipeline(tmp_path, db, SETTINGS, checks=engine, analysis=False).run_until_idle().processed
        == 2
    )
    assert not trend_dir(tmp_path, 3, "TPC").exists()
    assert results(db, 3, "TPC") == {
        "quality": "Null", "group_qualities": {}, "check_results": (), "annotations": {},
        "plugin_errors": (), "evaluated_at": 0.0,
    }  # fmt: skip


def test_rebuild_recomputes_results_but_raises_no_alarm_again(tmp_path, db, engine) -> None:
    # The rate check needs a minute of history before the window it judges: drop at minute 3.
    feed = Feed(
        tmp_path, faults=[{"kind": "rate_drop", "subsystem": "TPC", "at_minute": 3, "factor": 0.05}]
    )
    feed.write(5)
    Pipeline(tmp_path, db, SETTINGS, checks=engine, alarms=AlarmManager()).run_until_idle()
    raised = alarms(db)
    assert raised == [(3, "TPC", "tpc-event-rate-drop", "events", "event_rate", "Bad")]
    before = results(db, 3, "TPC")
    rebuild(tmp_path, db, SETTINGS, checks=engine)
    assert alarms(db) == raised
    assert results(db, 3, "TPC") == before


def test_window_covers_the_longest_check(engine) -> None:
    from processing.analysis.checks import CheckEngine

    longer = CheckEngine.from_text(
        "checks:\n  - {name: w, histogram: events, trend: event_rate, check: check_last_n,\n"
        "     parameters: {n: 40, min: 0, max: 1, ratio: 0.5}}\n"
    )
    assert window_size(None) == 16
    # The default rate checks judge 60 s against the 600 s before: a point per second at most.
    assert window_size(engine) == 60 + 600 + 2
    assert window_size(longer) == 80


# --------------------------------------------------------------------------- configuration

BAD_CHECKS = """checks:
  - name: tpc-bad
    subsystem: TPC
    histogram: events
    check: no_such_check
"""


def test_an_invalid_checks_file_stops_processing_at_start(tmp_path, capsys) -> None:
    feed = Feed(tmp_path / "data")
    feed.write()
    checks = tmp_path / "checks.yaml"
    checks.write_text(BAD_CHECKS)
    database = tmp_path / "ow.fs"
    common = ["--data-dir", str(feed.data), "--db", f"file://{database}"]
    assert cli.main(["process", "--once", *common, "--checks", str(checks)]) == 2
    message = capsys.readouterr().err
    assert f"{checks}:5: checks[0].check:" in message and "no_such_check" in message
    assert not database.exists()  # nothing was opened, let alone processed

    config = tmp_path / "overwatch.yaml"
    config.write_text(f"processing:\n  checks_file: {checks}\n")
    assert cli.main(["--config", str(config), "process", "--once", *common]) == 2
    assert f"{checks}:5:" in capsys.readouterr().err
    assert cli.main(["--config", str(config), "db", "rebuild", *common]) == 2
    assert f"{checks}:5:" in capsys.readouterr().err


def test_process_once_runs_the_given_checks_and_raises_alarms(tmp_path, capsys) -> None:
    feed = Feed(tmp_path / "data")
    feed.write(2)
    checks = tmp_path / "checks.yaml"
    checks.write_text(
        "checks:\n  - {name: tpc-too-few, subsystem: TPC, histogram: events,\n"
        "     check: between_values, parameters: {value: entries, min: 1.0e+12, max: .inf}}\n"
    )
    database = tmp_path / "ow.fs"
    argv = ["process", "--once", "--data-dir", str(feed.data), "--db", f"file://{database}"]
    assert cli.main([*argv, "--checks", str(checks)]) == 0
    assert "processed 2 snapshots" in capsys.readouterr().out
    db = open_db(f"file://{database}")
    try:
        assert results(db, 3, "TPC")["quality"] == "Bad"
        assert alarms(db) == [(3, "TPC", "tpc-too-few", "events", "", "Bad")]
    finally:
        db.close()
