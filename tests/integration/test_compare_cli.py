"""``overwatch compare`` end to end, on the real ROOT files of ../shared/data/root-samples."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from overwatch import rootio
from overwatch.cli import main
from overwatch.histogram import Axis, Histogram
from processing.compare import report_plots

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "root-samples"
ALL_TESTS = ["chi2", "ks", "bin2bin", "pull", "beta_binomial"]
#: Why a self-comparison may legitimately have no answer.
NULL_REASONS = {"empty", "too_few_bins", "zero_errors"}


def compare(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def records_of(capsys, tmp_path: Path, *argv: str) -> tuple[int, list[dict]]:
    target = tmp_path / "records.json"
    code, _, _ = compare(capsys, *argv, "--json", str(target))
    return code, json.loads(target.read_text())


def test_every_sample_file_against_itself(sample_file: Path, capsys, tmp_path):
    path = str(sample_file)  # one per sample file; a missing folder fails (tests/conftest.py)
    args = [path, path] + [arg for test in ALL_TESTS for arg in ("-s", test)]
    code, records = records_of(capsys, tmp_path, *args)
    histograms = rootio.read_histograms(path).histograms
    assert code == 0
    assert {(r["path"], r["test"]) for r in records} == {
        (name, test) for name in histograms for test in ALL_TESTS
    }
    for record in records:
        histogram = histograms[record["path"]]
        content = histogram.bin_entries if histogram.is_profile else histogram.values
        where = f"{sample_file.name}:{record['path']}:{record['test']}"
        assert record["status"] != "fail", where
        if not content.any():
            assert (record["status"], record["reason"]) == ("null", "empty"), where
        elif histogram.is_profile and record["test"] in ("ks", "beta_binomial"):
            assert (record["status"], record["reason"]) == ("skipped", "unsupported"), where
        elif record["status"] == "success":
            assert record["pvalue"] == 1.0 and record["reason"] is None, where
        else:
            assert record["status"] == "null" and record["reason"] in NULL_REASONS, where


def alter(histogram: Histogram) -> None:
    """A noticeable change of shape: a bump of 10 % of the content (a hot spot in 2D)."""
    inner = histogram.values[histogram.inner]  # a view: changes go to the histogram
    flat = inner.ravel(order="F")
    where = np.searchsorted(np.cumsum(flat), 0.75 * flat.sum())
    bump = np.round(0.1 * flat.sum())
    inner[np.unravel_index(where, inner.shape, order="F")] += bump
    if histogram.sumw2 is not None:
        histogram.sumw2[histogram.inner] = np.abs(inner)


def test_altered_copy_fails_exactly_where_altered(capsys, tmp_path):
    original = SAMPLES / "uproot-issue-880.root"
    histograms = rootio.read_histograms(original).histograms
    busy = sorted(
        (h for h in histograms.values() if np.count_nonzero(h.values[h.inner]) >= 10),
        key=lambda h: -h.integral(),
    )
    altered = [next(h for h in busy if h.ndim == 1), next(h for h in busy if h.ndim == 2)]
    altered.append(next(h for h in busy if h.ndim == 1 and h not in altered))
    for histogram in altered:
        alter(histogram)
    copy = tmp_path / "altered.root"
    rootio.write_file(copy, histograms.values())
    names = {h.name for h in altered}
    for test in ALL_TESTS:
        code, records = records_of(capsys, tmp_path, str(copy), str(original), "-s", test)
        failed = {r["path"] for r in records if r["status"] == "fail"}
        assert failed == names, test
        assert code == 1
        assert len(records) == len(histograms)


def test_jobs_give_the_same_records(capsys, tmp_path):
    original = str(SAMPLES / "uproot-issue-880.root")
    other = str(SAMPLES / "uproot-issue-880.root")
    _, serial = records_of(capsys, tmp_path, original, other, "-s", "ks", "-s", "pull")
    _, parallel = records_of(
        capsys, tmp_path, original, other, "-s", "ks", "-s", "pull", "--jobs", "2"
    )
    assert parallel == serial and len(serial) == 400


@pytest.fixture()
def nested(tmp_path) -> tuple[Path, Path]:
    """Two files with nested directories; the test file differs in DET/HLT and DET/B/Noisy."""
    rng = np.random.default_rng(5)

    def make(path: Path, shifted: bool) -> Path:
        histograms = []
        for name in ("DET/A/h", "DET/HLT/h", "DET/B/Noisy/h", "DET/B/h", "OTHER/h"):
            h = Histogram.empty(name, [Axis.regular(20, -3, 3)])
            shift = 1.0 if shifted and ("HLT" in name or "Noisy" in name) else 0.0
            h.fill(rng.normal(shift, 1, 5000))
            histograms.append(h)
        rootio.write_file(path, histograms)
        return path

    return make(tmp_path / "test.root", True), make(tmp_path / "reference.root", False)


def test_directory_and_blacklist(nested, capsys, tmp_path):
    test, reference = map(str, nested)
    code, records = records_of(capsys, tmp_path, test, reference)
    assert code == 1
    assert {r["path"] for r in records if r["status"] == "fail"} == {"DET/HLT/h", "DET/B/Noisy/h"}
    _, under = records_of(capsys, tmp_path, test, reference, "-d", "DET/B")
    assert {r["path"] for r in under} == {"DET/B/Noisy/h", "DET/B/h"}
    code, kept = records_of(capsys, tmp_path, test, reference, "-B", "HLT@2,Noisy@-1")
    assert code == 0
    assert {r["path"] for r in kept} == {"DET/A/h", "DET/B/h", "OTHER/h"}
    _, depth_one = records_of(capsys, tmp_path, test, reference, "-B", "HLT@1")
    assert "DET/HLT/h" in {r["path"] for r in depth_one}  # HLT is at depth 2, not 1


def test_text_and_html_outputs(nested, capsys, tmp_path):
    test, reference = map(str, nested)
    outdir = tmp_path / "report"
    code, out, err = compare(capsys, test, reference, "-s", "chi2", "-s", "ks", "-o", str(outdir))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"Comparison of {test} against {reference}"
    assert "Results: fail 4, skipped 0, null 0, success 6" in out
    table = out.split("Directories, worst first:")[1]
    assert table.index("DET/B/Noisy") < table.index("DET/A")  # worst first
    assert (outdir / "index.html").is_file() and (outdir / "dirs" / "top.html").is_file()
    assert len(list((outdir / "hists").glob("*.html"))) == 5
    assert any((outdir / "jsroot").iterdir())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{missing}", "{good}"], "no such file"),
        (["{text}", "{good}"], "ROOT file"),
        (["{good}", "{good}", "-s", "nosuch"], "unknown test 'nosuch'"),
        (["{good}", "{good}", "-s", "bin2bin:rtol=x"], "needs a float"),
        (["{good}", "{good}", "-t", "1.5"], "threshold must be between 0 and 1"),
        (["{good}", "{good}", "-t", "abc"], "threshold must be a number"),
        (["{good}", "{good}", "-B", "HLT"], "malformed blacklist entry 'HLT'"),
        (["{good}", "{good}", "-B", "HLT@x"], "malformed blacklist entry"),
        (["{good}", "{good}", "--jobs", "0"], "--jobs must be at least 1"),
        (["{good}", "{good}", "-d", "NoSuchDir"], "no directory 'NoSuchDir'"),
        (["{good}", "{good}", "--json", "{missing_dir}/x.json"], "does not exist"),
    ],
)
def test_bad_input_gives_one_error_line(arguments, message, capsys, tmp_path):
    text = tmp_path / "notes.root"
    text.write_text("this is not ROOT\n")
    values = {
        "missing": str(tmp_path / "missing.root"),
        "text": str(text),
        "good": str(SAMPLES / "uproot-histograms.root"),
        "missing_dir": str(tmp_path / "nowhere"),
    }
    code, out, err = compare(capsys, *(a.format(**values) for a in arguments))
    assert code == 2
    assert out == ""
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("overwatch compare: error: "), err
    assert message in errors[0]


def test_real_process_exit_status_and_stderr(tmp_path):
    text = tmp_path / "notes.root"
    text.write_text("this is not ROOT\n")
    good = str(SAMPLES / "uproot-histograms.root")
    command = [sys.executable, "-m", "overwatch.cli", "compare"]
    bad = subprocess.run(command + [str(text), good], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    errors = [line for line in bad.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, bad.stderr
    assert errors[0].startswith(f"overwatch compare: error: {text}") and "ROOT file" in errors[0]
    ok = subprocess.run(command + [good, good], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "Results: fail 0, skipped 0, null 0, success 3" in ok.stdout


@pytest.mark.browser
def test_report_draws_offline_in_a_browser(nested, capsys, tmp_path):
    """The report opened from disk (file://, no server, no network) draws with its JSROOT."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.fail("chromium is missing: run `make system-deps` (Debian package chromium)")
    test, reference = map(str, nested)
    outdir = tmp_path / "report"
    compare(capsys, test, reference, "-o", str(outdir))
    page = outdir / "hists" / report_plots.page_name("DET/HLT/h")
    if report_plots.locate_jsroot()[1] != "bundle":
        pytest.fail("only JSROOT's ES modules were found: the report then needs an HTTP server")
    dom = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert 'data-drawn="yes"' in dom
    assert dom.count('class="jsroot root_canvas"') >= 1


def test_chi2_norm_on_weighted_histograms_is_said_not_dropped(capsys, tmp_path):
    """``-s chi2:norm`` where the automatic mode picks WW: ROOT's NORM is for UU only."""
    weighted = Histogram.empty("w", [Axis.regular(10, 0, 1)], "TH1D", weighted=True)
    rng = np.random.default_rng(3)
    weighted.fill(rng.random(500), weights=rng.uniform(0.5, 1.5, 500))
    unweighted = Histogram.empty("u", [Axis.regular(10, 0, 1)], "TH1D")
    unweighted.fill(rng.random(500))
    paths = []
    for name in ("test", "ref"):
        paths.append(tmp_path / f"{name}.root")
        rootio.write_file(paths[-1], [weighted, unweighted])
    code, _out, err = compare(capsys, str(paths[0]), str(paths[1]), "-s", "chi2:norm")
    assert code == 0
    assert "norm not applied" in err and "WW mode" in err and "1 histogram(s), e.g. w" in err
    rootio.write_file(paths[0], [unweighted])  # UU only: NORM applies, nothing to say
    rootio.write_file(paths[1], [unweighted])
    code, _out, err = compare(capsys, str(paths[0]), str(paths[1]), "-s", "chi2:norm")
    assert code == 0 and "norm not applied" not in err
