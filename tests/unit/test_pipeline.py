"""The processing pass: records, metadata, resets, late and bad snapshots, recovery, rebuild."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from overwatch import cli
from overwatch.config import ProcessingSettings
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, read
from processing.ingest import records
from processing.ingest.cache import CACHE_SUFFIX, decode_array
from processing.pipeline import Pipeline
from processing.rebuild import rebuild
from processing.scheduler import ProcessingService
from processing.slices.reader import SliceReader, UnknownHistogram
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import (
    SAMPLES,
    T0,
    assert_matches,
    free_port,
    independent_slice,
    snapshot_path,
    wait_for,
    write_snapshot,
)

SETTINGS = ProcessingSettings(events_histogram={"TPC": "events", "EMC": "EMCTrigger/events"})


def hist(name: str, counts, edges=None) -> Histogram:
    counts = np.asarray(counts, dtype=np.float64)
    axis = Axis.from_edges(edges) if edges is not None else Axis.regular(len(counts) - 2, 0, 1)
    h = Histogram.empty(name, [axis], "TH1D")
    h.values = np.asfortranarray(counts)
    h.entries = float(counts.sum())
    h.stats = h.compute_stats()
    return h


def subsystem_view(db, run: int, name: str) -> dict:
    """Plain data of a subsystem, copied out of the database."""

    def work(ow):
        sub = ow.runs[run].subsystems[name]
        return {
            "start": sub.start,
            "end": sub.end,
            "n_events": sub.n_events,
            "segments": sub.segments,
            "snapshots": {
                t: (r.n_histograms, r.cache_file, r.resets) for t, r in sub.snapshots.items()
            },
            "slices": {t: (s.start, s.end, s.n_histograms) for t, s in sub.slices.items()},
            "bad": dict(sub.bad_snapshots.items()),
            "errors": [(e.path, e.timestamp, e.message) for e in sub.errors],
            "histograms": {
                p: (i.class_name, i.first_seen, i.last_seen) for p, i in sub.histograms.items()
            },
        }

    return read(db, work)


@pytest.fixture
def db():
    database = open_db("memory://")
    yield database
    database.close()


def test_records_slices_and_run_metadata(tmp_path, db) -> None:
    for k in range(3):
        write_snapshot(tmp_path, 5, "TPC", T0 + 60 * k, [hist("events", [0, 10 * (k + 1), 0])])
    report = Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    assert (report.processed, report.bad, report.failed) == (3, 0, [])
    view = subsystem_view(db, 5, "TPC")
    times = [T0, T0 + 60, T0 + 120]
    assert list(view["snapshots"]) == times
    assert view["slices"] == {
        T0: (0.0, T0, 1),
        T0 + 60: (T0, T0 + 60, 1),
        T0 + 120: (T0 + 60, T0 + 120, 1),
    }
    assert (view["start"], view["end"], view["n_events"]) == (T0, T0 + 120, 30.0)
    assert view["histograms"] == {"events": ("TH1D", T0, T0)}
    status = records.run_status(db, 5, ongoing_minutes=1.0, now=T0 + 150)
    assert (status.start, status.end, status.ongoing) == (T0, T0 + 120, True)
    assert status.subsystems["TPC"]["n_events"] == 30.0
    assert not records.run_status(db, 5, ongoing_minutes=1.0, now=T0 + 181).ongoing
    assert records.run_status(db, 6, ongoing_minutes=1.0) is None
    # A second pass finds nothing new and doubles nothing.
    assert Pipeline(tmp_path, db, SETTINGS).run_until_idle().processed == 0
    assert len(subsystem_view(db, 5, "TPC")["snapshots"]) == 3


def test_histogram_info_is_not_rewritten_while_the_path_set_stays(tmp_path, db) -> None:
    write_snapshot(tmp_path, 1, "TPC", T0, [hist("events", [0, 1, 0])])
    pipeline = Pipeline(tmp_path, db, SETTINGS)
    pipeline.run_pass()
    serial = read(db, lambda ow: ow.runs[1].subsystems["TPC"].histograms["events"]._p_serial)
    write_snapshot(tmp_path, 1, "TPC", T0 + 60, [hist("events", [0, 2, 0])])
    pipeline.run_pass()
    assert (
        read(db, lambda ow: ow.runs[1].subsystems["TPC"].histograms["events"]._p_serial) == serial
    )


def test_histograms_appearing_and_disappearing_mid_run(tmp_path, db) -> None:
    write_snapshot(tmp_path, 2, "EMC", T0, [hist("a", [0, 1, 0])])
    write_snapshot(tmp_path, 2, "EMC", T0 + 60, [hist("a", [0, 2, 0]), hist("b", [0, 5, 0])])
    write_snapshot(tmp_path, 2, "EMC", T0 + 120, [hist("b", [0, 7, 0])])
    pipeline = Pipeline(tmp_path, db, SETTINGS)
    pipeline.run_until_idle()
    view = subsystem_view(db, 2, "EMC")
    assert view["histograms"]["a"] == ("TH1D", T0, T0 + 60)  # last seen before it vanished
    assert view["histograms"]["b"][1] == T0 + 60
    write_snapshot(tmp_path, 2, "EMC", T0 + 180, [hist("a", [0, 6, 0]), hist("b", [0, 8, 0])])
    pipeline.run_until_idle()
    assert subsystem_view(db, 2, "EMC")["histograms"]["a"] == ("TH1D", T0, T0 + 180)
    reader = SliceReader(tmp_path, db)
    # "b" appeared after T0: its whole content arrived in the slice.
    assert reader.slice_between(2, "EMC", T0, T0 + 60)["b"].values[1] == 5
    # "a" is missing at T0+120: the slice takes its state from T0+60, where it was last seen.
    assert reader.slice_between(2, "EMC", T0 + 120, T0 + 180)["a"].values[1] == 4
    assert reader.latest_slice(2, "EMC", "a").values[1] == 4


def test_binning_change_records_an_error_and_the_others_go_on(tmp_path, db) -> None:
    write_snapshot(tmp_path, 3, "EMC", T0, [hist("a", [0, 1, 0]), hist("b", [0, 1, 0])])
    changed = hist("a", [0, 1, 1, 0], edges=[0, 0.5, 1])
    write_snapshot(tmp_path, 3, "EMC", T0 + 60, [changed, hist("b", [0, 3, 0])])
    report = Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    assert report.processed == 2
    view = subsystem_view(db, 3, "EMC")
    assert [(p, t) for p, t, _ in view["errors"]] == [("a", T0 + 60)]
    assert "binning changed" in view["errors"][0][2]
    reader = SliceReader(tmp_path, db)
    assert reader.latest_slice(3, "EMC", "b").values[1] == 2
    with pytest.raises(UnknownHistogram, match="binning changed"):
        reader.latest_slice(3, "EMC", "a")
    assert list(reader.slice_between(3, "EMC", T0, T0 + 60)) == ["b"]


def test_counter_reset_from_the_simulator_is_a_new_segment(tmp_path, db) -> None:
    simulator = DetectorSimulator(
        ["TPC"], run=4, seed=5, start_time=T0, event_rate=100,
        faults=[{"kind": "counter_reset", "subsystem": "TPC", "at_minute": 2.5}],
    )  # fmt: skip
    files = []
    for minute in range(1, 6):
        simulator.advance(60)
        ts = T0 + 60 * minute
        files.append(
            (ts, write_snapshot(tmp_path, 4, "TPC", ts, simulator.snapshot("TPC").values()))
        )
    Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    view = subsystem_view(db, 4, "TPC")
    assert view["segments"] == 2
    assert [r for _, _, r in view["snapshots"].values()].count(0) == 4  # one snapshot reset
    reader = SliceReader(tmp_path, db)
    (t1, f1), (t2, f2), (t3, f3), (_, _), (t5, f5) = files
    paths = [p for p, _ in reader.histogram_paths(4, "TPC")]
    across = reader.slice_between(4, "TPC", t1, t5)
    for path in paths:
        # Before the reset: f2 - f1; after it the sender restarted: all of f5.
        before, after = independent_slice(f1, f2, path), independent_slice(None, f5, path)
        expected = {k: before[k] + after[k] for k in after}
        assert_matches(across[path], expected, rtol=1e-12)
        assert (across[path].values >= 0).all()
        assert_matches(
            reader.slice_between(4, "TPC", t2, t3)[path], independent_slice(None, f3, path)
        )
    events = read(db, lambda ow: ow.runs[4].subsystems["TPC"].n_events)
    assert events == uproot_entries(f2, "events") + uproot_entries(f5, "events")
    # Which counters restarted within a slice: every one between t2 and t3, none elsewhere.
    assert sorted(reader.resets_between(4, "TPC", t2, t3)) == sorted(paths)
    assert sorted(reader.resets_between(4, "TPC", t1, t5)) == sorted(paths)
    assert sorted(reader.resets_between(4, "TPC", None, t5)) == sorted(paths)
    assert reader.resets_between(4, "TPC", t1, t2) == []
    assert reader.resets_between(4, "TPC", t3, t5) == []
    assert reader.resets_between(4, "TPC", None, t2) == []


def uproot_entries(path, name: str) -> float:
    return independent_slice(None, path, name)["entries"]


def test_subsystems_out_of_order_and_a_late_older_snapshot(tmp_path, db) -> None:
    pipeline = Pipeline(tmp_path, db, SETTINGS)
    write_snapshot(tmp_path, 6, "TPC", T0 + 10, [hist("events", [0, 5, 0])])
    pipeline.run_pass()
    write_snapshot(tmp_path, 6, "EMC", T0 + 5, [hist("x", [0, 1, 0])])  # older, other subsystem
    write_snapshot(tmp_path, 6, "TPC", T0 + 130, [hist("events", [0, 2, 0])])  # a reset vs T0+10
    pipeline.run_pass()
    assert subsystem_view(db, 6, "TPC")["snapshots"][T0 + 130][2] == 1
    assert subsystem_view(db, 6, "EMC")["snapshots"].keys() == {T0 + 5}
    # A TPC snapshot older than one already processed arrives late: it is inserted.
    write_snapshot(tmp_path, 6, "TPC", T0 + 70, [hist("events", [0, 1, 0])])
    assert pipeline.run_pass().processed == 1
    view = subsystem_view(db, 6, "TPC")
    assert list(view["snapshots"]) == [T0 + 10, T0 + 70, T0 + 130]
    assert view["slices"][T0 + 70][:2] == (T0 + 10, T0 + 70)
    assert view["slices"][T0 + 130][:2] == (T0 + 70, T0 + 130)  # now starts at the late one
    # The reset moved to the late snapshot (5 -> 1); 1 -> 2 is an ordinary increase.
    assert [v[2] for v in view["snapshots"].values()] == [0, 1, 0]
    assert view["segments"] == 2
    reader = SliceReader(tmp_path, db)
    assert reader.latest_slice(6, "TPC", "events").values[1] == 1
    assert reader.cumulative(6, "TPC", "events").values[1] == 7
    assert view["n_events"] == 7.0


def test_bad_snapshots_are_recorded_and_skipped(tmp_path, db) -> None:
    good = write_snapshot(tmp_path, 8, "EMC", T0, [hist("a", [0, 1, 0])])
    directory = good.parent
    data = (SAMPLES / "uproot-hepdata-example.root").read_bytes()
    (directory / "EMChists.2026_01_01_00_01_00.root").write_bytes(data[: len(data) // 3])
    (directory / "EMChists.2026_01_01_00_02_00.root").write_bytes(b"garbage" * 100)
    shutil.copy(SAMPLES / "uproot-empty.root", directory / "EMChists.2026_01_01_00_03_00.root")
    (directory / "EMChists.2026_13_45_00_00_00.root").write_bytes(good.read_bytes())
    write_snapshot(tmp_path, 8, "EMC", T0 + 300, [hist("a", [0, 4, 0])])
    report = Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    assert (report.processed, report.bad, report.failed) == (2, 4, [])
    bad = subsystem_view(db, 8, "EMC")["bad"]
    assert set(bad) == {
        "EMChists.2026_01_01_00_01_00.root",
        "EMChists.2026_01_01_00_02_00.root",
        "EMChists.2026_01_01_00_03_00.root",
        "EMChists.2026_13_45_00_00_00.root",
    }
    assert "truncated" in bad["EMChists.2026_01_01_00_01_00.root"]
    assert "not a ROOT file" in bad["EMChists.2026_01_01_00_02_00.root"]
    assert "nothing readable" in bad["EMChists.2026_01_01_00_03_00.root"]
    assert "invalid snapshot name" in bad["EMChists.2026_13_45_00_00_00.root"]
    assert SliceReader(tmp_path, db).latest_slice(8, "EMC", "a").values[1] == 3
    assert Pipeline(tmp_path, db, SETTINGS).run_until_idle().bad == 0  # not retried


def test_crash_between_cache_and_commit_is_recovered_bit_exactly(tmp_path, db, monkeypatch) -> None:
    simulator = DetectorSimulator(
        ["TPC"], run=9, seed=2, start_time=T0, event_rate=50,
        faults=[{"kind": "counter_reset", "subsystem": "TPC", "at_minute": 1.5}],
    )  # fmt: skip
    for minute in range(1, 5):
        simulator.advance(60)
        write_snapshot(tmp_path, 9, "TPC", T0 + 60 * minute, simulator.snapshot("TPC").values())
    reference_db = open_db("memory://")
    Pipeline(tmp_path, reference_db, SETTINGS).run_until_idle()
    reference = {p.name: p.read_bytes() for p in (tmp_path / "cache").rglob(f"*{CACHE_SUFFIX}")}
    shutil.rmtree(tmp_path / "cache")

    calls = {"n": 0}
    real_commit = records.commit_outcome

    def dying_commit(database, outcome, *rest):
        calls["n"] += 1
        if calls["n"] == 3:  # the cache of the third snapshot is written, its commit is not
            raise KeyboardInterrupt("killed")
        return real_commit(database, outcome, *rest)

    monkeypatch.setattr(records, "commit_outcome", dying_commit)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    monkeypatch.setattr(records, "commit_outcome", real_commit)
    assert len(subsystem_view(db, 9, "TPC")["snapshots"]) == 2
    assert Pipeline(tmp_path, db, SETTINGS).run_until_idle().processed == 2
    view = subsystem_view(db, 9, "TPC")
    assert view == subsystem_view(reference_db, 9, "TPC") | {"snapshots": view["snapshots"]}
    assert {t: v[2] for t, v in view["snapshots"].items()} == {
        t: v[2] for t, v in subsystem_view(reference_db, 9, "TPC")["snapshots"].items()
    }
    assert {
        p.name: p.read_bytes() for p in (tmp_path / "cache").rglob(f"*{CACHE_SUFFIX}")
    } == reference


def test_rebuild_recreates_metadata_and_a_deleted_cache(tmp_path, db) -> None:
    simulator = DetectorSimulator(["EMC", "TPC"], run=11, seed=4, start_time=T0, event_rate=50)
    for minute in range(1, 4):
        simulator.advance(60)
        for subsystem in ("EMC", "TPC"):
            write_snapshot(
                tmp_path, 11, subsystem, T0 + 60 * minute, simulator.snapshot(subsystem).values()
            )
    write_snapshot(tmp_path, 12, "TPC", T0 + 999, [hist("events", [0, 1, 0])])
    snapshot_path(tmp_path, 12, "TPC", T0 + 1999).write_bytes(b"not root")
    Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    before = {(r, s): subsystem_view(db, r, s) for r, s in ((11, "EMC"), (11, "TPC"), (12, "TPC"))}
    cache = {p: p.read_bytes() for p in (tmp_path / "cache").rglob(f"*{CACHE_SUFFIX}")}

    fresh = open_db("memory://")
    report = rebuild(tmp_path, fresh, SETTINGS)
    assert (report.processed, report.bad) == (7, 1)
    for (run, subsystem), view in before.items():
        assert subsystem_view(fresh, run, subsystem) == view
    # Rebuild after the cache was deleted: same files, bit for bit (through the CLI).
    shutil.rmtree(tmp_path / "cache")
    database_file = tmp_path / "meta.fs"
    assert (
        cli.main(["db", "rebuild", "--data-dir", str(tmp_path), "--db", f"file://{database_file}"])
        == 0
    )
    assert {p: p.read_bytes() for p in (tmp_path / "cache").rglob(f"*{CACHE_SUFFIX}")} == cache
    rebuilt = open_db(f"file://{database_file}")
    try:
        assert subsystem_view(rebuilt, 11, "EMC") == before[(11, "EMC")]
    finally:
        rebuilt.close()


def test_a_receiver_notice_wakes_the_scheduled_job(tmp_path, db) -> None:
    from receivers.notify import Notifier

    address = f"tcp://127.0.0.1:{free_port()}"
    service = ProcessingService(
        Pipeline(tmp_path, db, SETTINGS), interval=600.0, notify_address=address
    )
    service.start()
    notifier = Notifier(address)
    try:
        for k in range(3):
            path = write_snapshot(tmp_path, 13, "TPC", T0 + 60 * k, [hist("events", [0, k + 1, 0])])
            notifier._socket.send(b"{not json")  # a malformed notice is ignored
            assert notifier.notify(13, "TPC", str(path.relative_to(tmp_path)))
            wait_for(
                lambda k=k: len(read(db, lambda ow: dict(ow.runs[13].subsystems["TPC"].snapshots) if 13 in ow.runs else {})) == k + 1,
                20, f"snapshot {k} processed after its notice",
            )  # fmt: skip
    finally:
        notifier.close()
        service.stop()
    assert subsystem_view(db, 13, "TPC")["n_events"] == 3.0


def test_deleted_cache_files_are_regenerated_when_needed(tmp_path, db) -> None:
    for k in range(3):
        write_snapshot(tmp_path, 14, "TPC", T0 + 60 * k, [hist("events", [0, k + 1, 0])])
    Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    cache_dir = tmp_path / "cache" / "Run14" / "TPC"
    before = {p.name: p.read_bytes() for p in cache_dir.glob(f"*{CACHE_SUFFIX}")}
    shutil.rmtree(cache_dir)
    write_snapshot(tmp_path, 14, "TPC", T0 + 180, [hist("events", [0, 9, 0])])
    assert Pipeline(tmp_path, db, SETTINGS).run_until_idle().processed == 1
    after = {p.name: p.read_bytes() for p in cache_dir.glob(f"*{CACHE_SUFFIX}")}
    assert {n: after[n] for n in before} == before and len(after) == 4
    assert SliceReader(tmp_path, db).latest_slice(14, "TPC", "events").values[1] == 6


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_arrival_order_ends_in_the_same_state(tmp_path, seed) -> None:
    """Late files (resets, paths coming and going) give what in-order processing gives."""
    rng = np.random.default_rng(seed)
    a, b, c = np.zeros(4), np.zeros(4), np.zeros(4)
    series = []
    for k in range(8):
        a += rng.integers(0, 5, 4)
        b += rng.integers(0, 5, 4)
        if k == 4:
            a = rng.integers(0, 3, 4).astype(float)  # the sender restarted "a"
        content = [hist("a", a.copy())]
        if k != 5:  # "b" missing from one snapshot
            content.append(hist("b", b.copy()))
        if k >= 3:  # "c" appears mid-run
            c += rng.integers(0, 5, 4)
            content.append(hist("c", c.copy()))
        series.append((T0 + 60 * k, content))

    def final_state(folder, order) -> tuple:
        database = open_db("memory://")
        pipeline = Pipeline(folder, database, SETTINGS)
        for k in order:
            write_snapshot(folder, 15, "EMC", *series[k])
            pipeline.run_pass({(15, "EMC")})
        view = subsystem_view(database, 15, "EMC")
        database.close()
        cache = {
            p.name: decode_array(p.read_bytes(), p.name)
            for p in (folder / "cache").rglob(f"*{CACHE_SUFFIX}")
        }
        view.pop("histograms")  # first/last seen are updated as paths come and go
        return view, cache

    in_order, in_order_cache = final_state(tmp_path / "ordered", range(8))
    assert in_order["segments"] == 2 and len(in_order["snapshots"]) == 8  # the reset was seen
    shuffled = [int(k) for k in rng.permutation(8)]
    late, late_cache = final_state(tmp_path / "shuffled", shuffled)
    assert late == in_order, shuffled
    assert late_cache.keys() == in_order_cache.keys()
    for name, array in in_order_cache.items():
        np.testing.assert_array_equal(late_cache[name], array, err_msg=f"{name} {shuffled}")
