"""Online reference comparison (processing.compare.online) on really processed simulator runs.

Runs built here (and reused by the web tests through :func:`build_reference_runs`):

- ``REFERENCE`` (EMC, HLT): clean, three snapshots;
- ``DATA`` (EMC, HLT): the same detector (same seed) with a hot cell in EMC SM03 and two
  extra histograms the reference does not have, two snapshots (so both the statistics
  and the normalisation differ from the reference);
- ``OTHER`` (TPC only): a run without EMC.

Expected answers are computed independently: the histograms are read from the last
snapshot files with ``overwatch.rootio`` (the array cache is not used) and compared
with ``processing.compare.configure(...).run`` directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import ZODB

from overwatch import rootio
from overwatch.config import ConfigError, load_settings
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db
from processing.compare import configure
from processing.compare.online import (
    OverlayError,
    ReferenceComparer,
    ReferenceNotFound,
    compare_sets,
    normalised,
    overlay_of,
    ratio,
    sort_results,
)
from processing.compare.registry import ConfiguredTest, TestDefinition
from processing.slices.reader import SliceReader, UnknownRun, UnknownSubsystem
from tests.unit.test_web_support import process, write_snapshot

REFERENCE, DATA, OTHER = 11, 12, 13
HOT_PATH = "EMCal/SM03/cellHits"
EXTRA_PATHS = ("EMCExtra/h0000", "EMCExtra/h0001")
T_REF = 1_763_805_600.0  # 2025-11-22 10:00 UTC
HOT_CELL = {"kind": "hot_channel", "subsystem": "EMC", "cell": [3, 10, 5], "factor": 20}


def _simulate(
    data_dir: Path, run: int, subsystems, snapshots: int, start: float, skip: int = 0, **options
):
    """Simulate ``snapshots`` minutes; write each minute's snapshot except the first ``skip``."""
    from receivers.simulator import DetectorSimulator

    simulator = DetectorSimulator(list(subsystems), run=run, seed=3, start_time=start, **options)
    last = {}
    for number in range(snapshots):
        simulator.advance(60.0)
        if number < skip:
            continue
        for name in subsystems:
            last[name] = write_snapshot(data_dir, run, name, simulator.now, simulator.payload(name))
    return last


def build_reference_runs(data_dir: Path, db: ZODB.DB) -> dict[tuple[int, str], Path]:
    """Write and process the three runs; returns (run, subsystem) -> last snapshot file."""
    files = {}
    for run, subsystems, snapshots, options in (
        (REFERENCE, ("EMC", "HLT"), 3, {}),
        # 49 histograms: the 47 of EMC plus EMCExtra/h0000 and h0001.
        (DATA, ("EMC",), 2, {"faults": [HOT_CELL], "histograms": 49}),
        (DATA, ("HLT",), 2, {}),
        (OTHER, ("TPC",), 1, {}),
    ):
        start = T_REF + 3600.0 * (run - REFERENCE)
        last = _simulate(data_dir, run, subsystems, snapshots, start, **options)
        files.update({(run, name): Path(data_dir) / rel for name, rel in last.items()})
    process(data_dir, db)
    return files


def expected_records(files, run: int, reference: int, subsystem: str, spec: str = "chi2"):
    """The records processing.compare gives on the histograms of the last snapshot files."""
    test = configure(spec)
    data = rootio.read_histograms(files[(run, subsystem)]).histograms
    ref = rootio.read_histograms(files[(reference, subsystem)]).histograms
    found = {}
    for path, histogram in data.items():
        if path in ref:
            found[path] = test.run(path, histogram, [ref[path]]).to_record()
    return found


def assert_same_record(got: dict, want: dict) -> None:
    for key in ("path", "test", "status", "reason", "ndf"):
        assert got[key] == want[key], (got, want)
    for key in ("statistic", "pvalue"):
        if want[key] is None:
            assert got[key] is None, (got, want)
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-300), (got, want)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("online") / "data"
    db = open_db("memory://")
    files = build_reference_runs(data_dir, db)
    yield SliceReader(data_dir, db), files
    db.close()


def test_hot_cell_is_the_only_failure_and_results_match_processing_compare(runs) -> None:
    reader, files = runs
    found = ReferenceComparer(reader).compare(DATA, "EMC", REFERENCE, configure("chi2"))
    by_path = {r.path: r for r in found.results}
    failing = [r.path for r in found.results if r.status == "fail"]
    assert failing == [HOT_PATH]
    assert by_path[HOT_PATH].pvalue < 1e-5 and by_path[HOT_PATH].ndf > 1000
    want = expected_records(files, DATA, REFERENCE, "EMC")
    assert len(want) == 47
    for path, record in want.items():
        assert_same_record(by_path[path].to_record(), record)
    # Both runs really differ: most histograms have a non-zero statistic.
    nonzero = [r for r in found.results if r.statistic]
    assert len(nonzero) > 30
    assert found.counts()["fail"] == 1
    assert sum(found.counts().values()) == 49


def test_histograms_missing_in_the_reference_are_skipped_not_dropped(runs) -> None:
    reader, _files = runs
    found = ReferenceComparer(reader).compare(DATA, "EMC", REFERENCE, configure("chi2"))
    extra = [r for r in found.results if r.path in EXTRA_PATHS]
    assert [r.path for r in extra] == list(EXTRA_PATHS)
    assert all(r.status == "skipped" and r.reason == "missing_in_reference" for r in extra)
    # The other way round: compared with the data run, the reference lacks nothing but
    # lists the extras as present only in the reference side.
    back = ReferenceComparer(reader).compare(REFERENCE, "EMC", DATA, configure("chi2"))
    only = [r for r in back.results if r.path in EXTRA_PATHS]
    assert [r.reason for r in only] == ["missing_in_test", "missing_in_test"]


def test_a_run_compared_with_itself_succeeds_everywhere(runs) -> None:
    reader, files = runs
    for subsystem in ("EMC", "HLT"):
        found = ReferenceComparer(reader).compare(DATA, subsystem, DATA, configure("chi2"))
        assert {r.status for r in found.results} <= {"success", "null"}
        successes = [r for r in found.results if r.status == "success"]
        assert len(successes) >= len(found.results) - 2
        assert all(r.pvalue == 1.0 and r.statistic == 0.0 for r in successes)
    # The profile of HLT is compared too, as the offline tool compares it.
    hlt = ReferenceComparer(reader).compare(DATA, "HLT", REFERENCE, configure("chi2"))
    want = expected_records(files, DATA, REFERENCE, "HLT")
    for result in hlt.results:
        assert_same_record(result.to_record(), want[result.path])
    assert "HLT/processingTimeVsEventSize" in want


def test_worst_first_puts_failures_first_then_lowest_p_values(runs) -> None:
    reader, _files = runs
    found = ReferenceComparer(reader).compare(DATA, "EMC", REFERENCE, configure("chi2"))
    worst = found.ordered("worst")
    assert worst[0].path == HOT_PATH
    severities = [r.status.severity for r in worst]
    assert severities == sorted(severities, reverse=True)
    assert [r.status for r in worst[1:3]] == ["skipped", "skipped"]
    successes = [r.pvalue for r in worst if r.status == "success"]
    assert successes == sorted(successes)
    by_path = found.ordered("path")
    assert [r.path for r in by_path] == sorted(r.path for r in found.results)
    with pytest.raises(ValueError, match="sort must be one of path, worst"):
        sort_results(found.results, "best")


def test_results_are_cached_per_versions_and_test(runs) -> None:
    reader, _files = runs
    comparer = ReferenceComparer(reader)
    first = comparer.compare(DATA, "EMC", REFERENCE, configure("chi2"))
    assert comparer.compare(DATA, "EMC", REFERENCE, configure("chi2")) is first
    assert comparer.computed == 1
    ks = comparer.compare(DATA, "EMC", REFERENCE, configure("ks"))
    assert ks.test == "ks" and comparer.computed == 2
    looser = comparer.compare(DATA, "EMC", REFERENCE, configure("chi2", 0.5))
    assert looser is not first and comparer.computed == 3
    assert first.version == reader.version(DATA, "EMC")
    assert first.reference_version == reader.version(REFERENCE, "EMC")


def test_a_new_snapshot_of_either_run_is_compared_afresh(tmp_path: Path) -> None:
    data_dir, db = tmp_path / "data", open_db("memory://")
    _simulate(data_dir, 1, ("XYZ",), 1, T_REF)
    _simulate(data_dir, 2, ("XYZ",), 1, T_REF + 3600)
    process(data_dir, db)
    comparer = ReferenceComparer(SliceReader(data_dir, db))
    first = comparer.compare(2, "XYZ", 1, configure("chi2"))
    assert first.results[0].path == "events"
    # A later snapshot of the reference: same key parts except its version.
    rel = _simulate(data_dir, 1, ("XYZ",), 2, T_REF, skip=1)["XYZ"]
    assert rel.endswith("2025_11_22_10_02_00.root")
    process(data_dir, db)
    second = comparer.compare(2, "XYZ", 1, configure("chi2"))
    assert second is not first and comparer.computed == 2
    assert second.reference_version != first.reference_version
    db.close()


def test_unknown_runs_and_subsystems_name_what_is_missing(runs) -> None:
    reader, _files = runs
    comparer = ReferenceComparer(reader)
    with pytest.raises(ReferenceNotFound, match="reference run 999 is unknown"):
        comparer.compare(DATA, "EMC", 999, configure("chi2"))
    with pytest.raises(ReferenceNotFound, match=f"reference run {OTHER} has no processed EMC"):
        comparer.compare(DATA, "EMC", OTHER, configure("chi2"))
    with pytest.raises(UnknownRun):
        comparer.compare(999, "EMC", REFERENCE, configure("chi2"))
    with pytest.raises(UnknownSubsystem):
        comparer.compare(OTHER, "EMC", REFERENCE, configure("chi2"))
    with pytest.raises(ReferenceNotFound, match="'EMCExtra/h0000' is not in reference run 11"):
        comparer.overlay(DATA, "EMC", REFERENCE, "EMCExtra/h0000")


def test_overlay_scales_the_reference_to_the_data_and_divides(runs) -> None:
    reader, files = runs
    comparer = ReferenceComparer(reader)
    path = "EMCal/SM00/cellAmplitude"
    found = comparer.overlay(DATA, "EMC", REFERENCE, path)
    data = rootio.read_histograms(files[(DATA, "EMC")], [path]).histograms[path]
    ref = rootio.read_histograms(files[(REFERENCE, "EMC")], [path]).histograms[path]
    np.testing.assert_array_equal(found.data.values, data.values)
    factor = data.values[1:-1].sum() / ref.values[1:-1].sum()
    assert 0.5 < factor < 0.8  # two minutes of data against three of reference
    assert found.scale == pytest.approx(factor, rel=1e-12)
    assert found.reference.integral() == pytest.approx(data.values[1:-1].sum(), rel=1e-12)
    scaled = ref.values * factor
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(scaled != 0, data.values / scaled, 0.0)
        want_var = np.where(
            scaled != 0,
            (data.values * scaled**2 + ref.values * factor**2 * data.values**2) / scaled**4,
            0.0,
        )
    np.testing.assert_allclose(found.ratio.values, want, rtol=1e-12)
    np.testing.assert_allclose(found.ratio.sumw2, want_var, rtol=1e-12)
    assert found.ratio.class_name == "TH1D"
    # The latest slice of the data against the reference's whole run.
    latest = comparer.overlay(DATA, "EMC", REFERENCE, path, "latest")
    assert latest.data.integral() < found.data.integral()
    assert latest.reference.integral() == pytest.approx(latest.data.integral(), rel=1e-12)
    with pytest.raises(ValueError, match="slice must be cumulative or latest"):
        comparer.overlay(DATA, "EMC", REFERENCE, path, "hourly")


def test_profiles_are_overlaid_unscaled_and_their_means_divided(runs) -> None:
    reader, _files = runs
    path = "HLT/processingTimeVsEventSize"
    found = ReferenceComparer(reader).overlay(DATA, "HLT", REFERENCE, path)
    assert found.scale is None
    np.testing.assert_array_equal(
        found.reference.values, reader.cumulative(REFERENCE, "HLT", path).values
    )
    means_d, means_r = found.data.bin_means(), found.reference.bin_means()
    filled = means_r != 0
    assert filled.sum() > 10
    np.testing.assert_allclose(found.ratio.values[filled], means_d[filled] / means_r[filled])
    assert found.ratio.class_name == "TH1D"


def test_overlay_refuses_different_binnings_and_handles_an_empty_reference() -> None:
    one = Histogram.empty("a", [Axis.regular(10, 0, 1)], "TH1F")
    one.fill(np.linspace(0.05, 0.95, 10))
    other = Histogram.empty("a", [Axis.regular(20, 0, 1)], "TH1F")
    with pytest.raises(OverlayError, match="different_binning"):
        overlay_of(one, other)
    empty = Histogram.empty("a", [Axis.regular(10, 0, 1)], "TH1F")
    scaled, factor = normalised(empty, one)
    assert factor is None and scaled.integral() == 0
    divided = ratio(one, empty)
    assert not divided.values.any() and not divided.sumw2.any()


def test_compare_sets_keeps_going_after_a_test_raises() -> None:
    good = Histogram.empty("g", [Axis.regular(5, 0, 1)], "TH1F")
    good.fill(np.linspace(0.1, 0.9, 50))

    def fragile(path, test, reference, threshold):
        if path == "b":
            raise ArithmeticError("cannot handle b")
        return configure("chi2").run(path, test, [reference])

    test = ConfiguredTest(TestDefinition("fragile", fragile, "raises on b", 0.5), 0.5, {})
    results = compare_sets({"b": good, "g": good}, {"g": good, "b": good}, test)
    assert [r.path for r in results] == ["b", "g"]
    assert results[0].status == "skipped" and results[0].reason == "test_error"
    assert "cannot handle b" in results[0].detail
    assert results[1].status == "success"


def test_compare_settings_from_yaml_and_environment(tmp_path: Path) -> None:
    defaults = load_settings(search_user_dirs=False, env={}).compare
    assert defaults.reference_runs == {} and defaults.test == "chi2"
    assert defaults.threshold == 1e-5
    config = tmp_path / "overwatch.yaml"
    config.write_text("compare:\n  reference_runs: {EMC: 123456, TPC: 7}\n  test: ks\n")
    settings = load_settings(config, search_user_dirs=False, env={})
    assert settings.compare.reference_runs == {"EMC": 123456, "TPC": 7}
    assert settings.compare.test == "ks"
    env = {"OVERWATCH_COMPARE__REFERENCE_RUNS": "{HLT: 42}"}
    assert load_settings(search_user_dirs=False, env=env).compare.reference_runs == {"HLT": 42}
    assert dataclasses.asdict(settings)["compare"]["reference_runs"]["EMC"] == 123456


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "compare:\n  reference_runs: {EMC: abc}\n",
            "compare.reference_runs.EMC: expected an integer",
        ),
        (
            "compare:\n  reference_runs: {EMC: true}\n",
            "compare.reference_runs.EMC: expected an integer",
        ),
        ("compare:\n  reference_runs: [1, 2]\n", "expected a mapping of strings to integers"),
        ("compare:\n  threshold: 2\n", "compare.threshold: expected a number <= 1"),
        ("compare:\n  tset: chi2\n", "unknown key 'compare.tset'"),
    ],
)
def test_bad_compare_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "overwatch.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as caught:
        load_settings(config, search_user_dirs=False, env={})
    assert str(config) in str(caught.value)


def test_empty_histograms_give_null_not_a_silent_pass() -> None:
    empty = Histogram.empty("e", [Axis.regular(5, 0, 1)], "TH1F")
    results = compare_sets({"e": empty}, {"e": empty.copy()}, configure("chi2"))
    assert results[0].status == "null" and results[0].reason == "empty"


def test_an_empty_latest_slice_fails_against_a_filled_reference(tmp_path) -> None:
    """A supermodule switched off shows in the latest slice: empty there, filled in the reference."""
    data_dir = tmp_path / "data"
    db = open_db("memory://")
    dead = {"kind": "dead_region", "subsystem": "EMC", "supermodule": 7, "at_minute": 2}
    _simulate(data_dir, REFERENCE, ("EMC",), 3, T_REF)
    _simulate(data_dir, DATA, ("EMC",), 3, T_REF + 3600.0, faults=[dead])
    process(data_dir, db)
    comparer = ReferenceComparer(SliceReader(data_dir, db))
    test = configure("chi2")
    path = "EMCal/SM07/cellHits"
    latest = {r.path: r for r in comparer.compare(DATA, "EMC", REFERENCE, test, "latest").results}
    assert latest[path].status.value == "fail" and latest[path].reason == "empty_in_test"
    whole = {r.path: r for r in comparer.compare(DATA, "EMC", REFERENCE, test).results}
    assert whole[path].reason != "empty_in_test"  # two live minutes in the whole run
    with pytest.raises(ValueError, match="cumulative or latest"):
        comparer.compare(DATA, "EMC", REFERENCE, test, "all")
