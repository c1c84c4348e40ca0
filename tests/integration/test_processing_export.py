"""``overwatch slice`` on snapshots built from real ROOT files, checked against plain uproot.

Successive cumulative snapshots are the contents of a real file merged 1x, 2x,
3x, ... (every sum and the entries times k); a slice between two of them is
computed independently by reading both files with uproot and subtracting.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import uproot

from overwatch import cli, rootio
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db
from processing.pipeline import Pipeline
from tests.processing_helpers import (
    REPO,
    SAMPLES,
    T0,
    independent_slice,
    merged,
    write_snapshot,
)

pytestmark = pytest.mark.integration

REAL = {
    "DET": "uproot-issue-880.root",  # 200 histograms: TH1D, TH1I, TH2D
    "HEP": "uproot-hepdata-example.root",  # TH1F, TH2F, TProfile
    "PRF": "uproot-issue-227a.root",  # TProfile2D
}


def synthetic() -> list[Histogram]:
    """Storage types and dimensions the real files lack."""
    rng = np.random.default_rng(11)
    made = []
    for letter in "CSIFD":
        h = Histogram.empty(f"h1/{letter}", [Axis.regular(10, 0, 1)], f"TH1{letter}")
        h.fill(rng.uniform(-0.1, 1.1, 40))
        made.append(h)
    for letter in "FD":
        h2 = Histogram.empty(
            f"h2/{letter}", [Axis.regular(5, 0, 1), Axis.regular(4, 0, 1)], f"TH2{letter}"
        )
        h2.fill(rng.uniform(0, 1, 60), rng.uniform(0, 1, 60))
        h3 = Histogram.empty(f"h3/{letter}", [Axis.regular(3, 0, 1)] * 3, f"TH3{letter}")
        h3.fill(*(rng.uniform(0, 1, 50) for _ in range(3)))
        made += [h2, h3]
    weighted = Histogram.empty(
        "h1/weighted", [Axis.from_edges([0, 0.1, 0.5, 1])], "TH1D", weighted=True
    )
    weighted.fill(rng.uniform(0, 1, 30), weights=rng.uniform(0.5, 3, 30))
    profile = Histogram.empty("p/TProfile", [Axis.regular(6, 0, 1)], "TProfile")
    profile.fill(rng.uniform(0, 1, 80), y=rng.normal(size=80), weights=rng.uniform(1, 2, 80))
    return made + [weighted, profile]


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """Run 42: four snapshots a minute apart per subsystem, processed into a file storage."""
    data = tmp_path_factory.mktemp("data")
    sources = {
        sys_: list(rootio.read_histograms(SAMPLES / f).histograms.values())
        for sys_, f in REAL.items()
    }
    sources["SYN"] = synthetic()
    files: dict[str, list] = {}
    for subsystem, histograms in sources.items():
        late = 30 if subsystem == "SYN" else 0  # starts half a minute after the run
        files[subsystem] = [
            write_snapshot(
                data, 42, subsystem, T0 + 60 * k + late, [merged(h, k) for h in histograms]
            )
            for k in range(1, 5)
        ]
    uri = f"file://{data / 'meta.fs'}"
    db = open_db(uri)
    report = Pipeline(data, db).run_until_idle()
    db.close()
    assert report.processed == 16 and not report.failed and not report.bad
    return data, uri, files


def export(processed, tmp_path, subsystem: str, *extra: str) -> tuple[int, object]:
    data, uri, _ = processed
    out = tmp_path / f"{subsystem}.root"
    argv = ["slice", "--data-dir", str(data), "--db", uri, "--run", "42", "--subsystem", subsystem]
    return cli.main([*argv, *extra, "-o", str(out)]), out


@pytest.mark.parametrize(
    ("subsystem", "first", "last"),
    # Run start = minute 0 = T0+60. Minutes 1.5 .. 3.2 snap down to the snapshots at
    # minutes 1 and 3 (k=2, k=4); SYN's snapshots are at minutes 0.5, 1.5, 2.5, 3.5.
    [("DET", 1, 3), ("HEP", 1, 3), ("PRF", 1, 3), ("SYN", 1, 2)],
)
def test_exported_slice_equals_uproot_subtraction_bin_by_bin(
    processed, tmp_path, subsystem, first, last
) -> None:
    _, _, files = processed
    code, out = export(processed, tmp_path, subsystem, "--start", "1.5", "--end", "3.2")
    assert code == 0
    with (
        uproot.open(files[subsystem][first]) as start,
        uproot.open(files[subsystem][last]) as end,
        uproot.open(out) as written,
    ):
        classes = {k.rsplit(";", 1)[0]: c for k, c in end.classnames().items()}
        histograms = {p: c for p, c in classes.items() if c.startswith(("TH", "TProfile"))}
        got = {k.rsplit(";", 1)[0]: c for k, c in written.classnames().items()}
        assert {p: got.get(p) for p in histograms} == histograms  # same classes, same paths
        for path, class_name in histograms.items():
            expected = independent_slice(start, end, path)
            actual = independent_slice(None, written, path)
            # Written in the class's own storage type: float32 for F, exact otherwise.
            rtol = 1e-6 if class_name.endswith("F") else 0.0
            for key in expected:
                np.testing.assert_allclose(
                    actual[key], expected[key], rtol=rtol, atol=0, err_msg=f"{path} {key}"
                )
            if class_name.startswith("TProfile"):
                with np.errstate(invalid="ignore", divide="ignore"):
                    want = np.where(
                        expected["bin_entries"] != 0,
                        expected["values"] / expected["bin_entries"],
                        0.0,
                    )
                means = written[path].values(flow=True)
                np.testing.assert_allclose(means, want, rtol=1e-9, atol=1e-12)


def test_slice_from_the_run_start_is_the_snapshot_itself(processed, tmp_path) -> None:
    _, _, files = processed
    code, out = export(processed, tmp_path, "PRF", "--start", "0", "--end", "1")
    assert code == 0
    for path in ("hprof2d",):
        expected = independent_slice(None, files["PRF"][1], path)
        np.testing.assert_array_equal(
            independent_slice(None, out, path)["bin_entries"], expected["bin_entries"]
        )


def test_the_installed_command_writes_the_file(processed, tmp_path) -> None:
    data, uri, files = processed
    out = tmp_path / "cli.root"
    done = subprocess.run(
        [sys.executable, "-m", "overwatch.cli", "slice", "--data-dir", str(data), "--db", uri,
         "--run", "42", "--subsystem", "HEP", "--end", "end", "-o", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote 3 histograms" in done.stdout
    expected = independent_slice(None, files["HEP"][3], "hpx")
    np.testing.assert_allclose(
        independent_slice(None, out, "hpx")["values"], expected["values"], rtol=1e-6
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "3", "--end", "2"], "must be less than --end"),
        (["--start", "2", "--end", "2"], "must be less than --end"),
        (["--start", "-1", "--end", "2"], "from the run start"),
        (["--start", "3.5", "--end", "end"], "after the last snapshot (minute 3.00)"),
        (["--start", "2.2", "--end", "2.7"], "no snapshot between"),
        (["--end", "soon"], "give minutes or 'end'"),
        (["--option", "rebin=2"], "unknown slice option(s) rebin"),
        (["--option", "oops"], "is not KEY=VALUE"),
    ],
)
def test_bad_ranges_and_options_give_one_clear_line(
    processed, tmp_path, capsys, args, message
) -> None:
    code, out = export(processed, tmp_path, "HEP", *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists()
    assert len(err) == 1 and message in err[0], err


def test_end_before_the_subsystems_first_snapshot(processed, tmp_path, capsys) -> None:
    code, out = export(processed, tmp_path, "SYN", "--start", "0", "--end", "0.2")
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists()
    assert len(err) == 1 and "before the first snapshot" in err[0] and "minute 0.50" in err[0], err


@pytest.mark.parametrize(
    ("run", "subsystem", "message"),
    [("43", "HEP", "run 43 is unknown"), ("42", "TPC", "no processed snapshot of subsystem 'TPC'")],
)
def test_unknown_run_or_subsystem(processed, tmp_path, capsys, run, subsystem, message) -> None:
    data, uri, _ = processed
    code = cli.main(
        ["slice", "--data-dir", str(data), "--db", uri, "--run", run, "--subsystem", subsystem,
         "-o", str(tmp_path / "x.root")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0], err


def test_paths_with_spaces_and_directories_survive(tmp_path) -> None:
    h = Histogram.empty("Some Dir/cell hits (all)", [Axis.regular(4, 0, 1)], "TH1D")
    h.fill(np.array([0.1, 0.2, 0.6]))
    write_snapshot(tmp_path, 1, "EMC", T0, [h])
    write_snapshot(tmp_path, 1, "EMC", T0 + 60, [merged(h, 3)])
    uri = f"file://{tmp_path / 'm.fs'}"
    db = open_db(uri)
    Pipeline(tmp_path, db).run_until_idle()
    db.close()
    out = tmp_path / "spaces.root"
    argv = ["slice", "--data-dir", str(tmp_path), "--db", uri, "--run", "1", "--subsystem", "EMC"]
    assert cli.main([*argv, "--start", "0.5", "-o", str(out)]) == 0
    with uproot.open(out) as f:
        # 0.1, 0.2 -> bin 1 and 0.6 -> bin 3, twice more in the second snapshot
        assert f["Some Dir"]["cell hits (all)"].values().tolist() == [4.0, 0.0, 2.0, 0.0]
    assert REPO.is_dir()
