"""Time slices: interval snapping, reset arithmetic, and SliceReader against plain uproot."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db
from processing.ingest.cache import CachedSnapshot
from processing.ingest.cache_layout import Layout
from processing.ingest.resets import advance, align
from processing.pipeline import Pipeline
from processing.slices.reader import (
    SliceRangeError,
    SliceReader,
    UnknownHistogram,
    UnknownRun,
    UnknownSubsystem,
    snap_interval,
)
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0, assert_matches, independent_slice, write_snapshot

# -- interval rules ---------------------------------------------------------------------

TIMES = [100.0, 160.0, 220.0, 280.0]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, 280.0, (None, 280.0)),
        (0.0, 250.0, (None, 220.0)),  # before the first snapshot: from the run start
        (100.0, 280.0, (None, 280.0)),  # at the first snapshot: from the run start too
        (130.0, 279.0, (100.0, 220.0)),  # both ends snap down to snapshots
        (160.0, 1e9, (160.0, 280.0)),  # an end after the run snaps to the last snapshot
    ],
)
def test_interval_snaps_to_snapshots(start, end, expected) -> None:
    assert snap_interval(TIMES, start, end) == expected


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (200.0, 150.0, "must be before end"),
        (200.0, 200.0, "must be before end"),
        (0.0, 50.0, "before the first snapshot"),
        (290.0, 400.0, "no snapshot between"),  # starts after the last snapshot
        (170.0, 200.0, "no snapshot between"),  # both ends snap to the same snapshot
    ],
)
def test_bad_intervals_are_refused_with_a_reason(start, end, message) -> None:
    with pytest.raises(SliceRangeError, match=message):
        snap_interval(TIMES, start, end)


# -- reset arithmetic ---------------------------------------------------------------------


def one(name: str, counts, class_name: str = "TH1D", edges=None) -> Histogram:
    counts = np.asarray(counts, dtype=np.float64)
    axis = Axis.from_edges(edges) if edges is not None else Axis.regular(len(counts) - 2, 0, 1)
    h = Histogram.empty(name, [axis], class_name)
    h.values = np.asfortranarray(counts)
    h.entries = float(counts.sum())
    h.stats = h.compute_stats()
    return h


def state_of(histograms, ts: float, previous: CachedSnapshot | None, tolerance=1e-6):
    layout = Layout.of(histograms)
    aligned = align(layout, previous)
    result = advance(layout, layout.pack(histograms), aligned, tolerance)
    return CachedSnapshot(ts, layout, result.eff, result.off), result, aligned


def test_counter_reset_starts_a_new_segment_and_slices_stay_positive() -> None:
    first, _, _ = state_of([one("a", [0, 5, 5, 0]), one("b", [0, 1, 1, 0])], 1, None)
    second, r2, _ = state_of([one("a", [0, 9, 8, 0]), one("b", [0, 2, 2, 0])], 2, first)
    assert r2.resets == [] and r2.off is None
    # "a" restarts from zero (sender restarted); "b" goes on.
    third, r3, _ = state_of([one("a", [0, 1, 2, 0]), one("b", [0, 3, 3, 0])], 3, second)
    assert r3.resets == ["a"]
    a3 = third.layout.histogram(third.eff, "a")
    np.testing.assert_array_equal(a3.values, [0, 10, 10, 0])  # 9+1, 8+2: effective cumulative
    assert a3.entries == 17 + 3
    slice_23 = a3 - second.layout.histogram(second.eff, "a")
    np.testing.assert_array_equal(slice_23.values, [0, 1, 2, 0])  # what arrived since
    # The offset is carried on, so the next snapshot continues the new segment.
    fourth, r4, _ = state_of([one("a", [0, 4, 2, 0]), one("b", [0, 3, 4, 0])], 4, third)
    assert r4.resets == []
    np.testing.assert_array_equal(fourth.layout.histogram(fourth.eff, "a").values, [0, 13, 10, 0])
    np.testing.assert_array_equal(fourth.layout.histogram(fourth.off, "a").values, [0, 9, 8, 0])


def test_rounding_below_tolerance_is_not_a_reset_and_never_negative() -> None:
    first, _, _ = state_of([one("a", [0, 1e7, 5, 0])], 1, None)
    second, result, _ = state_of([one("a", [0, 1e7 - 1e-3, 6, 0])], 2, first)
    assert result.resets == [] and result.off is None
    values = second.layout.histogram(second.eff, "a").values
    assert values[1] == 1e7 and values[2] == 6  # the rounding dip keeps the previous value


def test_binning_change_is_reported_and_restarts_that_histogram_only() -> None:
    first, _, _ = state_of([one("a", [0, 5, 5, 0]), one("b", [0, 1, 1, 0])], 1, None)
    changed = one("a", [0, 1, 1, 1, 0], edges=[0, 1, 2, 3])
    second, result, aligned = state_of([changed, one("b", [0, 2, 3, 0])], 2, first)
    assert list(aligned.incompatible) == ["a"]
    assert "binning changed" in aligned.incompatible["a"]
    np.testing.assert_array_equal(second.layout.histogram(second.eff, "a").values, [0, 1, 1, 1, 0])
    assert result.resets == []


def test_a_histogram_missing_for_a_while_continues_from_its_last_state() -> None:
    first, _, _ = state_of([one("a", [0, 5, 5, 0]), one("b", [0, 1, 1, 0])], 1, None)
    second, _, _ = state_of([one("b", [0, 2, 2, 0])], 2, first)
    layout = Layout.of([one("a", [0, 6, 6, 0]), one("b", [0, 3, 3, 0])])
    aligned = align(layout, second, lambda wanted: [first] if "a" in wanted else [])
    assert aligned.present.all()
    np.testing.assert_array_equal(layout.histogram(aligned.eff, "a").values, [0, 5, 5, 0])


# -- SliceReader on simulated data ---------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Six snapshots a minute apart of EMC and HLT (profiles), processed."""
    data = tmp_path_factory.mktemp("data")
    simulator = DetectorSimulator(["EMC", "HLT"], run=7, seed=3, start_time=T0, event_rate=200)
    files: dict[str, list] = {"EMC": [], "HLT": []}
    for minute in range(6):
        simulator.advance(60)
        for subsystem in files:
            ts = T0 + 60 * (minute + 1)
            snapshot = simulator.snapshot(subsystem)
            files[subsystem].append((ts, write_snapshot(data, 7, subsystem, ts, snapshot.values())))
    db = open_db("memory://")
    report = Pipeline(data, db).run_until_idle()
    assert report.processed == 12 and not report.failed
    yield data, db, files
    db.close()


def test_every_slice_equals_plain_uproot_subtraction(simulated) -> None:
    data, db, files = simulated
    reader = SliceReader(data, db)
    for subsystem, snapshots in files.items():
        assert reader.snapshot_times(7, subsystem) == [ts for ts, _ in snapshots]
        for i in range(-1, len(snapshots) - 1):
            for j in range(i + 1, len(snapshots)):
                start = None if i < 0 else snapshots[i][0]
                first = None if i < 0 else snapshots[i][1]
                if start is not None and i == 0:
                    # the first snapshot itself as a start means the run start; use slice_between
                    result = reader.slice_between(7, subsystem, start, snapshots[j][0])
                else:
                    result = reader.slice(7, subsystem, start, snapshots[j][0])
                assert len(result) == len(reader.histogram_paths(7, subsystem))
                for path, histogram in result.items():
                    assert_matches(histogram, independent_slice(first, snapshots[j][1], path))


def test_profile_slice_means_are_the_means_of_what_arrived(simulated) -> None:
    data, db, files = simulated
    reader = SliceReader(data, db)
    (t1, f1), (t4, f4) = files["HLT"][1], files["HLT"][4]
    profiles = [p for p, c in reader.histogram_paths(7, "HLT") if c.startswith("TProfile")]
    assert profiles
    for path in profiles:
        got = reader.slice(7, "HLT", t1, t4, [path])[path]
        expected = independent_slice(f1, f4, path)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(
                expected["bin_entries"] != 0, expected["values"] / expected["bin_entries"], 0.0
            )
        np.testing.assert_allclose(got.bin_means(), means, rtol=1e-12)


def test_cumulative_latest_slice_and_subsets(simulated) -> None:
    data, db, files = simulated
    reader = SliceReader(data, db)
    (t4, f4), (t5, f5) = files["EMC"][4], files["EMC"][5]
    paths = [p for p, _ in reader.histogram_paths(7, "EMC")]
    assert "EMCTrigger/events" in paths
    for path in paths[:5]:
        assert_matches(reader.cumulative(7, "EMC", path), independent_slice(None, f5, path))
        assert_matches(reader.latest_slice(7, "EMC", path), independent_slice(f4, f5, path))
    full = reader.slice(7, "EMC", t4, t5)
    subset = reader.slice(7, "EMC", t4, t5, paths[:3])
    assert list(subset) == paths[:3]
    for path in subset:
        np.testing.assert_array_equal(subset[path].values, full[path].values)
        assert subset[path].stats == full[path].stats


def test_slices_carry_subtracted_running_sums(simulated) -> None:
    data, db, files = simulated
    reader = SliceReader(data, db)
    (t2, _), (t5, _) = files["EMC"][2], files["EMC"][5]
    whole_5 = reader.slice(7, "EMC", None, t5)
    whole_2 = reader.slice(7, "EMC", None, t2)
    piece = reader.slice(7, "EMC", t2, t5)
    for path, h in piece.items():
        for name, value in h.stats.items():
            assert value == pytest.approx(whole_5[path].stats[name] - whole_2[path].stats[name])


def test_unknown_names_raise_lookup_errors_that_say_what(simulated) -> None:
    data, db, files = simulated
    reader = SliceReader(data, db)
    with pytest.raises(UnknownRun, match="run 99"):
        reader.snapshot_times(99, "EMC")
    with pytest.raises(UnknownSubsystem, match="'TPC'.*EMC, HLT"):
        reader.cumulative(7, "TPC", "events")
    with pytest.raises(UnknownHistogram, match="no/such"):
        reader.latest_slice(7, "EMC", "no/such")
    with pytest.raises(UnknownHistogram, match="nope"):
        reader.slice(7, "EMC", None, files["EMC"][-1][0], ["nope"])
    assert all(issubclass(e, LookupError) for e in (UnknownRun, UnknownSubsystem, UnknownHistogram))
    with pytest.raises(SliceRangeError):
        reader.slice(7, "EMC", files["EMC"][3][0], files["EMC"][1][0])


def test_version_changes_when_a_snapshot_is_processed(tmp_path) -> None:
    db = open_db("memory://")
    h = one("events", [0, 1, 0])
    write_snapshot(tmp_path, 1, "TPC", T0, [h])
    pipeline = Pipeline(tmp_path, db)
    pipeline.run_pass()
    reader = SliceReader(tmp_path, db)
    before = reader.version(1, "TPC")
    assert reader.version(1, "TPC") == before
    write_snapshot(tmp_path, 1, "TPC", T0 + 60, [one("events", [0, 2, 0])])
    pipeline.run_pass({(1, "TPC")})
    assert reader.version(1, "TPC") != before
    assert reader.latest_slice(1, "TPC", "events").values[1] == 1
