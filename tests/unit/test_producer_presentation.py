"""The producer's presentation is kept: whole-run JSON is ROOT's own, a slice changes numbers only.

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

from overwatch.config import ProcessingSettings
from overwatch.store.db import open_db
from processing import SliceService
from processing.pipeline import Pipeline
from tests.processing_helpers import T0, snapshot_path
from tests.rootjson_support import FIXTURES, differences, index, root_json

SETTINGS = ProcessingSettings(events_histogram={})
HISTOGRAMS = {"TH1F", "TH1D", "TH1I", "TH2F", "TH2D", "TH3F", "TProfile", "TProfile2D"}


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
