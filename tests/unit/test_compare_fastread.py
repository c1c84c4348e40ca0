"""The fast reader gives exactly what overwatch.rootio gives, or leaves the object to it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import uproot

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from processing.compare import fastread, walk
from processing.ingest import decode, rootfile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "root_objects"
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
    for part in ("bin_entries", "bin_sumw2"):
        if getattr(theirs, part) is None:
            assert getattr(mine, part) is None
        else:
            np.testing.assert_array_equal(getattr(mine, part), getattr(theirs, part))
    assert (mine.profile_range, mine.error_mode) == (theirs.profile_range, theirs.error_mode)
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


def _same_as_rootio(path: Path) -> tuple[dict, rootio.ReadResult]:
    """Compare's reading of every histogram of a file equals rootio's; (keys, rootio's)."""
    keys = walk.list_objects(path)
    names = [n for n, key in keys.items() if walk.readable(key.class_name)]
    expected = rootio.read_histograms(path, names=names)
    got = fastread.read(str(path), keys, names)
    assert set(got.histograms) == set(expected.histograms)
    assert [s.path for s in got.skipped] == [s.path for s in expected.skipped]
    for name, histogram in expected.histograms.items():
        assert_same(got.histograms[name], histogram)
    return keys, expected


def test_same_as_rootio_on_the_root_fixtures():
    """Files written by ROOT 6.40: every class there but labelled axes is read from bytes."""
    paths = sorted(FIXTURES.glob("*.root"))
    assert {p.name for p in paths} >= {"objects_1.root", "objects_2.root"}
    for path in paths:
        keys, expected = _same_as_rootio(path)
        for name, histogram in expected.histograms.items():
            labelled = any(axis.labels for axis in histogram.axes)
            assert decoded_directly(path, keys, name) == (not labelled), name


def _every_class(rng: np.random.Generator) -> list[Histogram]:
    """TH1/TH2/TH3 of each storage type and the profiles, with titles and variable bins."""
    variable = Axis.from_edges([0.0, 1.0, 3.0, 7.0, 15.0], title="E (GeV)", name="energy")
    made = []
    for letter in "CSIFD":
        made += [
            Histogram.empty(f"one/h1{letter}", [Axis.regular(7, 0, 15, title="x")], f"TH1{letter}"),
            Histogram.empty(f"two/h2{letter}", [variable, Axis.regular(3, 0, 15)], f"TH2{letter}"),
            Histogram.empty(
                f"three/h3{letter}",
                [Axis.regular(2, 0, 15), variable, Axis.regular(3, 0, 15, title="z")],
                f"TH3{letter}",
            ),
        ]
    made += [
        Histogram.empty("weighted", [variable], "TH1D", weighted=True),
        Histogram.empty("p/prof", [Axis.regular(5, 0, 15)], "TProfile", title="mean y"),
        Histogram.empty("p/prof_w", [variable], "TProfile"),
        Histogram.empty("p/prof2", [Axis.regular(4, 0, 15), variable], "TProfile2D"),
        Histogram.empty("p/prof3", [Axis.regular(2, 0, 15)] * 3, "TProfile3D"),
    ]
    for h in made:
        h.title = h.title or f"a {h.class_name}"
        coords = [rng.uniform(-0.2, 15.5, 60) for _ in h.axes]
        weights = rng.uniform(0.5, 2, 60) if (h.sumw2 is not None or h.is_profile) else None
        if h.is_profile:
            if h.name.endswith("_w"):
                h.bin_sumw2 = np.zeros_like(h.values)
            h.fill(*coords, y=rng.normal(size=60), weights=weights)
            if h.bin_sumw2 is not None:  # Σw² of a weighted profile, as ROOT keeps it
                h.bin_sumw2 = h.bin_sumw2 + 0.5 * h.bin_entries
            h.error_mode, h.profile_range = 1, (-2.0, 2.0)
        else:
            h.fill(*coords, weights=weights)
    return made


@pytest.mark.parametrize(
    "compression",
    [None, uproot.ZLIB(1), uproot.LZMA(1), uproot.LZ4(1), uproot.ZSTD(1)],
    ids=["none", "zlib", "lzma", "lz4", "zstd"],
)
def test_every_class_and_compression_is_read_from_bytes(tmp_path, compression):
    histograms = _every_class(np.random.default_rng(7))
    path = tmp_path / "file.root"
    with uproot.recreate(path, compression=compression) as file:
        for h in histograms:
            file[h.name] = rootio.to_uproot(h)
    keys, expected = _same_as_rootio(path)
    assert set(expected.histograms) == {h.name for h in histograms}
    assert all(decoded_directly(path, keys, name) for name in expected.histograms)
    profile = expected.histograms["p/prof"]
    assert (profile.error_mode, profile.profile_range) == (1, (-2.0, 2.0))  # not defaults


def test_a_damaged_byte_count_is_left_to_rootio(tmp_path):
    histograms = _every_class(np.random.default_rng(8))[:3]
    path = tmp_path / "file.root"
    with uproot.recreate(path, compression=None) as file:
        for h in histograms:
            file[h.name] = rootio.to_uproot(h)
    keys = walk.list_objects(path)
    data = bytearray(path.read_bytes())
    start = keys["two/h2C"].seek + keys["two/h2C"].keylen
    data[start + 3] ^= 0x01  # the outer byte count no longer matches the object
    path.write_bytes(bytes(data))
    _same_as_rootio(path)
    assert not decoded_directly(path, keys, "two/h2C")
    assert decoded_directly(path, keys, "one/h1C")


@pytest.mark.parametrize(
    "compression",
    [uproot.ZLIB(1), uproot.LZMA(1), uproot.LZ4(1), uproot.ZSTD(1)],
    ids=["zlib", "lzma", "lz4", "zstd"],
)
def test_damaged_compressed_bytes_are_skipped_as_rootio_skips_them(tmp_path, compression):
    histograms = _every_class(np.random.default_rng(9))[:2]
    path = tmp_path / "file.root"
    with uproot.recreate(path, compression=compression) as file:
        for h in histograms:
            file[h.name] = rootio.to_uproot(h)
    keys = walk.list_objects(path)
    data = bytearray(path.read_bytes())
    damaged = keys["one/h1C"]
    data[damaged.seek + damaged.keylen + 30] ^= 0xFF  # inside the compressed block
    path.write_bytes(bytes(data))
    _, expected = _same_as_rootio(path)
    assert [s.path for s in expected.skipped] == ["one/h1C"]
    assert set(expected.histograms) == {"two/h2C"}
