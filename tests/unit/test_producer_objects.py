"""Every object a producer sends, shown as ROOT shows it.

Whole-run JSON is ROOT's own, field by field; a slice changes only numbers;
graphs and functions, which cannot be subtracted, are shown as in the snapshot
the view ends at ("not sliced"); stacks, polygon histograms and efficiencies
are sliced through their parts.

Two snapshots of one producer, written by ROOT 6.40 (``tests/fixtures/root_objects``),
go through processing; the view service's JSON of every histogram is compared
field by field with ROOT's TBufferJSON: of the second snapshot for the whole run,
of ROOT's own subtraction for the latest slice (contents, errors, entries and
statistics; the producer's fMinimum/fMaximum stay, since a slice changes only
numbers, where the reference, made with a fresh ``Add``, has none).
"""

from __future__ import annotations

import json
import shutil

import pytest
import uproot

from overwatch.config import ProcessingSettings
from overwatch.jsroot import to_json_bytes
from overwatch.rootjson import to_json
from overwatch.rootmodels import rooplot_for_jsroot
from overwatch.store.db import open_db
from processing import SliceService
from processing.pipeline import Pipeline
from tests.jsroot_node import run_jsroot
from tests.processing_helpers import T0, snapshot_path
from tests.rootjson_support import FIXTURES, differences, index, root_json

SETTINGS = ProcessingSettings(events_histogram={})
HISTOGRAMS = {"TH1F", "TH1D", "TH1I", "TH2F", "TH2D", "TH3F", "TProfile", "TProfile2D"}
WHOLE = {"TGraph", "TGraphErrors", "TGraphAsymmErrors", "TGraph2D", "TMultiGraph", "TF1", "TF2"}
SLICED = {"THStack", "TH2Poly", "TEfficiency"}
#: Not drawable: ROOT's own bookkeeping and folders.
NOT_DRAWABLE = {"TProcessID", "TDirectoryFile"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    for k, n in enumerate((1, 2)):
        path = snapshot_path(data, 1, "EMC", T0 + 60 * k)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / f"objects_{n}.root", path)
    db = open_db("memory://")
    report = Pipeline(data, db, SETTINGS).run_until_idle()
    assert (report.processed, report.bad) == (2, 0)
    yield SliceService(data, db, settings=SETTINGS)
    db.close()


def histogram_keys() -> list[str]:
    return [key for key, info in index(2).items() if info["class"] in HISTOGRAMS]


@pytest.mark.parametrize("key", histogram_keys())
def test_whole_run_json_is_the_producers(service, key) -> None:
    view = service.view(1, "EMC", "cumulative")
    assert differences(view.jsroot(key), root_json(2, key), key) == []


@pytest.mark.parametrize("key", histogram_keys())
def test_a_slice_changes_only_the_numbers(service, key) -> None:
    view = service.view(1, "EMC", "latest")
    reference = json.loads((FIXTURES / "slices" / f"{key.replace('/', '__')}.json").read_text())
    ours = view.jsroot(key)
    produced = root_json(2, key)
    for bound in ("fMinimum", "fMaximum"):  # the producer's, kept
        assert ours[bound] == produced[bound]
        reference[bound] = produced[bound]
    assert differences(ours, reference, key) == []


def test_the_zoomed_filled_spectrum_is_served_as_drawn(service) -> None:
    """The issue's example: range 0-1593, filled, 'Counts' - not bare channels."""
    obj = service.view(1, "EMC", "cumulative").jsroot("hEnergy")
    assert obj["fYaxis"]["fTitle"] == "Counts"
    assert (obj["fXaxis"]["fFirst"], obj["fXaxis"]["fLast"]) == (1, 200)
    assert obj["fFillColor"] == 851 and obj["fFillStyle"] == 1001
    assert [f["fName"] for f in obj["fFunctions"]["arr"]] == ["peakFit"]


def test_the_objects_own_name_is_served(service) -> None:
    obj = service.view(1, "EMC", "cumulative").jsroot("hChannels")
    assert obj["fName"] == "labelledChannels"  # not the key name


def keys_of(classes: set[str]) -> list[str]:
    return [key for key, info in index(2).items() if info["class"] in classes]


def test_every_drawable_object_is_listed(service) -> None:
    view = service.view(1, "EMC", "cumulative")
    listed = dict(view.paths)
    drawable = {k: i["class"] for k, i in index(2).items() if i["class"] not in NOT_DRAWABLE}
    assert {k: listed.get(k) for k in drawable} == drawable
    assert not any(";" in path for path in listed)  # parts are no histograms of their own
    assert not any(";" in path for path in view.histograms)  # plugins never see them


@pytest.mark.parametrize("key", keys_of(WHOLE | SLICED))
def test_whole_run_json_of_other_objects_is_roots(service, key) -> None:
    view = service.view(1, "EMC", "cumulative")
    assert differences(view.jsroot(key), root_json(2, key), key) == []


@pytest.mark.parametrize("key", keys_of(WHOLE))
def test_objects_that_cannot_be_subtracted_show_as_at_the_end(service, key) -> None:
    view = service.view(1, "EMC", "latest")
    assert key in view.to_dict()["not_sliced"]
    assert differences(view.jsroot(key), root_json(2, key), key) == []


@pytest.mark.parametrize("key", keys_of(SLICED))
def test_stacks_and_polygon_histograms_are_sliced_as_root_subtracts(service, key) -> None:
    view = service.view(1, "EMC", "latest")
    assert key not in view.to_dict()["not_sliced"]
    reference = json.loads((FIXTURES / "slices" / f"{key.replace('/', '__')}.json").read_text())
    assert differences(view.jsroot(key), reference, key) == []


def test_a_snapshot_of_graphs_only_is_processed_not_bad(tmp_path) -> None:
    path = snapshot_path(tmp_path, 2, "TOF", T0)
    path.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "graphs_only.root", path)  # written by ROOT: a graph, a function
    db = open_db("memory://")
    try:
        report = Pipeline(tmp_path, db, SETTINGS).run_until_idle()
        assert (report.processed, report.bad) == (1, 0)
        view = SliceService(tmp_path, db, settings=SETTINGS).view(2, "TOF", "cumulative")
        assert dict(view.paths) == {"tofRate": "TGraph", "tofShape": "TF1"}
        with uproot.open(path) as written:
            expected = to_json(written["tofRate"], written.file)
        assert view.jsroot("tofRate") == expected
        assert expected["fTitle"] == "TOF rate"  # ROOT moves ";x;y" into the axis titles
    finally:
        db.close()


def test_jsroot_draws_every_object_served(service) -> None:
    """Whole run and latest slice: JSROOT itself (in node) parses and draws each one."""
    served = []
    for name in ("cumulative", "latest"):
        view = service.view(1, "EMC", name)
        served += [
            (f"{name}:{path}", to_json_bytes(view.jsroot(path)), None) for path, _ in view.paths
        ]
    results = run_jsroot(served)
    assert len(results) == len(served) > 30
    failed = {r["name"]: r["error"] for r in results if r["error"] or not r["has_svg"]}
    assert failed == {}
    drawn = {r["name"]: r for r in results}
    assert drawn["cumulative:mgLayers"]["typename"] == "TMultiGraph"
    assert drawn["latest:sub/hsLayers"]["typename"] == "THStack"


def test_slice_statistics_of_histograms_set_by_bin_equal_roots(service) -> None:
    """``fTsumw = 0`` upstream (SetBinContent): the slice's mean and std dev are ROOT's."""
    stats = json.loads((FIXTURES / "slices" / "stats.json").read_text())
    for key in ("hSetBin", "hEnergy", "pAdc"):
        expected = stats[key]["slice"]
        piece = service.view(1, "EMC", "latest").histograms[key]
        assert piece.entries == pytest.approx(expected["entries"])
        if stats[key]["range_restricted"]:
            continue  # ROOT's GetMean honours an axis range; the sums are compared above
        s = piece.stats
        mean = s["fTsumwx"] / s["fTsumw"]
        std = (s["fTsumwx2"] / s["fTsumw"] - mean**2) ** 0.5
        assert mean == pytest.approx(expected["mean"][0], rel=1e-9), key
        assert std == pytest.approx(expected["std_dev"][0], rel=1e-9), key


def test_a_rooplot_is_served_as_jsroot_draws_it(service) -> None:
    """ROOT's own JSON of a RooPlot v3 is not drawable by JSROOT 7: the frame is converted."""
    view = service.view(1, "EMC", "latest")
    assert "rooFrame" in view.to_dict()["not_sliced"]
    served = view.jsroot("rooFrame")
    with uproot.open(FIXTURES / "objects_2.root") as file:  # its JSON is ROOT's: test_rootmodels
        expected = rooplot_for_jsroot(to_json(file["rooFrame"], file.file))
    assert served == expected
    assert served["_items"]["_typename"] == "TList" and len(served["_items"]["arr"]) >= 2
