"""On-demand time slices (processing.slices.service, processing.slices.spec, ``overwatch slice``).

A simulated run (EMC with two hot cells, TPC, HLT; four snapshots a minute
apart) is processed for real; slices are checked bin by bin against an
independent computation from the snapshot files (plain uproot + numpy,
``tests.processing_helpers``), and the plugin's results against the finder
and formulas called directly. Other test modules import :func:`simulate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from overwatch import cli
from overwatch.plugins import load_plugin
from overwatch.store.db import open_db, overwatch_root, read, transact
from processing.analysis.live import load_engine
from processing.detectors.hot_channels import find_hot_cells
from processing.pipeline import Pipeline
from processing.slices.reader import UnknownRun, UnknownSubsystem
from processing.slices.service import SliceService, UnknownSlice
from processing.slices.spec import (
    CLI_LABELS,
    BadSliceLink,
    SliceRequestError,
    SliceSpec,
    parse_link,
    spec_from_link,
)
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0, assert_matches, independent_slice, write_snapshot

RUN = 5
STEP = 60.0
#: Two hot EMC cells: 20x the rate (hot at threshold 5, not at 50) and 300x (hot at both).
HOT_FAULTS = [
    {"kind": "hot_channel", "subsystem": "EMC", "cell": [3, 10, 5], "factor": 20},
    {"kind": "hot_channel", "subsystem": "EMC", "cell": [7, 30, 12], "factor": 300},
]
CELL_MAP = "EMCal/SM{:02d}/cellHits"


def simulate(
    data_dir: Path,
    *,
    run: int = RUN,
    snapshots: int = 4,
    start: float = T0,
    subsystems: tuple[str, ...] = ("EMC", "TPC", "HLT"),
    histograms: int = 0,
    simulator: DetectorSimulator | None = None,
) -> tuple[DetectorSimulator, dict[str, list[Path]]]:
    """Snapshots every STEP seconds (snapshot k at minute k of the run); processing not run."""
    sim = simulator or DetectorSimulator(
        list(subsystems), run=run, seed=7, start_time=start, faults=HOT_FAULTS, tick=5.0,
        histograms=histograms,
    )  # fmt: skip
    files: dict[str, list[Path]] = {name: [] for name in sim.subsystems}
    for _ in range(snapshots):
        sim.advance(STEP)
        for name in sim.subsystems:
            written = write_snapshot(data_dir, run, name, sim.now, sim.snapshot(name).values())
            files[name].append(written)
    return sim, files


def process(data_dir: Path, db) -> None:
    report = Pipeline(data_dir, db, checks=load_engine()).run_until_idle()
    assert not report.failed and not report.bad, report


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data = tmp_path_factory.mktemp("ondemand")
    _sim, files = simulate(data)
    uri = f"file://{data / 'meta.fs'}"
    db = open_db(uri)
    try:
        process(data, db)
    finally:
        db.close()
    return data, uri, files


@pytest.fixture
def db(site):
    database = open_db(site[1])
    yield database
    database.close()


@pytest.fixture
def service(site, db):
    return SliceService(site[0], db, max_entries=4)


def minute(k: float) -> float:
    return T0 + STEP * (k + 1)  # snapshot k (0-based) is at minute k of the run


# --------------------------------------------------------------------------- contents


@pytest.mark.parametrize("subsystem", ["EMC", "TPC", "HLT"])
@pytest.mark.parametrize(("start", "end", "first", "last"), [(1, 3, 1, 3), (0, 2, None, 2)])
def test_slices_equal_independent_subtraction_bin_by_bin(
    site, service, subsystem, start, end, first, last
) -> None:
    files = site[2][subsystem]
    spec = service.validate(RUN, subsystem, start=start, end=end)
    assert (spec.start, spec.end) == (None if first is None else minute(first), minute(last))
    result = service.get(spec)
    with uproot.open(files[last]) as end_file:
        raw = [
            k.rsplit(";", 1)[0]
            for k, c in end_file.classnames().items()
            if c.startswith(("TH", "TProfile"))
        ]
        assert [p for p, c in result.paths if p not in result.derived and c != "THStack"] == raw
        if first is None:
            for path in raw:
                assert_matches(result.histograms[path], independent_slice(None, end_file, path))
        else:
            with uproot.open(files[first]) as start_file:
                for path in raw:
                    expected = independent_slice(start_file, end_file, path)
                    assert_matches(result.histograms[path], expected)
    assert result.left_out == [] and result.errors == []


def test_derived_histograms_follow_the_slice(site, service) -> None:
    """TPC projections and HLT rates of the slice, against numpy on the independent arrays."""
    tpc = service.get(service.validate(RUN, "TPC", start=1, end=3))
    files = site[2]["TPC"]
    cube = independent_slice(files[1], files[3], "TPC/trackPtEtaPhi")["values"]
    projected = tpc.histograms["TPC/trackPtEtaPhi_px"].values
    np.testing.assert_allclose(projected, cube.sum(axis=(1, 2)))
    hlt = service.get(service.validate(RUN, "HLT", start=1, end=3))
    counts = independent_slice(site[2]["HLT"][1], site[2]["HLT"][3], "HLT/triggerClasses")
    rate = hlt.histograms["HLT/triggerClassRate"].values
    np.testing.assert_allclose(rate, counts["values"] / (2 * STEP))
    assert "HLT/triggerClassRate" in hlt.derived and hlt.context.duration == 2 * STEP


def _events(files, first, last) -> float:
    return independent_slice(files[first], files[last], "EMCTrigger/events")["entries"]


def test_scale_by_events_true_and_false_are_two_slices_each_correct(site, service) -> None:
    files = site[2]["EMC"]
    plain = service.get(service.validate(RUN, "EMC", start=1, end=3))
    scaled = service.get(
        service.validate(RUN, "EMC", start=1, end=3, options={"scale_by_events": "true"})
    )
    assert plain.slice_id != scaled.slice_id and set(service.cached()) >= {
        plain.slice_id, scaled.slice_id,
    }  # fmt: skip
    events = _events(files, 1, 3)
    assert scaled.n_events == plain.n_events == events > 0
    path = "EMCal/SM03/cellAmplitude"
    raw = independent_slice(files[1], files[3], path)
    np.testing.assert_array_equal(plain.shown(path).values, raw["values"])
    np.testing.assert_allclose(scaled.shown(path).values, raw["values"] / events, rtol=1e-12)
    np.testing.assert_allclose(scaled.shown(path).errors(), np.sqrt(raw["values"]) / events)
    # Trends and checks use the counts either way: same annotations, same qualities.
    np.testing.assert_array_equal(scaled.histograms[path].values, raw["values"])
    assert scaled.annotations == plain.annotations
    assert scaled.summary()["checks"] == plain.summary()["checks"]


def _hot_cells(result, sm: int) -> set[tuple[int, int]]:
    note = result.annotations.get(CELL_MAP.format(sm), {})
    labels = [d["label"] for d in note.get("decorations", []) if d["kind"] == "marker"]
    return {tuple(int(v) for v in label[5:-1].split(", ")) for label in labels}


def test_hot_channel_threshold_5_and_50_give_the_finders_lists(site, service) -> None:
    files = site[2]["EMC"]
    found = {}
    for threshold in (5, 50):
        result = service.get(
            service.validate(
                RUN, "EMC", start=0, end=3, options={"hot_channel_threshold": threshold}
            )
        )
        found[threshold] = result
        for sm in range(20):
            counts = independent_slice(None, files[3], CELL_MAP.format(sm))["values"][1:-1, 1:-1]
            expected, _median, _enough = find_hot_cells(counts, float(threshold), 5.0)
            assert _hot_cells(result, sm) == {(c.column, c.row) for c in expected}, (threshold, sm)
    assert _hot_cells(found[5], 3) == {(10, 5)} and _hot_cells(found[50], 3) == set()
    assert _hot_cells(found[5], 7) == _hot_cells(found[50], 7) == {(30, 12)}
    # The hot-cell check judges this slice's own count: SM03 is Bad only at threshold 5.
    groups5, groups50 = (found[t].summary()["groups"] for t in (5, 50))
    assert groups5["SM03"] == "Bad" and groups50["SM03"] == "Good"
    assert groups5["SM07"] == groups50["SM07"] == "Bad" and groups5["SM00"] == "Good"
    assert found[5].summary()["quality"] == "Bad"


def test_rate_check_compares_the_slice_with_the_live_points_before_it(site, service) -> None:
    files = site[2]["EMC"]
    result = service.get(service.validate(RUN, "EMC", start=1, end=3))
    (rate,) = [c for c in result.summary()["checks"] if c["check"] == "emc-event-rate-drop"]
    # The rate check judges windows of a minute against the live minutes before: the one
    # live point before this slice (the run's first slice has no rate) is too little history.
    assert rate["quality"] == "Null" and "not enough points" in rate["message"], rate
    assert _events(files, 1, 3) > 0
    first = service.get(service.validate(RUN, "EMC", preset="run"))
    assert first.context.duration == 0  # no known start: no rates, as for the live first slice
    (null,) = [c for c in first.summary()["checks"] if c["check"] == "emc-event-rate-drop"]
    assert null["quality"] == "Null" and "no trend 'event_rate'" in null["message"]


# --------------------------------------------------------------------------- cache and ZODB


def test_same_request_same_id_other_options_other_id(service) -> None:
    a = service.validate(RUN, "EMC", start="1", end="3", options={"hot_channel_threshold": "10"})
    b = service.validate(RUN, "EMC", start=1.2, end=3.5)  # snaps to the same snapshots
    c = service.validate(RUN, "EMC", start=1, end=3, options={"min_median_for_dead": 30})
    assert a == b and a.slice_id == b.slice_id != c.slice_id
    assert service.get(a) is service.get(b)
    assert len(a.slice_id) == 24 and dict(a.options)["hot_channel_threshold"] == 10.0


def test_lru_bound_and_recompute_from_the_database_in_another_process(site, db) -> None:
    service = SliceService(site[0], db, max_entries=2)
    specs = [service.validate(RUN, "HLT", start=k, end=3) for k in range(3)]
    results = [service.get(spec) for spec in specs]
    assert service.cached() == [specs[1].slice_id, specs[2].slice_id]  # the first was evicted
    again = service.by_id(specs[0].slice_id)  # recomputed from its description
    assert again is not results[0]
    np.testing.assert_array_equal(
        again.histograms["events"].values, results[0].histograms["events"].values
    )

    def record(ow):
        found = ow.slice_requests[specs[0].slice_id]
        return (found.run, found.subsystem, found.start, found.end, dict(found.options),
                found.created <= found.last_used)  # fmt: skip

    assert read(db, record) == (RUN, "HLT", None, minute(3), {}, True)
    other = SliceService(site[0], db)  # another gunicorn worker: nothing in memory
    assert other.by_id(specs[2].slice_id).spec == specs[2]
    with pytest.raises(UnknownSlice, match="open its link again"):
        other.by_id("0" * 24)


def test_descriptions_are_created_in_an_old_database_and_pruned(site, db) -> None:
    def drop(root):
        del overwatch_root(root).slice_requests  # as in a database made before this feature

    transact(db, drop)
    service = SliceService(site[0], db, max_requests=3)
    service.prune_every = 1
    ids = [service.get(service.validate(RUN, "TPC", start=0, end=k)).slice_id for k in (1, 2, 3)]
    ids += [service.get(service.validate(RUN, "TPC", start=1, end=k)).slice_id for k in (2, 3)]
    kept = read(db, lambda ow: list(ow.slice_requests.keys()))
    assert len(kept) <= 4 and ids[-1] in kept  # pruned on an insertion, oldest first


# --------------------------------------------------------------------------- bad input


def test_every_bad_field_is_named_at_once(service) -> None:
    with pytest.raises(SliceRequestError) as caught:
        service.validate(
            RUN, "EMC", start=3, end=1,
            options={"hot_channel_threshold": 2000, "scale_by_events": "maybe", "rebin": 2,
                     "min_median_for_hot": "many"},
        )  # fmt: skip
    fields = caught.value.fields
    assert set(fields) == {
        "start", "options.hot_channel_threshold", "options.scale_by_events", "options.rebin",
        "options.min_median_for_hot",
    }  # fmt: skip
    assert "must be less than end 1" in fields["start"]
    assert "out of range" in fields["options.hot_channel_threshold"]
    assert "true or false" in fields["options.scale_by_events"]
    assert "unknown slice option 'rebin'" in fields["options.rebin"]
    assert "expected a number" in fields["options.min_median_for_hot"]


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"start": 2, "end": 2}, "start", "must be less than end 2"),
        ({"start": 10, "end": "end"}, "start", "after the last snapshot (minute 3.00)"),
        ({"start": -1}, "start", "minutes count from the run start"),
        ({"end": "1999-01-01T00:00:00Z"}, "end", "before the first snapshot"),
        ({"start": 1.2, "end": 1.7}, "end", "no snapshot between"),
        ({"start": "soon"}, "start", "give minutes or 'start'"),
        ({"end": float("nan")}, "end", "give minutes"),
        ({"end": True}, "end", "give minutes"),
        ({"preset": "last:0"}, "preset", "not a preset"),
        ({"preset": "yesterday"}, "preset", "not a preset"),
        ({"options": [1, 2]}, "options", "expected an object"),
    ],
)
def test_bad_requests(service, given, field, message) -> None:
    with pytest.raises(SliceRequestError) as caught:
        service.validate(RUN, "EMC", **given)
    assert field in caught.value.fields and message in caught.value.fields[field], caught.value


def test_utc_times_presets_and_clipping(service) -> None:
    iso = "2026-01-01T00:02:30Z"  # between the snapshots at minutes 1 and 2 (T0 + 60 k)
    spec = service.validate(RUN, "EMC", start=iso, end="2026-01-01 00:04:00")
    assert (spec.start, spec.end) == (minute(1), minute(3))
    last = service.validate(RUN, "EMC", preset="last:1")
    assert (last.start, last.end) == (minute(2), minute(3))
    whole = service.validate(RUN, "EMC", start="2025-12-31T00:00:00Z", end=500)  # clipped
    assert (whole.start, whole.end) == (None, minute(3)) == (
        service.validate(RUN, "EMC", preset="run").start, minute(3),
    )  # fmt: skip


def test_a_run_or_subsystem_without_snapshots(service) -> None:
    with pytest.raises(UnknownRun, match="run 77 is unknown"):
        service.validate(77, "EMC")
    with pytest.raises(UnknownSubsystem, match="no processed snapshot of subsystem 'PHS'"):
        service.validate(RUN, "PHS")


# --------------------------------------------------------------------------- links


def test_links_round_trip_and_moving_windows(service) -> None:
    spec = service.validate(RUN, "EMC", start=1, end=3, options={"scale_by_events": True})
    service.get(spec)  # described in ZODB
    assert spec.link().startswith(f"{int(minute(1))}..{int(minute(3))};adc_to_gev=0.07;")
    assert service.from_link(RUN, "EMC", spec.link()) == spec
    assert service.from_link(RUN, "EMC", spec.slice_id) == spec  # by id, from ZODB
    times = service.reader.snapshot_times(RUN, "EMC")
    window = spec_from_link(load_plugin("EMC"), RUN, "EMC", parse_link("last:1.5"), times)
    assert (window.start, window.end) == (minute(1), minute(3))
    partial = service.from_link(RUN, "EMC", "start..99999999999;hot_channel_threshold=5")
    assert partial.start is None and partial.option_values["hot_channel_threshold"] == 5.0
    assert SliceSpec.create(RUN, "EMC", None, minute(3), {}).link() == f"start..{int(minute(3))}"


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("", "empty"),
        ("yesterday", "expected cumulative, latest"),
        ("12..abc", "not a time slice"),
        ("300..200", "ends before it starts"),
        ("last:0", "more than 0"),
        ("last:15;oops", "not name=value"),
        ("last:15;a=1;a=2", "appears twice"),
        ("last:15;rebin=2", "unknown option 'rebin'"),
        ("last:15;hot_channel_threshold=0.1", "out of range"),
        ("1..2", "not in run 5 EMC"),
        ("x" * 3000, "longer than"),
    ],
)
def test_malformed_links_say_why(service, link, message) -> None:
    with pytest.raises(BadSliceLink, match=None) as caught:
        service.from_link(RUN, "EMC", link)
    assert message in str(caught.value)


def test_an_id_of_another_run_or_unknown(service) -> None:
    with pytest.raises(UnknownSlice):
        service.from_link(RUN, "EMC", "f" * 24)
    tpc = service.validate(RUN, "TPC", start=1, end=2)
    service.get(tpc)
    with pytest.raises(BadSliceLink, match="belongs to run 5 TPC"):
        service.from_link(RUN, "EMC", tpc.slice_id)


# --------------------------------------------------------------------------- overwatch slice


def _cli(site, tmp_path, *extra: str) -> tuple[int, Path]:
    data, uri, _ = site
    out = tmp_path / "slice.root"
    argv = ["slice", "--data-dir", str(data), "--db", uri, "--run", str(RUN), "--subsystem", "EMC"]
    return cli.main([*argv, *extra, "-o", str(out)]), out


def test_cli_writes_the_slice_as_the_web_shows_it(site, tmp_path, capsys) -> None:
    code, out = _cli(
        site, tmp_path, "--start", "1", "--end", "3",
        "--option", "scale_by_events=true", "--option", "adc_to_gev=0.5",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "derived by the plugin: EMCTrigger/L1GammaPatchEnergy" in capsys.readouterr().out
    files = site[2]["EMC"]
    events = _events(files, 1, 3)
    path = "EMCal/SM00/cellHits"
    written = independent_slice(None, out, path)
    np.testing.assert_allclose(
        written["values"], independent_slice(files[1], files[3], path)["values"] / events, rtol=1e-6
    )
    with uproot.open(out) as f:
        energy = f["EMCTrigger/L1GammaPatchEnergy"]
        amplitude = independent_slice(files[1], files[3], "EMCTrigger/L1GammaPatchAmp")
        edges = energy.axis().edges()
        with uproot.open(files[3]) as source:
            adc_edges = source["EMCTrigger/L1GammaPatchAmp"].axis().edges()
        np.testing.assert_allclose(edges, adc_edges * 0.5)
        np.testing.assert_allclose(
            energy.values(flow=True), amplitude["values"] / events, rtol=1e-6
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--option", "hot_channel_threshold=0"], "--option hot_channel_threshold: out of range"),
        (["--option", "scale_by_events=perhaps"], "expected true or false"),
        (["--option", "rebin=2", "--option", "x=1"], "unknown slice option(s) rebin, x (known:"),
        (["--start", "3", "--end", "1"], "--start 3 must be less than --end 1"),
        (["--end", "2026-13-45"], "--end '2026-13-45': give minutes or 'end'"),
    ],
)
def test_cli_refuses_bad_options_as_the_web_does(site, tmp_path, capsys, args, message) -> None:
    code, out = _cli(site, tmp_path, *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists()
    assert len(err) == 1 and message in err[0], err
    assert CLI_LABELS["start"] == "--start"
