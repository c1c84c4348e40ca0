"""The JSON Overwatch serves is what JSROOT expects: checked with the real JSROOT in node.

Every histogram of every sample ROOT file (written by ROOT itself) and
synthetic histograms of every class are serialised with overwatch.jsroot,
then parsed and drawn by JSROOT 7.11.2 in ONE node process; the bin contents
JSROOT reports must equal uproot's own reading of the source.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import uproot

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from overwatch.jsroot import stack, to_json_bytes, to_jsroot, trend_graph
from tests.jsroot_node import JSROOT_PACKAGE, run_jsroot

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "webapp" / "static" / "jsroot"
PINNED_VERSION = "7.11.2"
HISTOGRAM_CLASS = re.compile(r"^(TH[123][CSIFDL]|TProfile|TProfile2D|TProfile3D)$")

RNG = np.random.default_rng(20240601)
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def _filled(name, class_name, axes, n=2000, weighted=False, title=""):
    """A histogram filled with random points, some outside the axes (flow bins)."""
    h = Histogram.empty(name, axes, class_name, title=title)
    coords = [RNG.uniform(a.low - 0.2 * (a.high - a.low), a.high * 1.2, n) for a in axes]
    weights = RNG.uniform(0.5, 2.0, n) if weighted else None
    y = RNG.normal(3.0, 1.5, n) if h.is_profile else None
    h.fill(*coords, weights=weights, y=y)
    return h


def _synthetic() -> dict[str, tuple[Histogram, str]]:
    """name -> (histogram, draw option) covering every class Overwatch serves."""
    x = Axis.regular(20, -5.0, 5.0, title="E (GeV)")
    y = Axis.regular(8, 0.0, 4.0, title="#eta")
    z = Axis.regular(5, 0.0, 1.0, title="z")
    labels_x = Axis.regular(4, 0.0, 4.0, labels={1: "EMCal", 2: "DCal", 3: "PHOS", 4: "TPC"})
    labels_y = Axis.regular(3, 0.0, 3.0, labels={1: "good", 3: "bad"})  # one bin unlabelled
    variable = Axis.from_edges([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0], title="p_{T}")
    return {
        "TH1F": (_filled("EMC/hits/TH1F", "TH1F", [x], title="hits"), ""),
        "TH1D weighted": (_filled("TH1D", "TH1D", [x], weighted=True), "E"),
        "TH1I": (_filled("TH1I", "TH1I", [x]), "hist"),
        "TH1S": (_filled("TH1S", "TH1S", [x], n=300), ""),
        "TH2F": (_filled("TH2F", "TH2F", [x, y]), "colz"),
        "TH2D weighted": (_filled("TH2D", "TH2D", [x, y], weighted=True), "colz"),
        "TH2I": (_filled("TH2I", "TH2I", [x, y]), "col"),
        "TH3F": (_filled("TH3F", "TH3F", [x, y, z]), ""),
        "TH3D": (_filled("TH3D", "TH3D", [x, y, z], weighted=True), "box"),
        "TProfile": (_filled("TProfile", "TProfile", [x]), ""),
        "TProfile weighted": (_filled("TProfileW", "TProfile", [x], weighted=True), "E1"),
        "TProfile2D": (_filled("TProfile2D", "TProfile2D", [x, y]), "colz"),
        "TProfile3D": (_filled("TProfile3D", "TProfile3D", [x, y, z]), ""),
        "variable TH1D": (_filled("var1", "TH1D", [variable]), ""),
        "variable TH2F": (_filled("var2", "TH2F", [x, variable]), "colz"),
        "labelled TH1F": (_filled("lab1", "TH1F", [labels_x], n=200), ""),
        "labelled TH2D": (_filled("lab2", "TH2D", [labels_x, labels_y], n=200), "text"),
    }


SYNTHETIC = _synthetic()


def _uproot_reference(path: Path, key: str):
    """uproot's own reading: (class, contents, errors, entries, labels per axis)."""
    with uproot.open(path) as file:
        obj = file[key]
        class_name = obj.classname
        mode = obj.member("fErrorMode") if class_name.startswith("TProfile") else None
        errors = (
            obj.errors(flow=True, error_mode=mode) if mode is not None else obj.errors(flow=True)
        )
        labels = []
        for letter in "XYZ"[: obj.values().ndim]:
            raw = obj.member(f"f{letter}axis").member("fLabels", none_if_missing=True)
            labels.append(
                sorted((int(s.member("@fUniqueID")), str(s)) for s in raw) if raw else None
            )
        return (
            class_name,
            np.asarray(obj.values(flow=True), dtype=np.float64).ravel(order="F"),
            np.asarray(errors, dtype=np.float64).ravel(order="F"),
            float(obj.member("fEntries")),
            labels,
        )


@pytest.fixture(scope="module")
def drawn(sample_files: list[Path]):
    """Serialise everything once and let ONE node process parse and draw it all."""
    served: dict[str, bytes] = {}
    options: dict[str, str] = {}
    for path in sample_files:
        for key, histogram in rootio.read_histograms(path).histograms.items():
            served[f"{path.name}:{key}"] = to_json_bytes(to_jsroot(histogram))
    for name, (histogram, option) in SYNTHETIC.items():
        served[name] = to_json_bytes(to_jsroot(histogram, draw_option=option or None))
        options[name] = option
    results = run_jsroot([(name, text, options.get(name)) for name, text in served.items()])
    by_name = {result["name"]: result for result in results}
    return served, by_name


def _assert_drawn(result: dict) -> None:
    assert result["error"] is None, result["error"]
    assert result["has_svg"] and result["svg_length"] > 500


# -- real ROOT files -------------------------------------------------------------------


def test_sample_file_histograms_match_uproot(sample_file: Path, drawn):
    path = sample_file  # one per sample file; a missing folder fails (tests/conftest.py)
    served, results = drawn
    with uproot.open(path) as file:
        expected_keys = {
            key.rsplit(";", 1)[0]
            for key, class_name in file.classnames(recursive=True).items()
            if HISTOGRAM_CLASS.match(class_name)
        }
    drawn_keys = {name.split(":", 1)[1] for name in results if name.startswith(path.name + ":")}
    assert drawn_keys == expected_keys
    for key in sorted(expected_keys):
        result = results[f"{path.name}:{key}"]
        _assert_drawn(result)
        class_name, contents, errors, entries, labels = _uproot_reference(path, key)
        assert result["typename"] == class_name
        with uproot.open(path) as file:  # the object's own name, not its key's
            assert result["fName"] == file[key].member("fName")
        assert result["fEntries"] == entries
        assert result["ncells"] == result["array_length"] == contents.size
        if class_name.startswith("TProfile"):
            np.testing.assert_allclose(result["contents"], contents, rtol=1e-12, atol=0)
        else:
            np.testing.assert_array_equal(result["contents"], contents)
        np.testing.assert_allclose(result["errors"], errors, rtol=1e-9, atol=1e-300)
        got_labels = [
            sorted(map(tuple, a["labels"])) if a["labels"] else None for a in result["axes"]
        ]
        assert got_labels == labels
        if class_name[-1] in "CSI" and not class_name.startswith("TProfile"):
            assert all(type(v) is int for v in json.loads(served[f"{path.name}:{key}"])["fArray"])


def test_sample_files_cover_every_class_and_labels(drawn):
    """The sample set really exercises what the test above claims to check."""
    _, results = drawn
    typenames = {r["typename"] for name, r in results.items() if ".root:" in name}
    assert {
        "TH1F",
        "TH1D",
        "TH1I",
        "TH2F",
        "TH2D",
        "TProfile",
        "TProfile2D",
        "TProfile3D",
    } <= typenames
    labelled = [r for name, r in results.items() if ".root:" in name and r["axes"][0]["labels"]]
    assert labelled
    variable = [r for name, r in results.items() if ".root:" in name and r["axes"][0]["xbins"]]
    assert variable


# -- synthetic histograms of every class -------------------------------------------------


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_histogram_parsed_and_drawn(name, drawn):
    served, results = drawn
    histogram, option = SYNTHETIC[name]
    result = results[name]
    _assert_drawn(result)
    assert result["typename"] == histogram.class_name
    assert result["fName"] == histogram.name.rsplit("/", 1)[-1]
    assert result["fTitle"] == histogram.title
    assert result["fOption"] == option
    assert result["fEntries"] == histogram.entries
    assert result["ndim"] == histogram.ndim
    for got, axis in zip(result["axes"], histogram.axes, strict=True):
        assert got["nbins"] == axis.nbins
        assert (got["xmin"], got["xmax"]) == (axis.low, axis.high)
        assert got["title"] == axis.title
        assert got["xbins"] == (axis.edges.tolist() if axis.variable else [])
    expected = histogram.contents().ravel(order="F")
    if histogram.is_profile:
        np.testing.assert_allclose(result["contents"], expected, rtol=1e-12, atol=0)
    else:
        np.testing.assert_array_equal(result["contents"], expected)
    np.testing.assert_allclose(result["errors"], histogram.errors().ravel(order="F"), rtol=1e-9)
    assert np.count_nonzero(result["contents"]) > 0


def test_synthetic_histograms_match_uproot_reading_of_written_file(tmp_path, drawn):
    """Independent reference: the same histograms written to a ROOT file and read by uproot."""
    _, results = drawn
    path = tmp_path / "synthetic.root"
    rootio.write_file(
        path, [h.copy(name=name.replace(" ", "_")) for name, (h, _) in SYNTHETIC.items()]
    )
    for name in SYNTHETIC:
        class_name, contents, errors, entries, _ = _uproot_reference(path, name.replace(" ", "_"))
        assert results[name]["typename"] == class_name
        assert results[name]["fEntries"] == entries
        np.testing.assert_allclose(results[name]["contents"], contents, rtol=1e-12, atol=0)
        np.testing.assert_allclose(results[name]["errors"], errors, rtol=1e-9, atol=1e-300)


def test_labels_reach_jsroot_and_the_drawing(drawn):
    _, results = drawn
    one = results["labelled TH1F"]
    assert one["axes"][0]["labels"] == [[1, "EMCal"], [2, "DCal"], [3, "PHOS"], [4, "TPC"]]
    assert {"EMCal", "DCal", "PHOS", "TPC"} <= set(one["svg_texts"])
    two = results["labelled TH2D"]
    assert two["axes"][1]["labels"] == [[1, "good"], [3, "bad"]]
    assert {"EMCal", "TPC", "good", "bad"} <= set(two["svg_texts"])


def test_label_list_is_root_thashlist_layout():
    histogram, _ = SYNTHETIC["labelled TH2D"]
    labels = to_jsroot(histogram)["fYaxis"]["fLabels"]
    assert labels == {
        "_typename": "THashList",
        "name": "THashList",
        "arr": [
            {"_typename": "TObjString", "fUniqueID": 1, "fBits": 0, "fString": "good"},
            {"_typename": "TObjString", "fUniqueID": 3, "fBits": 0, "fString": "bad"},
        ],
        "opt": ["", ""],
    }
    assert to_jsroot(SYNTHETIC["TH1F"][0])["fXaxis"]["fLabels"] is None


# -- number encoding -------------------------------------------------------------------------


def test_integer_classes_serialise_ints_rounding_non_integral_content():
    histogram = Histogram.empty("ints", [Axis.regular(3, 0.0, 3.0)], "TH1I")
    histogram.values[1:4, ...] = [2.0, 2.6, -1.4]
    array = json.loads(to_json_bytes(to_jsroot(histogram)))["fArray"]
    assert array == [0, 2, 3, -1, 0]
    assert all(type(v) is int for v in array)


def test_integral_float_bins_are_written_as_ints_and_the_rest_exactly():
    counts, _ = SYNTHETIC["TH1F"]
    text = to_json_bytes(to_jsroot(counts))
    assert b'"fArray":[' in text
    assert all(type(v) is int for v in json.loads(text)["fArray"])
    weighted, _ = SYNTHETIC["TH1D weighted"]
    obj = json.loads(to_json_bytes(to_jsroot(weighted)))
    assert obj["fArray"] == weighted.values.ravel(order="F").tolist()  # exact round trip
    assert obj["fSumw2"] == weighted.sumw2.ravel(order="F").tolist()
    assert obj["fNcells"] == len(obj["fArray"]) == 22


def test_non_finite_numbers_become_zero_with_a_warning(caplog):
    histogram = Histogram.empty("EMC/broken", [Axis.regular(4, 0.0, 4.0)], "TH1D", weighted=True)
    histogram.values[1:5] = [1.0, np.nan, np.inf, -np.inf]
    histogram.sumw2[1:5] = [1.0, np.nan, 4.0, 1.0]
    histogram.entries = np.nan
    histogram.stats = histogram.compute_stats()
    with caplog.at_level(logging.WARNING, logger="overwatch.jsroot"):
        text = to_json_bytes(to_jsroot(histogram))
    assert b"NaN" not in text and b"Infinity" not in text

    def refuse(constant):
        raise AssertionError(f"invalid JSON constant {constant}")

    obj = json.loads(text, parse_constant=refuse)
    assert obj["fArray"] == [0, 1, 0, 0, 0, 0]
    assert obj["fSumw2"] == [0, 1, 0, 4, 1, 0]
    assert obj["fEntries"] == 0.0
    assert "EMC/broken" in caplog.text and "non-finite" in caplog.text
    result = run_jsroot([("broken", text, "")])[0]
    _assert_drawn(result)
    assert result["contents"].tolist() == [0, 1, 0, 0, 0, 0]


def test_to_json_bytes_refuses_nan_instead_of_writing_invalid_json():
    with pytest.raises(ValueError):
        to_json_bytes({"fEntries": float("nan")})


def test_root_member_layout_of_a_th2():
    histogram, _ = SYNTHETIC["TH2F"]
    obj = to_jsroot(histogram)
    for member in ("fTsumw", "fTsumw2", "fTsumwx", "fTsumwx2", "fTsumwy", "fTsumwy2", "fTsumwxy"):
        assert obj[member] == pytest.approx(histogram.stats[member])
    assert obj["fMinimum"] == obj["fMaximum"] == -1111
    assert obj["fFunctions"] == {"_typename": "TList", "name": "TList", "arr": [], "opt": []}
    assert obj["fBuffer"] == [] and obj["fSumw2"] == []
    assert obj["fZaxis"]["fNbins"] == 1 and obj["fZaxis"]["_typename"] == "TAxis"
    assert obj["fNcells"] == 22 * 10


def test_profile_members():
    histogram, _ = SYNTHETIC["TProfile2D"]
    obj = to_jsroot(histogram)
    assert obj["fBinEntries"] == histogram.bin_entries.ravel(order="F").tolist()
    assert obj["fBinSumw2"] == []
    assert obj["fErrorMode"] == 0
    assert {"fZmin", "fZmax", "fTsumwz", "fTsumwz2"} <= obj.keys()


# -- trends and stacks -------------------------------------------------------------------------


def test_trend_graph_is_a_time_axis_tgraph_shown_in_utc():
    times = T0 + np.array([120.0, 0.0, 60.0, np.nan, 180.0])
    values = np.array([3.0, 1.0, 2.0, 9.0, np.inf])
    graph = trend_graph("EMC/meanE", "Mean energy", times, values, y_title="<E> (GeV)")
    assert graph["_typename"] == "TGraph"
    assert graph["fNpoints"] == 3
    assert graph["fX"] == [T0, T0 + 60, T0 + 120]  # sorted, non-finite points dropped
    assert graph["fY"] == [1.0, 2.0, 3.0]
    # A time zone far from UTC: the labels must still be UTC (22:13 is T0 in UTC).
    result = run_jsroot([("trend", to_json_bytes(graph), "ALP")], time_zone="Asia/Kolkata")[0]
    _assert_drawn(result)
    assert result["fX"] == graph["fX"] and result["fY"] == graph["fY"]
    assert result["xaxis"]["time_display"] is True
    assert result["xaxis"]["time_format"].startswith("%H:%M%F1970-01-01 00:00:00s0")
    assert result["yaxis"]["title"] == "<E> (GeV)"
    clock = [t for t in result["svg_texts"] if re.fullmatch(r"\d\d:\d\d", t)]
    assert clock and all(t.startswith("22:") for t in clock)


def test_trend_graph_rejects_mismatched_lengths_and_draws_empty():
    with pytest.raises(ValueError, match="3 times but 2 values"):
        trend_graph("t", "t", [1.0, 2.0, 3.0], [1.0, 2.0])
    empty = trend_graph("t", "no data yet", [], [])
    assert empty["fNpoints"] == 0
    _assert_drawn(run_jsroot([("empty", to_json_bytes(empty), "AL")])[0])


def test_stack_of_histograms():
    first, _ = SYNTHETIC["TH1F"]
    second, _ = SYNTHETIC["TH1D weighted"]
    obj = stack("EMC/stack", "both", [first, to_jsroot(second)])
    assert obj["_typename"] == "THStack"
    assert obj["fHists"]["_typename"] == "TList"
    assert [h["_typename"] for h in obj["fHists"]["arr"]] == ["TH1F", "TH1D"]
    assert obj["fHists"]["arr"][0]["fLineColor"] != obj["fHists"]["arr"][1]["fLineColor"]
    results = run_jsroot([("stack", to_json_bytes(obj), ""), ("nostack", obj, "nostack")])
    for result in results:
        _assert_drawn(result)
        assert [m["typename"] for m in result["members"]] == ["TH1F", "TH1D"]
    with pytest.raises(ValueError, match="different dimensions"):
        stack("bad", "bad", [first, SYNTHETIC["TH2F"][0]])


# -- the node checker and the vendored JSROOT --------------------------------------------------


def test_checker_reports_bad_json_and_keeps_going():
    good = to_json_bytes(to_jsroot(SYNTHETIC["TH1F"][0]))
    results = run_jsroot([("bad", b'{"_typename": "TH1F", ', ""), ("good", good, "")])
    assert "JSON" in results[0]["error"]
    _assert_drawn(results[1])


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_vendored_jsroot_is_the_pinned_tested_version():
    assert (VENDORED / "VERSION").read_text().splitlines()[0] == PINNED_VERSION
    assert json.loads((VENDORED / "package.json").read_text())["version"] == PINNED_VERSION
    assert (
        "MIT" in (VENDORED / "LICENSE").read_text()
        or "Permission is hereby granted" in (VENDORED / "LICENSE").read_text()
    )
    tested = JSROOT_PACKAGE.parent
    assert json.loads(JSROOT_PACKAGE.read_text())["version"] == PINNED_VERSION
    # What the browser gets is byte for byte what these tests ran.
    assert _tree_digest(VENDORED / "modules") == _tree_digest(tested / "modules")


def test_vendored_modules_import_only_files_that_exist():
    """Every relative import the browser may follow from main.mjs resolves inside the copy."""
    modules = VENDORED / "modules"
    pattern = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}/[^'"]+)['"]""")
    pending, seen = [modules / "main.mjs"], set()
    while pending:
        current = pending.pop().resolve()
        if current in seen:
            continue
        seen.add(current)
        assert current.is_file(), f"missing vendored module {current}"
        code = "\n".join(
            line
            for line in current.read_text().splitlines()
            if not line.lstrip().startswith(("//", "*", "/*"))  # commented-out imports
        )
        pending.extend(current.parent / target for target in pattern.findall(code))
    assert len(seen) > 20
    assert (VENDORED / "fonts" / "symbol.ttf").is_file()


def test_missing_node_modules_fail_with_the_command_to_run(monkeypatch, tmp_path):
    import tests.jsroot_node as jsroot_node

    monkeypatch.setattr(jsroot_node, "JSROOT_PACKAGE", tmp_path / "jsroot" / "package.json")
    with pytest.raises(pytest.fail.Exception, match="make node-deps"):
        run_jsroot([("h", "{}", "")])
