"""The fast reader gives exactly what overwatch.rootio gives, or leaves the object to it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from processing.compare import fastread, walk
from processing.ingest import decode, rootfile

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "root-samples"


def assert_same(mine: Histogram, theirs: Histogram) -> None:
    assert (mine.name, mine.class_name, mine.title) == (
        theirs.name,
        theirs.class_name,
        theirs.title,
    )
    assert mine.entries == theirs.entries
    assert mine.stats == theirs.stats
    np.testing.assert_array_equal(mine.values, theirs.values)
    if theirs.sumw2 is None:
        assert mine.sumw2 is None
    else:
        np.testing.assert_array_equal(mine.sumw2, theirs.sumw2)
    assert len(mine.axes) == len(theirs.axes)
    for a, b in zip(mine.axes, theirs.axes, strict=True):
        np.testing.assert_array_equal(a.edges, b.edges)
        assert (a.title, a.labels, a.variable, a.name) == (b.title, b.labels, b.variable, b.name)


def decoded_directly(path: Path, keys: dict, name: str) -> bool:
    """Whether compare reads this histogram from its bytes (not through rootio)."""
    key = keys[name]
    try:
        fastread.histogram(name, key.class_name, rootfile.object_bytes(path.read_bytes(), key))
    except (fastread._Unsupported, decode.Unknown, rootfile.FormatError):
        return False
    return True


def test_same_as_rootio_on_every_sample_file(sample_file: Path):
    path = sample_file  # one per sample file; a missing folder fails (tests/conftest.py)
    keys = walk.list_objects(path)
    names = [n for n, info in keys.items() if walk.readable(info.class_name)]
    expected = rootio.read_histograms(path, names=names)
    got = fastread.read(str(path), keys, names)
    assert set(got.histograms) == set(expected.histograms)
    assert [s.path for s in got.skipped] == [s.path for s in expected.skipped]
    for name, histogram in expected.histograms.items():
        assert_same(got.histograms[name], histogram)


def test_decodes_the_files_overwatch_writes(tmp_path):
    rng = np.random.default_rng(1)
    histograms = []
    for letter in "CSIFD":
        h = Histogram.empty(
            f"one/TH1{letter}", [Axis.regular(12, -1, 1, title="x [cm]")], f"TH1{letter}"
        )
        h.fill(rng.normal(0, 0.5, 100))
        h.title = f"a TH1{letter}"
        histograms.append(h)
        h2 = Histogram.empty(
            f"two/deeper/TH2{letter}",
            [Axis.from_edges([0, 1, 3, 7]), Axis.regular(4, 0, 4)],
            f"TH2{letter}",
        )
        h2.fill(rng.uniform(0, 7, 50), rng.uniform(0, 4, 50))
        histograms.append(h2)
    weighted = Histogram.empty("weighted", [Axis.regular(5, 0, 5)], weighted=True)
    weighted.fill(rng.uniform(0, 5, 30), weights=rng.uniform(0.5, 2, 30))
    labelled = Histogram.empty("labelled", [Axis.regular(2, 0, 2, labels={1: "on", 2: "off"})])
    labelled.fill([0.5, 1.5, 1.5])
    histograms += [weighted, labelled]
    path = tmp_path / "written.root"
    rootio.write_file(path, histograms)
    keys = walk.list_objects(path)
    got = fastread.read(str(path), keys, list(keys))
    expected = rootio.read_histograms(path)
    assert set(got.histograms) == set(expected.histograms) == {h.name for h in histograms}
    for name, histogram in expected.histograms.items():
        assert_same(got.histograms[name], histogram)
        assert decoded_directly(path, keys, name) == (name != "labelled")  # labels -> rootio


def test_damaged_bytes_fall_back_to_rootio_errors(tmp_path):
    h = Histogram.empty("h", [Axis.regular(3, 0, 3)])
    h.fill([0.5, 1.5])
    path = tmp_path / "one.root"
    rootio.write_file(path, [h])
    keys = walk.list_objects(path)
    lying = {"h": dataclasses.replace(keys["h"], objlen=5)}
    got = fastread.read(str(path), lying, ["h"])  # a wrong size: not decoded here
    assert_same(got.histograms["h"], rootio.read_histograms(path).histograms["h"])
