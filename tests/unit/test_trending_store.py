"""TrendStore: chunked append-only rows on disk, layouts, idempotence, crashes, restarts."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from processing.analysis.trend_store import TrendStore, TrendStoreError

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def row(paths: list[str], t: float, names=("mean", "entries")) -> dict[tuple[str, str], float]:
    """A row whose value for (path, name) encodes both, so any misplaced value shows."""
    return {
        (path, name): t - T0 + 1000 * p + 0.5 * n
        for p, path in enumerate(paths)
        for n, name in enumerate(names)
    }


def expected(paths: list[str], path: str, name: str, times) -> np.ndarray:
    return np.array([row(paths, t)[(path, name)] for t in times])


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_append_series_last_across_chunks(tmp_path):
    store = TrendStore(tmp_path / "trends", chunk_rows=4)
    paths = ["SM00/amp", "dir/with space/h"]
    times = [T0 + 10 * i for i in range(11)]
    for t in times:
        assert store.append(t, row(paths, t)) is True
    chunks = sorted(p.name for p in (tmp_path / "trends").glob("*.f64"))
    assert len(chunks) == 3  # 4 + 4 + 3 rows
    assert len(store) == 11
    for path in paths:
        for name in ("mean", "entries"):
            t, v = store.series(path, name)
            np.testing.assert_array_equal(t, times)
            np.testing.assert_array_equal(v, expected(paths, path, name, times))
    t, v = store.last("dir/with space/h", "entries", 6)  # spans the last two chunks
    np.testing.assert_array_equal(t, times[-6:])
    np.testing.assert_array_equal(v, expected(paths, "dir/with space/h", "entries", times[-6:]))
    t, v = store.last("SM00/amp", "mean", 100)
    np.testing.assert_array_equal(t, times)
    assert store.last("SM00/amp", "mean", 0)[0].size == 0
    t, v = store.series("SM00/amp", "mean", start=times[3], end=times[5])
    np.testing.assert_array_equal(t, times[3:6])
    for unknown in (("SM00/amp", "nope"), ("missing", "mean")):
        t, v = store.series(*unknown)
        assert t.size == 0 and v.size == 0 and t.dtype == np.float64
        assert store.last(*unknown, 5)[0].size == 0
    assert store.names() == [(p, n) for p in paths for n in ("mean", "entries")]
    np.testing.assert_array_equal(store.times(), times)
    assert store.last_time() == times[-1]


def test_rows_are_timestamp_then_values_as_float64(tmp_path):
    store = TrendStore(tmp_path, chunk_rows=8)
    store.append(T0, {("h", "mean"): 1.5, ("h", "std"): 2.0})
    store.append(T0 + 1, {("h", "mean"): 3.0, ("h", "std"): 4.0})
    (layout,) = tmp_path.glob("*.json")
    columns = json.loads(layout.read_text())["columns"]
    assert columns == [["h", "mean"], ["h", "std"]]
    (chunk,) = tmp_path.glob("*.f64")
    assert chunk.name.startswith(layout.stem + ".")
    data = np.fromfile(chunk, dtype="<f8").reshape(-1, 3)
    np.testing.assert_array_equal(data, [[T0, 1.5, 2.0], [T0 + 1, 3.0, 4.0]])


def test_histogram_appearing_and_disappearing(tmp_path):
    directory = tmp_path / "trends"
    store = TrendStore(directory, chunk_rows=3)
    early = ["a", "b", "c"]
    times = [T0 + i for i in range(12)]
    for i, t in enumerate(times):
        paths = early + (["late"] if i >= 4 else [])  # "late" appears at row 4
        if i >= 8:
            paths = [p for p in paths if p != "b"]  # "b" disappears at row 8
        store.append(t, row(paths, t) if i < 8 else _renumbered(paths, early + ["late"], t))
    layouts = sorted(p.name for p in directory.glob("*.json"))
    # One layout more when "late" appears; "b" vanishing reuses that layout (its cells absent).
    assert len(layouts) == 2
    t, v = store.series("late", "mean")
    np.testing.assert_array_equal(t, times[4:])
    t, v = store.series("b", "entries")
    np.testing.assert_array_equal(t, times[:8])
    np.testing.assert_array_equal(
        v,
        expected(early, "b", "entries", times[:4]).tolist()
        + expected(early + ["late"], "b", "entries", times[4:8]).tolist(),
    )
    t, _ = store.series("a", "mean")
    np.testing.assert_array_equal(t, times)
    # The last points of a series that stopped are its last real points, not absent cells.
    t, v = store.last("b", "mean", 5)
    np.testing.assert_array_equal(t, times[3:8])
    assert set(store.names()) == {(p, n) for p in early + ["late"] for n in ("mean", "entries")}


def _renumbered(paths, numbering, t):
    """Values numbered as in ``numbering`` so a histogram keeps its values when others go."""
    full = row(numbering, t)
    return {key: value for key, value in full.items() if key[0] in paths}


def test_mass_disappearance_starts_a_smaller_layout(tmp_path):
    store = TrendStore(tmp_path)
    everything = [f"h{i}" for i in range(10)]
    store.append(T0, row(everything, T0))
    store.append(T0 + 1, _renumbered(everything[:3], everything, T0 + 1))
    assert len(list(tmp_path.glob("*.json"))) == 2  # 14 of 20 columns absent: a new layout
    np.testing.assert_array_equal(store.series("h9", "mean")[0], [T0])
    np.testing.assert_array_equal(store.series("h1", "mean")[0], [T0, T0 + 1])


def test_same_timestamp_replaces_the_point(tmp_path):
    store = TrendStore(tmp_path)
    store.append(T0, {("h", "mean"): 1.0})
    store.append(T0 + 5, {("h", "mean"): 2.0})
    assert store.append(T0 + 5, {("h", "mean"): 3.0}) is True
    t, v = store.series("h", "mean")
    np.testing.assert_array_equal(t, [T0, T0 + 5])
    np.testing.assert_array_equal(v, [1.0, 3.0])
    # Replaced with a different set of values: the old row goes, the new layout holds it.
    assert store.append(T0 + 5, {("h", "mean"): 4.0, ("new", "mean"): 7.0})
    np.testing.assert_array_equal(store.series("h", "mean")[1], [1.0, 4.0])
    np.testing.assert_array_equal(store.series("new", "mean")[0], [T0 + 5])


def test_older_timestamp_is_refused_with_a_warning(tmp_path, caplog):
    store = TrendStore(tmp_path)
    store.append(T0 + 10, {("h", "mean"): 1.0})
    with caplog.at_level(logging.WARNING, logger="processing.analysis.trend_store"):
        assert store.append(T0 + 5, {("h", "mean"): 2.0}) is False
    assert "refused" in caplog.text and store.refused == 1
    np.testing.assert_array_equal(store.series("h", "mean")[0], [T0 + 10])


def test_nan_and_inf_are_stored_as_nan(tmp_path):
    store = TrendStore(tmp_path)
    store.append(T0, {("h", "mean"): float("nan"), ("h", "std"): 1.0})
    store.append(T0 + 1, {("h", "mean"): math.inf, ("h", "std"): -math.inf})
    store.append(T0 + 2, {("h", "mean"): 2.0, ("h", "std"): np.float32(0.5)})
    t, v = store.series("h", "mean")
    np.testing.assert_array_equal(t, [T0, T0 + 1, T0 + 2])  # NaN points are kept, not absent
    assert np.isnan(v[:2]).all() and v[2] == 2.0
    assert np.isnan(store.series("h", "std")[1][1])
    assert np.isnan(store.last("h", "mean", 3)[1][:2]).all()


def test_partial_last_row_is_dropped_and_appending_continues(tmp_path):
    directory = tmp_path / "trends"
    store = TrendStore(directory, chunk_rows=3)
    paths = ["a", "b"]
    times = [T0 + i for i in range(5)]
    for t in times:
        store.append(t, row(paths, t))
    (last_chunk,) = [p for p in directory.glob("*.f64") if p.stat().st_size < 3 * 5 * 8]
    size = last_chunk.stat().st_size
    os.truncate(last_chunk, size - 13)  # killed in the middle of writing the last row

    reader = TrendStore(directory, readonly=True)
    np.testing.assert_array_equal(reader.series("a", "mean")[0], times[:4])
    assert last_chunk.stat().st_size == size - 13  # a reader never modifies files

    leftover = directory / f".{last_chunk.name}.x1y2.tmp"  # a copy the crash interrupted
    leftover.write_bytes(b"half a copy")
    writer = TrendStore(directory, chunk_rows=3)
    assert last_chunk.stat().st_size == size - 5 * 8  # the partial row is gone
    assert not leftover.exists()
    np.testing.assert_array_equal(writer.series("b", "entries")[0], times[:4])
    writer.append(times[4], row(paths, times[4]))  # the pipeline recomputes the lost point
    writer.append(T0 + 9, row(paths, T0 + 9))
    t, v = TrendStore(directory, readonly=True).series("b", "entries")
    np.testing.assert_array_equal(t, times + [T0 + 9])
    np.testing.assert_array_equal(v, expected(paths, "b", "entries", t))


def test_zero_filled_tail_after_power_loss_is_dropped(tmp_path):
    store = TrendStore(tmp_path)
    for i in range(3):
        store.append(T0 + i, {("h", "mean"): float(i)})
    (chunk,) = tmp_path.glob("*.f64")
    with open(chunk, "ab") as stream:
        stream.write(bytes(2 * 2 * 8))  # two rows of zeros: size extended, data never written
    assert len(TrendStore(tmp_path, readonly=True)) == 5
    repaired = TrendStore(tmp_path)
    np.testing.assert_array_equal(repaired.series("h", "mean")[1], [0.0, 1.0, 2.0])
    assert chunk.stat().st_size == 3 * 2 * 8


def test_separate_store_objects_continue_the_series(tmp_path):
    """Every pass, restart or process may open its own store: none may stop the trend."""
    directory = tmp_path / "trends"
    reader = TrendStore(directory, readonly=True)  # opened before anything exists
    stores = [TrendStore(directory, chunk_rows=2) for _ in range(3)]
    times = [T0 + i for i in range(9)]
    for i, t in enumerate(times):
        paths = ["a"] + (["b"] if i >= 4 else [])
        stores[i % 3].append(t, row(paths, t))  # stale objects take turns
    t, _ = TrendStore(directory, chunk_rows=2).series("a", "mean")
    np.testing.assert_array_equal(t, times)
    np.testing.assert_array_equal(reader.series("a", "mean")[0], times)
    np.testing.assert_array_equal(reader.series("b", "entries")[0], times[4:])
    np.testing.assert_array_equal(reader.last("a", "entries", 3)[0], times[-3:])
    # A stale object asked to append an old point refuses it instead of writing out of order.
    assert stores[0].append(times[2], row(["a"], times[2])) is False


def test_rebuilding_in_time_order_reproduces_the_files(tmp_path):
    directory = tmp_path / "trends"
    sequence = []
    for i in range(10):
        paths = ["a", "b"] + (["c"] if 3 <= i < 7 else []) + (["d"] if i >= 5 else [])
        sequence.append((T0 + 60 * i, _renumbered(paths, ["a", "b", "c", "d"], T0 + 60 * i)))
    # Live: restarts, and a snapshot processed twice after a crash (first with stale values).
    TrendStore(directory, chunk_rows=3).append(sequence[0][0], {("a", "mean"): -1.0})
    for i, (t, values) in enumerate(sequence):
        TrendStore(directory, chunk_rows=3).append(t, values) if i % 4 == 0 else None
        store = TrendStore(directory, chunk_rows=3)
        store.append(t, values)
    live = files(directory)
    live_series = {key: store.series(*key) for key in store.names()}

    shutil.rmtree(directory)
    rebuilt = TrendStore(directory, chunk_rows=3)
    for t, values in sequence:
        rebuilt.append(t, values)
    assert files(directory) == live
    assert rebuilt.names() == list(live_series)
    for key, (t, v) in live_series.items():
        rt, rv = rebuilt.series(*key)
        np.testing.assert_array_equal(rt, t)
        np.testing.assert_array_equal(rv, v)


def test_rewind_then_insert_a_late_point(tmp_path):
    directory = tmp_path / "trends"
    store = TrendStore(directory, chunk_rows=2)
    for i in range(8):
        paths = ["a"] + (["b"] if i >= 5 else [])
        store.append(T0 + 10 * i, row(paths, T0 + 10 * i))
    assert len(list(directory.glob("*.json"))) == 2
    reader = TrendStore(directory, readonly=True).window(8)
    assert reader[("a", "mean")][0].size == 8  # the reader now maps the chunk files
    cut = sorted(directory.glob("*.f64"))[1]  # rows T0+20 (kept) and T0+30 (dropped)
    inode = cut.stat().st_ino
    # A snapshot at T0+25 arrives late: rewind to it, append it and the later ones again.
    assert store.rewind(T0 + 25) == 5
    # Rows are dropped by writing a new file, never by truncating a file a reader maps.
    assert cut.stat().st_ino != inode and cut.stat().st_size == 3 * 8  # one row of 3
    np.testing.assert_array_equal(reader[("a", "entries")][0], [T0 + 10 * i for i in range(8)])
    assert len(list(directory.glob("*.json"))) == 1  # the layout of "b" has no rows left
    assert store.last_time() == T0 + 20
    later = [T0 + 25] + [T0 + 10 * i for i in range(3, 8)]
    for t in later:
        store.append(t, row(["a"], t))
    t, v = TrendStore(directory, readonly=True).series("a", "mean")
    np.testing.assert_array_equal(t, [T0, T0 + 10, T0 + 20] + later)
    assert store.series("b", "mean")[0].size == 0
    assert store.rewind(T0 + 1000) == 0


def test_rebuild_mode_starts_fresh_and_keeps_other_files(tmp_path):
    store = TrendStore(tmp_path)
    store.append(T0 + 100, {("h", "mean"): 1.0})
    (tmp_path / "notes.txt").write_text("operator notes")
    fresh = TrendStore(tmp_path, rebuild=True)
    assert fresh.names() == [] and len(fresh) == 0
    assert fresh.append(T0, {("h", "mean"): 5.0})  # earlier than before: fine after a rebuild
    np.testing.assert_array_equal(fresh.series("h", "mean")[1], [5.0])
    assert (tmp_path / "notes.txt").read_text() == "operator notes"
    with pytest.raises(ValueError, match="read-only"):
        TrendStore(tmp_path, readonly=True, rebuild=True)


def test_bad_input_is_refused_and_loses_nothing(tmp_path):
    store = TrendStore(tmp_path)
    store.append(T0, {("h", "mean"): 1.0})
    before = files(tmp_path)
    with pytest.raises(TypeError, match=r"\('h', 'mean'\).*'abc'"):
        store.append(T0 + 1, {("h", "mean"): "abc"})
    with pytest.raises(TypeError, match="histogram path, value name"):
        store.append(T0 + 1, {"h/mean": 1.0})
    with pytest.raises(TypeError, match="histogram path, value name"):
        store.append(T0 + 1, {("h", 3): 1.0})
    with pytest.raises(ValueError, match="finite"):
        store.append(float("nan"), {("h", "mean"): 1.0})
    assert store.append(T0 + 1, {}) is False
    assert files(tmp_path) == before
    store.append(T0 + 2, {("h", "mean"): 2.0})
    np.testing.assert_array_equal(store.series("h", "mean")[1], [1.0, 2.0])
    with pytest.raises(TrendStoreError, match="read-only"):
        TrendStore(tmp_path, readonly=True).append(T0 + 3, {("h", "mean"): 3.0})
    with pytest.raises(ValueError, match="chunk_rows"):
        TrendStore(tmp_path, chunk_rows=0)


def test_unreadable_layout_is_skipped_with_a_warning(tmp_path, caplog):
    store = TrendStore(tmp_path)
    store.append(T0, {("a", "mean"): 1.0})
    store.append(T0 + 1, {("a", "mean"): 2.0, ("b", "mean"): 3.0})
    first = sorted(tmp_path.glob("*.json"))[0]
    first.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="processing.analysis.trend_store"):
        reopened = TrendStore(tmp_path)
    assert "unreadable trend layout" in caplog.text and first.name in caplog.text
    np.testing.assert_array_equal(reopened.series("a", "mean")[1], [2.0])  # the rest is read
    reopened.append(T0 + 2, {("a", "mean"): 4.0})
    np.testing.assert_array_equal(reopened.series("a", "mean")[1], [2.0, 4.0])
    assert first.read_text() == "{not json"  # left for the operator to look at


def test_window_maps_every_series_to_its_last_points(tmp_path):
    store = TrendStore(tmp_path, chunk_rows=3)
    for i in range(7):
        paths = ["a"] + (["b"] if i >= 5 else [])
        store.append(T0 + i, row(paths, T0 + i))
    window = store.window(4)
    assert set(window) == {(p, n) for p in "ab" for n in ("mean", "entries")}
    assert len(window) == 4 and ("a", "mean") in window and ("c", "mean") not in window
    assert window.get(("c", "mean")) is None
    for key in window:
        t, v = window[key]
        rt, rv = store.last(*key, 4)
        np.testing.assert_array_equal(t, rt)
        np.testing.assert_array_equal(v, rv)
    np.testing.assert_array_equal(window[("b", "entries")][0], [T0 + 5, T0 + 6])
    with pytest.raises(KeyError):
        window[("c", "mean")]


def test_fsync_mode_writes_the_same_rows(tmp_path):
    synced = TrendStore(tmp_path / "synced", fsync=True, chunk_rows=2)
    plain = TrendStore(tmp_path / "plain", chunk_rows=2)
    for i in range(5):
        synced.append(T0 + i, row(["h"], T0 + i))
        plain.append(T0 + i, row(["h"], T0 + i))
    assert files(tmp_path / "synced") == files(tmp_path / "plain")
