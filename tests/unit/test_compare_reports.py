"""Roll-up, text, JSON and HTML reports of a comparison run."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from processing.compare import report_html, report_plots, report_text, svg
from processing.compare.registry import configure
from processing.compare.results import ComparisonResult, Reason, Status, not_compared
from processing.compare.runner import CompareRequest, run_comparison
from processing.compare.summary import ordered, rollup


def result(path: str, status: Status, pvalue: float | None = None) -> ComparisonResult:
    return ComparisonResult(path=path, test="chi2", status=status, pvalue=pvalue)


def test_rollup_counts_everything_below_and_sorts_worst_first():
    results = [
        result("A/x/h1", Status.SUCCESS, 0.5),
        result("A/x/h2", Status.FAIL, 1e-9),
        result("A/y/h3", Status.NULL),
        result("B/h4", Status.SUCCESS, 0.9),
        result("B/h5", Status.SKIPPED),
        result("top", Status.SUCCESS, 1.0),
    ]
    summaries = rollup(results)
    assert summaries[""].counts == {
        Status.SUCCESS: 3,
        Status.FAIL: 1,
        Status.NULL: 1,
        Status.SKIPPED: 1,
    }
    assert summaries["A"].counts == {Status.SUCCESS: 1, Status.FAIL: 1, Status.NULL: 1}
    assert summaries["A"].worst is Status.FAIL and summaries["B"].worst is Status.SKIPPED
    assert summaries["A"].subdirectories == ["A/x", "A/y"]
    assert [s.path for s in ordered(summaries)][:3] == ["", "A", "A/x"]
    assert [r.path for r in summaries["A/x"].results] == ["A/x/h2", "A/x/h1"]


def test_records_have_exactly_the_documented_keys():
    record = not_compared("d/h", "ks", Status.SKIPPED, Reason.MISSING_IN_TEST).to_record()
    assert record == {
        "path": "d/h",
        "test": "ks",
        "statistic": None,
        "pvalue": None,
        "ndf": None,
        "status": "skipped",
        "reason": "missing_in_test",
    }
    infinite = ComparisonResult("h", "chi2", Status.FAIL, statistic=float("inf"), pvalue=0.0)
    assert json.loads(json.dumps(infinite.to_record()))["statistic"] is None


def test_pie_and_rank_histogram():
    pie = svg.pie({Status.SUCCESS: 3, Status.FAIL: 1})
    assert pie.count('class="slice') == 2 and "fail: 1" in pie
    assert svg.pie({Status.NULL: 2}).count("<circle") == 1
    assert svg.rank_bins([1.0, 0.5, 0.05, 1e-3, 1e-20, 0.0]) == [
        2,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        1,
        2,
    ]
    bars = svg.rank_histogram([0.5, 1e-7], 1e-5)
    assert bars.count('class="bin"') == 13
    assert re.findall(r'fill="(#[0-9a-f]+)" data-count="1"', bars) == [
        svg.COLORS[Status.FAIL],
        svg.COLORS[Status.SUCCESS],
    ]


def test_jsroot_is_located_bundle_first(tmp_path):
    modules_only = tmp_path / "vendored"
    (modules_only / "modules").mkdir(parents=True)
    (modules_only / "modules" / "main.mjs").write_text("export {};\n")
    bundle = tmp_path / "npm"
    (bundle / "build").mkdir(parents=True)
    (bundle / "build" / "jsroot.js").write_text("var JSROOT = {};\n")
    (bundle / "LICENSE").write_text("MIT\n")
    assert report_plots.locate_jsroot([modules_only, bundle]) == (
        bundle / "build" / "jsroot.js",
        "bundle",
    )
    assert report_plots.locate_jsroot([modules_only]) == (modules_only, "modules")
    with pytest.raises(report_plots.JsrootMissingError):
        report_plots.locate_jsroot([tmp_path / "nothing"])
    settings = report_plots.install_jsroot(tmp_path / "out", [modules_only, bundle])
    assert settings.jsroot_mode == "bundle"
    assert (tmp_path / "out" / "jsroot" / "jsroot.js").is_file()
    assert (tmp_path / "out" / "jsroot" / "LICENSE").is_file()
    assert "drawAll(window.JSROOT)" in (tmp_path / "out" / "draw.js").read_text()
    modules = report_plots.install_jsroot(tmp_path / "out2", [modules_only])
    assert modules.jsroot_mode == "modules"
    assert "import * as JSROOT" in (tmp_path / "out2" / "draw.mjs").read_text()


def test_page_names_are_safe_and_unique():
    names = {report_plots.page_name(p) for p in ("a/b c", "a_b c", "../../etc/passwd", "a/b<c>")}
    assert len(names) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+\.html", n) and "/" not in n for n in names)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.json: dict[str, str] = {}
        self._json_id = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a":
            self.links.append(attributes["href"])
        if tag == "script" and "src" in attributes:
            self.scripts.append(attributes["src"])
        if tag == "script" and attributes.get("type") == "application/json":
            self._json_id = attributes["id"]

    def handle_data(self, data):
        if self._json_id:
            self.json[self._json_id] = self.json.get(self._json_id, "") + data

    def handle_endtag(self, tag):
        if tag == "script":
            self._json_id = None


def parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(1)

    def make(shift: float) -> list[Histogram]:
        one = Histogram.empty("EMC/energy", [Axis.regular(40, -4, 4)])
        one.fill(rng.normal(shift, 1, 4000))
        two = Histogram.empty("EMC/SM0/hitmap", [Axis.regular(8, 0, 8), Axis.regular(6, 0, 6)])
        two.fill(rng.uniform(0, 8, 2000), rng.uniform(0, 6, 2000))
        return [one, two]

    test_hists = make(1.0) + [Histogram.empty("EMC/only_in_test", [Axis.regular(3, 0, 3)])]
    reference_hists = make(0.0) + [
        Histogram.empty("TRD/only_in_reference", [Axis.regular(3, 0, 3)])
    ]
    test_file, reference_file = tmp / "test.root", tmp / "reference.root"
    rootio.write_file(test_file, test_hists)
    rootio.write_file(reference_file, reference_hists)
    outdir = tmp / "html"
    request = CompareRequest(test_file, [reference_file], [configure("chi2")])
    request.pages = report_plots.install_jsroot(outdir)
    run = run_comparison(request)
    report_html.write_report(run, outdir)
    return run, outdir


def test_text_report_lists_problems_worst_first(report):
    run, _ = report
    text = report_text.render(run)
    assert "2 histograms in both files, 1 only in the test file, 1 only in the reference" in text
    assert "Results: fail 1, skipped 2, null 0, success 1" in text
    problems = text.split("Histograms not passing, worst first:")[1].strip().splitlines()
    assert problems[0].split()[:3] == ["fail", "chi2", "EMC/energy"]
    assert {line.split()[2] for line in problems[1:]} == {
        "EMC/only_in_test",
        "TRD/only_in_reference",
    }
    assert "missing_in_reference" in text and "missing_in_test" in text


def test_json_records(report, tmp_path):
    run, _ = report
    target = tmp_path / "out.json"
    report_text.write_json(run.results, target)
    records = json.loads(target.read_text())
    assert [(r["path"], r["status"]) for r in records] == [
        ("EMC/SM0/hitmap", "success"),
        ("EMC/energy", "fail"),
        ("EMC/only_in_test", "skipped"),
        ("TRD/only_in_reference", "skipped"),
    ]


def test_html_report_pages_and_links(report):
    run, outdir = report
    index = outdir / "index.html"
    assert index.is_file()
    pages = [
        index,
        *sorted((outdir / "dirs").glob("*.html")),
        *sorted((outdir / "hists").glob("*.html")),
    ]
    # One page per directory holding results (top, EMC, EMC/SM0, TRD) and per histogram.
    assert len(list((outdir / "dirs").glob("*.html"))) == 4
    assert len(list((outdir / "hists").glob("*.html"))) == 4
    for page in pages:
        parsed = parse(page)
        for link in parsed.links + parsed.scripts:
            assert (page.parent / link).resolve().is_file(), f"{page.name}: broken link {link}"
    top = (outdir / "index.html").read_text()
    assert top.count('class="pie"') >= 4  # the overall pie and one per directory row
    assert 'class="rank"' in top


def test_histogram_pages_embed_jsroot_objects(report):
    _, outdir = report
    energy = parse(outdir / "hists" / report_plots.page_name("EMC/energy"))
    config = json.loads(energy.json["draw-config"])
    assert config["mode"] == "overlay" and config["option"] == "hist"
    test_obj, reference_obj = (
        json.loads(energy.json["h-test"]),
        json.loads(energy.json["h-reference"]),
    )
    assert test_obj["_typename"] == "TH1D" and len(test_obj["fArray"]) == 42
    assert reference_obj["fLineColor"] != test_obj["fLineColor"]
    hitmap = parse(outdir / "hists" / report_plots.page_name("EMC/SM0/hitmap"))
    assert json.loads(hitmap.json["draw-config"])["mode"] == "side"
    assert json.loads(hitmap.json["h-test"])["_typename"] == "TH2D"
    alone = parse(outdir / "hists" / report_plots.page_name("TRD/only_in_reference"))
    assert "h-test" not in alone.json and "h-reference" in alone.json
    _, mode = report_plots.locate_jsroot()
    expected = ["../jsroot/jsroot.js", "../draw.js"] if mode == "bundle" else ["../draw.mjs"]
    assert energy.scripts == expected
