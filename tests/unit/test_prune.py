"""``overwatch db prune``: repeated snapshots of ended runs go, content, slices and trends stay.

Real snapshot files (the simulator's, and histograms written with uproot),
real processing (``Pipeline`` with the checks, a ``file://`` or in-memory
ZODB), and every comparison through the read API the web uses
(``processing.SliceService``, ``processing.TrendStore``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

import processing
from overwatch import cli, rootio
from overwatch.config import ProcessingSettings
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, read, transact
from overwatch.store.layout import DataDir, atomic_write
from processing.analysis.live import load_engine
from processing.analysis.trend_store import TrendStore, TrendStoreError
from processing.ingest import records
from processing.ingest.cache import CACHE_SUFFIX
from processing.pipeline import Pipeline
from processing.prune import PruneError, parse_runs, plan, prune
from processing.slices.spec import SliceSpec
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0, snapshot_path, write_snapshot

SETTINGS = ProcessingSettings()
RUN = 3


@pytest.fixture(scope="module")
def engine():
    return load_engine()


@pytest.fixture
def db():
    database = open_db("memory://")
    yield database
    database.close()


# --------------------------------------------------------------------------- helpers


class Feed:
    """The TPC simulator writing snapshots of one run into a data directory."""

    def __init__(self, data: Path, run: int = RUN, start: float = T0) -> None:
        self.data, self.run = data, run
        self.sim = DetectorSimulator(["TPC"], run=run, seed=11, start_time=start,
                                     event_rate=300.0, histograms=12)  # fmt: skip

    def write(self, count: int, step: float = 60.0) -> list[float]:
        times = []
        for _ in range(count):
            self.sim.advance(step)
            times.append(self.copy(self.sim.now))
        return times

    def copy(self, ts: float) -> float:
        """The current content stored again at ``ts`` (the simulator is not advanced)."""
        atomic_write(snapshot_path(self.data, self.run, "TPC", ts), self.sim.payload("TPC"))
        return ts


def process(data: Path, db, engine) -> None:
    report = Pipeline(data, db, SETTINGS, checks=engine).run_until_idle()
    assert not report.failed and not report.bad


def hist(name: str, counts) -> Histogram:
    counts = np.asarray(counts, dtype=np.float64)
    h = Histogram.empty(name, [Axis.regular(len(counts) - 2, 0, 1)], "TH1D")
    h.values = np.asfortranarray(counts)
    h.entries = float(counts.sum())
    h.stats = h.compute_stats()
    return h


def histogram_arrays(view) -> dict:
    out = {}
    for path, h in view.histograms.items():
        out[path] = (
            np.array(h.values),
            None if h.sumw2 is None else np.array(h.sumw2),
            h.entries,
            dict(h.stats),
        )
    return out


def assert_same_histograms(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for path, (values, sumw2, entries, stats) in before.items():
        other = after[path]
        assert np.array_equal(values, other[0], equal_nan=True), path
        assert (sumw2 is None) == (other[1] is None), path
        if sumw2 is not None:
            assert np.array_equal(sumw2, other[1], equal_nan=True), path
        assert entries == other[2], path
        assert stats == other[3], path


def service(data: Path, db, engine):
    return processing.SliceService(data, db, settings=SETTINGS, engine=engine)


def trends(data: Path, run: int = RUN, subsystem: str = "TPC") -> dict:
    store = processing.TrendStore(processing.trend_dir(data, run, subsystem), readonly=True)
    return {key: store.series(*key) for key in store.names()}


def assert_trends_kept(before: dict, after: dict, kept: list[float], removed: list[float]):
    assert before.keys() == after.keys()
    compared = 0
    for key, (times, values) in before.items():
        keep = np.isin(times, kept)
        after_times, after_values = after[key]
        assert not np.isin(after_times, removed).any(), key
        assert np.array_equal(after_times, times[keep]), key
        assert np.array_equal(after_values, values[keep], equal_nan=True), key
        compared += int(keep.sum())
    assert compared > 0


def chain_state(db, run: int = RUN, subsystem: str = "TPC") -> dict:
    def work(ow):
        sub = ow.runs[run].subsystems[subsystem]
        return {
            "snapshots": {t: (r.filename, r.cache_file) for t, r in sub.snapshots.items()},
            "slices": {t: (s.start, s.end) for t, s in sub.slices.items()},
            "start": sub.start,
            "end": sub.end,
            "n_events": sub.n_events,
            "segments": sub.segments,
            "results": {name: getattr(sub, name) for name in records.RESULT_FIELDS},
            "histograms": {p: (i.first_seen, i.last_seen) for p, i in sub.histograms.items()},
            "requests": {k: (r.start, r.end) for k, r in getattr(ow, "slice_requests", {}).items()},
        }

    return read(db, work)


def files_digest(root: Path) -> dict[str, str]:
    """Every file under the data directory with a digest of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def snapshot_files(data: Path, run: int = RUN, subsystem: str = "TPC") -> list[str]:
    return sorted(p.name for p in DataDir(data).subsystem_dir(run, subsystem).glob("*.root"))


def cache_files(data: Path, run: int = RUN, subsystem: str = "TPC") -> list[str]:
    return sorted(p.name for p in DataDir(data).cache_dir(run, subsystem).glob(f"*{CACHE_SUFFIX}"))


def views(data: Path, db, engine, links: list[str]) -> dict:
    """The whole run and each linked slice, as the web computes them."""
    slices = service(data, db, engine)
    out = {"cumulative": slices.view(RUN, "TPC", "cumulative")}
    for link in links:
        out[link] = slices.view(RUN, "TPC", link)
    return out


def link(start: float | None, end: float) -> str:
    return f"{'start' if start is None else int(start)}..{int(end)}"


# --------------------------------------------------------------------------- end of run


def test_copies_after_the_end_of_run_go_and_everything_else_stays(tmp_path, db, engine) -> None:
    data = tmp_path / "data"
    feed = Feed(data)
    kept = feed.write(5)
    feed.sim.stop_run()
    copies = [feed.copy(kept[-1] + 60.0 * k) for k in range(1, 5)]
    process(data, db, engine)
    assert len(chain_state(db)["snapshots"]) == 9

    links = [link(None, kept[0]), link(kept[0], kept[2]), link(kept[1], kept[4])]
    links.append(link(kept[3], kept[4]))
    before = views(data, db, engine, links)
    before_arrays = {name: histogram_arrays(v) for name, v in before.items()}
    before_trends = trends(data)
    sizes = {str(p.relative_to(data)): p.stat().st_size for p in data.rglob("*") if p.is_file()}

    report = prune(data, db, SETTINGS, apply_changes=True, checks=engine)

    (chain,) = report.chains
    assert (chain.snapshots, chain.kept, chain.removable) == (9, 5, 4)
    assert sorted(chain.heads) == copies and set(chain.heads.values()) == {kept[-1]}
    gone = set(sizes) - set(files_digest(data))
    assert len(gone) == 8  # 4 snapshot files, 4 cache files
    assert chain.bytes == sum(sizes[name] for name in gone)
    assert snapshot_files(data) == [snapshot_path(data, RUN, "TPC", t).name for t in kept]
    assert len(cache_files(data)) == 5

    state = chain_state(db)
    assert sorted(state["snapshots"]) == kept
    assert sorted(state["slices"]) == kept
    assert state["end"] == kept[-1] and state["start"] == kept[0]
    assert state["results"]["evaluated_at"] == kept[-1]  # results of the new newest slice

    after = views(data, db, engine, links)
    for name, view in before.items():
        assert_same_histograms(before_arrays[name], histogram_arrays(after[name]))
        assert after[name].analysis.annotations == view.analysis.annotations
    assert after["cumulative"].spec.end == kept[-1]
    latest = service(data, db, engine).view(RUN, "TPC", "latest")
    assert (latest.spec.start, latest.spec.end) == (kept[3], kept[4])
    assert_same_histograms(before_arrays[links[-1]], histogram_arrays(latest))
    assert state["results"]["quality"] == latest.analysis.quality
    assert_trends_kept(before_trends, trends(data), kept, copies)


def test_a_receiver_restart_copy_mid_run_goes_and_the_next_slice_keeps_its_content(
    tmp_path, db, engine
) -> None:
    data = tmp_path / "data"
    feed = Feed(data)
    first = feed.write(3)
    copy = feed.copy(first[-1] + 20.0)  # the receiver restarted and stored it again
    rest = feed.write(2)
    kept = first + rest
    process(data, db, engine)
    slices = service(data, db, engine)
    options = slices.named(RUN, "TPC", "latest").option_values
    across = SliceSpec.create(RUN, "TPC", copy, rest[0], options)  # from the copy
    empty = SliceSpec.create(RUN, "TPC", first[-1], copy, options)  # only repeated content
    for spec in (across, empty):
        slices.get(spec)
    assert {across.slice_id, empty.slice_id} <= chain_state(db)["requests"].keys()

    links = [link(first[-1], rest[0]), link(copy, rest[0]), link(first[0], rest[1])]
    before = {k: histogram_arrays(v) for k, v in views(data, db, engine, links).items()}
    before_across = histogram_arrays(slices.by_id(across.slice_id))
    before_trends = trends(data)
    rate_key = ("events", "event_rate")
    assert rate_key in before_trends

    report = prune(data, db, SETTINGS, apply_changes=True, checks=engine)

    assert report.chains[0].heads == {copy: first[-1]}
    state = chain_state(db)
    assert sorted(state["snapshots"]) == kept
    assert state["slices"][rest[0]] == (first[-1], rest[0])  # started at the copy before
    assert state["requests"][across.slice_id] == (first[-1], rest[0])
    assert empty.slice_id not in state["requests"]
    assert state["end"] == rest[-1]
    after = views(data, db, engine, links)
    for name, arrays in before.items():
        assert_same_histograms(arrays, histogram_arrays(after[name]))
    fresh = service(data, db, engine)  # another process: recomputed from the description
    assert_same_histograms(before_across, histogram_arrays(fresh.by_id(across.slice_id)))
    after_trends = trends(data)
    assert_trends_kept(before_trends, after_trends, kept, [copy])
    # The rate after the copy keeps the interval it was measured over (not recomputed).
    times, values = before_trends[rate_key]
    assert (
        after_trends[rate_key][1][list(after_trends[rate_key][0]).index(rest[0])]
        == (values[list(times).index(rest[0])])
    )


def test_identical_content_in_different_bytes_is_a_copy(tmp_path, db, engine) -> None:
    data = tmp_path / "data"
    first = [hist("events", [0, 1, 0]), hist("TPC/charge", [0, 1, 2, 0])]
    second = [hist("events", [0, 3, 0]), hist("TPC/charge", [0, 3, 4, 1])]
    paths = [write_snapshot(data, RUN, "TPC", T0, first),
             write_snapshot(data, RUN, "TPC", T0 + 60, second)]  # fmt: skip
    paths.append(snapshot_path(data, RUN, "TPC", T0 + 120))  # the same, in other bytes
    with uproot.recreate(paths[2], compression=uproot.LZMA(9)) as file:
        for h in second:
            file[h.name] = rootio.to_uproot(h)
    assert paths[1].read_bytes() != paths[2].read_bytes()
    process(data, db, engine)

    report = plan(data, db, SETTINGS)
    assert report.chains[0].heads == {T0 + 120: T0 + 60}
    assert not report.applied and paths[2].exists()
    prune(data, db, SETTINGS, apply_changes=True, checks=engine)
    assert not paths[2].exists() and paths[1].exists()
    assert sorted(chain_state(db)["snapshots"]) == [T0, T0 + 60]


def test_a_counter_reset_is_not_a_copy(tmp_path, db, engine) -> None:
    data = tmp_path / "data"
    counts = [[0, 10, 0], [0, 20, 0], [0, 5, 0], [0, 5, 0], [0, 20, 0]]
    times = [T0 + 60 * k for k in range(len(counts))]
    for ts, c in zip(times, counts, strict=True):
        write_snapshot(data, RUN, "TPC", ts, [hist("events", c)])
    process(data, db, engine)
    state = chain_state(db)
    assert state["segments"] == 2  # the drop to 5 reset the counter
    links = [link(times[1], times[2]), link(times[3], times[4]), link(times[2], times[4])]
    before = {k: histogram_arrays(v) for k, v in views(data, db, engine, links).items()}

    report = prune(data, db, SETTINGS, apply_changes=True, checks=engine)

    # Only the repeat after the reset goes: the reset itself, and 20 again after it, differ.
    assert report.chains[0].heads == {times[3]: times[2]}
    after_state = chain_state(db)
    assert sorted(after_state["snapshots"]) == [times[0], times[1], times[2], times[4]]
    assert after_state["segments"] == 2
    after = views(data, db, engine, links)
    for name, arrays in before.items():
        assert_same_histograms(arrays, histogram_arrays(after[name]))
    assert after["cumulative"].histograms["events"].values[1] == 40.0  # 20, reset, then 20


def test_an_ongoing_run_is_skipped_and_refused_when_named(tmp_path, engine) -> None:
    data = tmp_path / "data"
    start = float(int(time.time()) - 300)
    feed = Feed(data, run=7, start=start)
    feed.write(3)
    feed.sim.stop_run()
    feed.copy(start + 240.0)
    database = tmp_path / "ow.fs"
    db = open_db(f"file://{database}")
    try:
        process(data, db, engine)
        report = plan(data, db, SETTINGS)
        assert report.chains == [] and list(report.ongoing) == [7]
        assert "ongoing" in report.lines()[1]
        with pytest.raises(PruneError, match="ongoing"):
            plan(data, db, SETTINGS, runs=[7])
        # Once it ended (processing.ongoing_minutes later), the copy is found.
        later = plan(data, db, SETTINGS, now=start + 240.0 + 60 * SETTINGS.ongoing_minutes + 1)
        assert later.chains[0].removable == 1
    finally:
        db.close()
    files = files_digest(data)
    uri = f"file://{database}"
    assert cli.main(["db", "prune", "--data-dir", str(data), "--db", uri, "--runs", "7",
                     "--apply", "--force"]) == 2  # fmt: skip
    assert files_digest(data) == files


# --------------------------------------------------------------------------- the command


def test_dry_run_changes_nothing_and_apply_twice_is_idempotent(tmp_path, engine, capsys) -> None:
    data = tmp_path / "data"
    feed = Feed(data)
    kept = feed.write(4)
    feed.sim.stop_run()
    for k in range(1, 4):
        feed.copy(kept[-1] + 30.0 * k)
    database = tmp_path / "ow.fs"
    uri = f"file://{database}"
    db = open_db(uri)
    process(data, db, engine)
    slices = service(data, db, engine)
    options = slices.named(RUN, "TPC", "latest").option_values
    slices.get(SliceSpec.create(RUN, "TPC", kept[0], kept[-1] + 60.0, options))  # described
    state = chain_state(db)
    db.close()
    files = files_digest(data)
    command = ["db", "prune", "--data-dir", str(data), "--db", uri]

    assert cli.main(command) == 0
    out = capsys.readouterr().out
    assert "dry run: 3 of 7 snapshot(s) in 1 run(s)" in out
    assert f"{RUN}  TPC" in out
    assert files_digest(data) == files
    db = open_db(uri, read_only=True)
    assert chain_state(db) == state
    db.close()

    # Processing just recorded a pass: applying is refused until --force.
    assert cli.main([*command, "--apply"]) == 2
    assert "stop `overwatch process` first" in capsys.readouterr().err
    assert files_digest(data) == files

    assert cli.main([*command, "--apply", "--force"]) == 0
    out = capsys.readouterr().out
    assert "removed 3 of 7 snapshot(s) in 1 run(s)" in out
    once = files_digest(data)
    db = open_db(uri, read_only=True)
    pruned = chain_state(db)
    db.close()
    assert sorted(pruned["snapshots"]) == kept
    assert len(once) == len(files) - 6

    assert cli.main([*command, "--apply", "--force"]) == 0
    assert "removed 0 of 4 snapshot(s) in 0 run(s), 0 B freed" in capsys.readouterr().out
    assert files_digest(data) == once
    db = open_db(uri, read_only=True)
    assert chain_state(db) == pruned
    db.close()


def test_bad_runs_are_refused(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    uri = f"file://{tmp_path / 'ow.fs'}"
    command = ["db", "prune", "--data-dir", str(data), "--db", uri]
    assert cli.main([*command, "--runs", "1,x"]) == 2
    assert "invalid run number 'x'" in capsys.readouterr().err
    assert cli.main([*command, "--runs", "4"]) == 2
    assert "run(s) 4 unknown to the database" in capsys.readouterr().err
    assert cli.main(["db", "prune", "--data-dir", str(tmp_path / "nowhere"), "--db", uri]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert parse_runs(" 2, 1,2 ") == [1, 2]
    with pytest.raises(ValueError, match="needs run numbers"):
        parse_runs(",")


def test_a_snapshot_without_cache_is_not_compared_and_kept(tmp_path, db, engine) -> None:
    data = tmp_path / "data"
    feed = Feed(data)
    kept = feed.write(3)
    feed.sim.stop_run()
    copies = [feed.copy(kept[-1] + 60.0 * k) for k in range(1, 4)]
    process(data, db, engine)
    cache_dir = DataDir(data).cache_dir(RUN, "TPC")
    stem = snapshot_path(data, RUN, "TPC", copies[0]).name[: -len(".root")]
    (lost,) = cache_dir.glob(f"{stem}.*{CACHE_SUFFIX}")
    lost.unlink()

    report = plan(data, db, SETTINGS)

    # The first copy cannot be judged (no ROOT file is read for it), nor the second against it.
    (chain,) = report.chains
    assert chain.not_compared == 1
    assert chain.heads == {copies[2]: copies[1]}
    assert "1 not compared: cache missing" in "\n".join(report.lines())


def test_an_interrupted_apply_is_finished_by_the_next(tmp_path, db, engine, monkeypatch) -> None:
    data = tmp_path / "data"
    feed = Feed(data)
    kept = feed.write(3)
    feed.sim.stop_run()
    copies = [feed.copy(kept[-1] + 60.0 * k) for k in range(1, 3)]
    process(data, db, engine)

    def dying(*args, **kwargs):
        raise OSError("interrupted")

    monkeypatch.setattr(records, "remove_snapshots", dying)
    with pytest.raises(OSError, match="interrupted"):
        prune(data, db, SETTINGS, apply_changes=True, checks=engine)
    monkeypatch.undo()
    assert snapshot_files(data) == [snapshot_path(data, RUN, "TPC", t).name for t in kept]
    assert len(chain_state(db)["snapshots"]) == 5  # the records are still there
    service(data, db, engine).view(RUN, "TPC", "cumulative")  # and readable from the cache

    report = prune(data, db, SETTINGS, apply_changes=True, checks=engine)
    assert sorted(report.chains[0].heads) == copies
    assert sorted(chain_state(db)["snapshots"]) == kept
    assert len(cache_files(data)) == 3
    # A cache file left with neither record nor snapshot file is swept by the next apply.
    orphan = (
        DataDir(data).cache_dir(RUN, "TPC")
        / f"TPChists.2026_01_01_05_00_00.0123456789abcdef{CACHE_SUFFIX}"
    )
    orphan.write_bytes(b"")
    assert plan(data, db, SETTINGS).chains[0].orphans == [orphan]
    prune(data, db, SETTINGS, apply_changes=True, checks=engine)
    assert not orphan.exists() and len(cache_files(data)) == 3


# --------------------------------------------------------------------------- the pieces


def test_trend_store_drop_deletes_exactly_those_rows(tmp_path) -> None:
    directory = tmp_path / "trends"
    store = TrendStore(directory, chunk_rows=3)
    for k in range(8):
        values = {("a", "mean"): float(k), ("a", "std"): 10.0 + k}
        if k >= 5:
            values[("b", "mean")] = 100.0 + k  # a second layout from row 5 on
        store.append(T0 + k, values)
    reader = TrendStore(directory, readonly=True)
    assert len(reader) == 8  # opened before the drop, read after it

    assert store.drop([T0 + 1, T0 + 2, T0 + 6, T0 + 99]) == 3

    times, values = reader.series("a", "mean")
    assert list(times) == [T0 + k for k in (0, 3, 4, 5, 7)]
    assert list(values) == [0.0, 3.0, 4.0, 5.0, 7.0]
    assert list(reader.series("b", "mean")[1]) == [105.0, 107.0]
    assert list(TrendStore(directory, readonly=True).series("a", "std")[1]) == [
        10.0, 13.0, 14.0, 15.0, 17.0,
    ]  # fmt: skip
    assert store.drop([T0 + 1]) == 0  # idempotent
    store.append(T0 + 8, {("a", "mean"): 8.0, ("a", "std"): 18.0, ("b", "mean"): 108.0})
    assert list(reader.series("a", "mean")[0])[-1] == T0 + 8
    assert store.drop([T0 + 5, T0 + 7, T0 + 8]) == 3  # every row of the second layout
    assert list(reader.series("b", "mean")[0]) == []
    assert len(TrendStore(directory)) == 3
    with pytest.raises(TrendStoreError):
        reader.drop([T0])


def test_remove_snapshots_moves_what_referred_to_them(tmp_path, db, engine) -> None:
    data = tmp_path / "data"
    times = [T0 + 60 * k for k in range(4)]
    contents = [[0, 1, 0], [0, 2, 0], [0, 2, 0], [0, 3, 0]]
    for ts, c in zip(times, contents, strict=True):
        histograms = [hist("events", c)]
        if ts == times[2]:  # the copy is the last snapshot with "gone": it leaves after it
            histograms.append(hist("gone", [0, 1, 0]))
        write_snapshot(data, RUN, "TPC", ts, histograms)
    process(data, db, engine)

    def add_error(root) -> None:
        from overwatch.store.models import HistogramError

        sub = root["overwatch"].runs[RUN].subsystems["TPC"]
        sub.add_error(HistogramError("events", times[2], "noted at the copy"))

    transact(db, add_error)
    # Not a copy (its layout differs): removed here by hand to test the record function alone.
    assert records.remove_snapshots(db, RUN, "TPC", {times[2]: times[1]}) == 1
    assert records.remove_snapshots(db, RUN, "TPC", {times[2]: times[1]}) == 0
    state = chain_state(db)
    assert sorted(state["snapshots"]) == [times[0], times[1], times[3]]
    assert state["slices"][times[3]] == (times[1], times[3])
    assert state["histograms"]["gone"][1] == times[1]

    def errors(ow):
        return [e.message for e in ow.runs[RUN].subsystems["TPC"].errors]

    assert "noted at the copy" not in read(db, errors)
