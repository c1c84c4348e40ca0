"""Bulk decoding of snapshots against uproot, the oracle: the same layouts, bit for bit.

Every histogram of every sample file (``shared/data/root-samples``), of the
project's fixtures written by ROOT and of files written by ``rootio`` (every
class, labels, variable bins, weights, profiles with ``fBinSumw2``, each
compression) is read twice by an encoder that decodes bytes and once by one
that reads everything with uproot; the results must be identical. Objects that
are not handled, and damaged bytes, must give uproot's result (a clear skip,
never other numbers).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import uproot

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from processing.ingest import decode, rootfile
from processing.ingest.read import EncodedSnapshot, SnapshotEncoder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "root_objects"
FIXTURE_FILES = sorted(FIXTURES.glob("*.root"))


def _same(bulk: EncodedSnapshot, reference: EncodedSnapshot) -> None:
    assert [e.to_json() for e in bulk.layout.entries] == [
        e.to_json() for e in reference.layout.entries
    ]
    assert bulk.layout.hash == reference.layout.hash
    assert bulk.raw.tobytes() == reference.raw.tobytes()  # bit-identical, NaN included
    assert _notes(bulk) == _notes(reference)
    assert [o.to_json() for o in bulk.objects] == [o.to_json() for o in reference.objects]


def _notes(encoded: EncodedSnapshot) -> list[tuple[str, str, str]]:
    """What was skipped and why (uproot's messages name objects by their memory address)."""
    return [(s.path, s.class_name, re.sub("0x[0-9a-f]+", "0x", s.reason)) for s in encoded.skipped]


def _histogram_keys(path: Path) -> list[rootfile.Key]:
    return [
        key
        for key in rootfile.list_keys(path.read_bytes())
        if rootio.HISTOGRAM_CLASS.match(key.class_name)
    ]


def _decodable(path: Path) -> int:
    """How many histograms of a file decode.plan handles."""
    data, count = path.read_bytes(), 0
    for key in _histogram_keys(path):
        try:
            decode.plan(key.class_name, rootfile.object_bytes(data, key))
        except decode.Unknown:
            continue
        count += 1
    return count


def _check_both_ways(path: Path) -> SnapshotEncoder:
    """Three bulk reads (first sight, by signature, by the remembered plan) equal uproot's."""
    reference = SnapshotEncoder(bulk=False).read(path)
    encoder = SnapshotEncoder()
    for _ in range(3):
        _same(encoder.read(path), reference)
    return encoder


# -- the oracle on real files ----------------------------------------------------


def test_bulk_equals_uproot_on_every_sample_file(sample_file: Path) -> None:
    encoder = _check_both_ways(sample_file)
    n = len(_histogram_keys(sample_file))
    decodable = _decodable(sample_file)
    # The first read goes through uproot; later ones decode all that decode.plan handles.
    assert encoder.decoded == 2 * decodable
    assert encoder.converted == n + 2 * (n - decodable)


def test_sample_files_of_root_6_are_decoded(root_samples_dir: Path) -> None:
    """Not a vacuous oracle: the ROOT 5.34/6 samples decode without uproot."""
    for name in ("uproot-issue-880.root", "uproot-hepdata-example.root", "uproot-issue213.root"):
        path = root_samples_dir / name
        assert _decodable(path) == len(_histogram_keys(path)) > 0, name


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.name for p in FIXTURE_FILES])
def test_bulk_equals_uproot_on_the_root_fixtures(path: Path) -> None:
    encoder = _check_both_ways(path)
    n = len(_histogram_keys(path))
    assert _decodable(path) == n  # ROOT 6.40: every histogram class decodes
    assert encoder.decoded == 2 * n


def test_the_fixtures_exist() -> None:
    assert {p.name for p in FIXTURE_FILES} >= {"objects_1.root", "objects_2.root"}


def test_keys_are_listed_as_uproot_lists_them(sample_file: Path) -> None:
    with uproot.open(sample_file) as file:
        expected = [
            (path, key.fClassName, key.fCycle, key._fSeekKey, key._fObjlen)  # noqa: SLF001
            for path, key in rootio.list_keys(file)
        ]
    keys = rootfile.list_keys(sample_file.read_bytes())
    assert [(k.path, k.class_name, k.cycle, k.seek, k.objlen) for k in keys] == expected


# -- files written by rootio: every class, changing numbers ------------------------


def _every_class(rng: np.random.Generator) -> list[Histogram]:
    labels = Axis.regular(3, 0, 3, title="trigger", labels={1: "MB", 2: "EMC", 3: "DCal"})
    variable = Axis.from_edges([0.0, 1.0, 3.0, 7.0, 15.0], title="E (GeV)")
    made = [
        Histogram.empty(f"d/h1{t}", [Axis.regular(12, -1, 1, title="x")], f"TH1{t}", title=t)
        for t in "CSIFD"
    ]
    made += [
        Histogram.empty("d/weighted", [variable], "TH1D", weighted=True),
        Histogram.empty("d/sub dir/labels", [labels], "TH1I"),
        Histogram.empty("h2f", [Axis.regular(6, 0, 1), Axis.regular(4, 0, 1)], "TH2F"),
        Histogram.empty("h2d", [variable, labels], "TH2D", weighted=True),
        Histogram.empty("h3f", [Axis.regular(3, 0, 1)] * 3, "TH3F"),
        Histogram.empty("h3d", [Axis.regular(2, 0, 1), variable, Axis.regular(3, 0, 1)], "TH3D"),
        Histogram.empty("p/prof", [Axis.regular(5, 0, 1)], "TProfile"),
        Histogram.empty("p/prof_w", [variable], "TProfile"),
        Histogram.empty("p/prof2", [Axis.regular(4, 0, 1), Axis.regular(3, 0, 1)], "TProfile2D"),
        Histogram.empty("p/prof3", [Axis.regular(2, 0, 1)] * 3, "TProfile3D"),
    ]
    for h in made:
        if h.is_profile and h.name.endswith("_w"):
            h.bin_sumw2 = np.zeros_like(h.values)
    return made


def _fill(histograms: list[Histogram], rng: np.random.Generator) -> None:
    for h in histograms:
        coords = [rng.uniform(-0.2, 15.5, 50) for _ in h.axes]
        weights = rng.uniform(0.5, 2, 50) if (h.sumw2 is not None or h.is_profile) else None
        if h.is_profile:
            h.fill(*coords, y=rng.normal(size=50), weights=weights)
            if h.bin_sumw2 is not None:  # Σw² of a weighted profile, as ROOT keeps it
                h.bin_sumw2 = h.bin_sumw2 + 0.5 * h.bin_entries
        else:
            h.fill(*coords, weights=weights)


def test_every_class_written_by_rootio_over_a_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    histograms = _every_class(rng)
    encoder, reference = SnapshotEncoder(), SnapshotEncoder(bulk=False)
    for k in range(4):
        _fill(histograms, rng)
        if k == 2:  # a new title: a new signature, read with uproot once more
            histograms[0].title = "renamed"
        path = tmp_path / f"snapshot{k}.root"
        path.write_bytes(rootio.to_bytes(histograms))
        _same(encoder.read(path), reference.read(path))
    n = len(histograms)
    assert encoder.converted == n + 1  # first sight of each, and the renamed one
    assert encoder.decoded == 3 * n - 1
    assert encoder.uproot_files == 2  # only the files with something new opened uproot


@pytest.mark.parametrize(
    "compression",
    [None, uproot.ZLIB(1), uproot.LZMA(1), uproot.LZ4(1), uproot.ZSTD(1)],
    ids=["none", "zlib", "lzma", "lz4", "zstd"],
)
def test_each_compression(tmp_path: Path, compression) -> None:
    rng = np.random.default_rng(5)
    histograms = _every_class(rng)
    _fill(histograms, rng)
    path = tmp_path / "file.root"
    with uproot.recreate(path, compression=compression) as file:
        for h in histograms:
            file[h.name] = rootio.to_uproot(h)
    encoder = _check_both_ways(path)
    assert encoder.decoded == 2 * len(histograms)


def test_an_object_of_several_compression_blocks(tmp_path: Path) -> None:
    """ROOT compresses at most 16 MiB per block: a big histogram has several."""
    h = Histogram.empty("big", [Axis.regular(2_200_000, 0, 1)], "TH1D")
    h.values[:] = np.arange(h.values.size) % 7
    h.entries = float(h.values.sum())
    h.stats = h.compute_stats()
    path = tmp_path / "big.root"
    path.write_bytes(rootio.to_bytes([h]))
    data = path.read_bytes()
    (key,) = rootfile.list_keys(data)
    blocks, position = 0, key.seek + key.keylen
    while position < key.seek + key.nbytes:  # count the block headers
        position += 9 + int.from_bytes(data[position + 3 : position + 6], "little")
        blocks += 1
    assert blocks >= 2
    assert _check_both_ways(path).decoded == 2


# -- what is not decoded, and damaged bytes --------------------------------------


def _uncompressed_file(tmp_path: Path, histograms: list[Histogram], name: str) -> Path:
    path = tmp_path / name
    with uproot.recreate(path, compression=None) as file:
        for h in histograms:
            file[h.name] = rootio.to_uproot(h)
    return path


def _two_histograms() -> list[Histogram]:
    rng = np.random.default_rng(9)
    made = [
        Histogram.empty("a", [Axis.regular(10, 0, 1)], "TH1D", weighted=True),
        Histogram.empty("b", [Axis.regular(8, 0, 1)], "TH1F"),
    ]
    _fill(made, rng)
    return made


def _object_start(path: Path, name: str) -> tuple[bytearray, int, rootfile.Key]:
    data = bytearray(path.read_bytes())
    key = next(k for k in rootfile.list_keys(bytes(data)) if k.path == name)
    return data, key.seek + key.keylen, key


def test_an_unknown_class_version_goes_through_uproot(root_samples_dir: Path) -> None:
    """TH1 version 6 (an old ROOT) is not decoded: uproot reads it every time, the same."""
    path = root_samples_dir / "uproot-issue64.root"
    keys = _histogram_keys(path)
    data = path.read_bytes()
    with pytest.raises(decode.Unknown, match="class version 6"):
        decode.plan(keys[0].class_name, rootfile.object_bytes(data, keys[0]))
    encoder = _check_both_ways(path)
    assert (encoder.decoded, encoder.converted) == (0, 3 * len(keys))


def test_decode_refuses_other_classes_versions_and_cut_bytes(tmp_path: Path) -> None:
    path = _uncompressed_file(tmp_path, _two_histograms(), "plain.root")
    data, start, key = _object_start(path, "a")
    payload = bytes(data[start : start + key.objlen])
    plan = decode.plan("TH1D", payload)
    assert plan.spans["fArray"].count == 12 and plan.spans["fSumw2"].count == 12
    with pytest.raises(decode.Unknown, match="class TH2Poly"):
        decode.plan("TH2Poly", payload)
    with pytest.raises(decode.Unknown, match="class version"):
        decode.plan("TH1D", payload[:4] + struct.pack(">H", 99) + payload[6:])
    with pytest.raises(decode.Unknown):
        decode.plan("TH1D", payload[:-3])
    with pytest.raises(decode.Unknown, match="bytes after the object"):
        decode.plan("TH1D", payload + b"\0")
    with pytest.raises(decode.Unknown, match="byte count"):
        count = struct.unpack(">I", payload[:4])[0]
        decode.plan("TH1D", struct.pack(">I", count - 4) + payload[4:])
    with pytest.raises(decode.Unknown, match="without byte count"):
        decode.plan("TH1D", b"\0\0\0\x10" + payload[4:])


def _damage_both_ways(tmp_path: Path, damage) -> EncodedSnapshot:
    """A good snapshot, then one of the same histograms with ``damage`` done to ``a``.

    Whatever the damage, the result is uproot's, and ``a`` was read by uproot.
    """
    histograms = _two_histograms()
    good = _uncompressed_file(tmp_path, histograms, "good.root")
    data, start, key = _object_start(good, "a")
    damage(data, start, key)
    bad = tmp_path / "bad.root"
    bad.write_bytes(bytes(data))
    encoder = SnapshotEncoder()
    encoder.read(good)
    encoder.read(good)  # "a" and "b" are known signatures now
    before = (encoder.decoded, encoder.converted)
    result, reference = encoder.read(bad), SnapshotEncoder(bulk=False).read(bad)
    _same(result, reference)
    assert (encoder.decoded, encoder.converted) == (before[0] + 1, before[1] + 1)
    return result


def _wrong_byte_count(data: bytearray, start: int, key: rootfile.Key) -> None:
    count = struct.unpack(">I", data[start : start + 4])[0]
    data[start : start + 4] = struct.pack(">I", count + 8)


def _wrong_version(data: bytearray, start: int, key: rootfile.Key) -> None:
    data[start + 4 : start + 6] = struct.pack(">H", 99)


def _array_length(data: bytearray, start: int, key: rootfile.Key) -> None:
    # fArray's length, the last array of a TH1D: say 11 where 12 follow
    at = start + key.objlen - 12 * 8 - 4
    assert struct.unpack(">i", data[at : at + 4])[0] == 12
    data[at : at + 4] = struct.pack(">i", 11)


@pytest.mark.parametrize("damage", [_wrong_byte_count, _array_length])
def test_damaged_bytes_of_a_known_histogram_are_skipped_as_uproot_skips_them(
    tmp_path: Path, damage
) -> None:
    result = _damage_both_ways(tmp_path, damage)
    assert [e.path for e in result.layout.entries] == ["b"]
    assert [(s.path, s.reason.split(":")[0]) for s in result.skipped] == [("a", "unreadable")]


def test_a_version_not_decoded_here_is_read_by_uproot(tmp_path: Path) -> None:
    """uproot reads a TH1D whose version word it does not know as its usual layout."""
    result = _damage_both_ways(tmp_path, _wrong_version)
    assert [e.path for e in result.layout.entries] == ["a", "b"]


def test_a_truncated_object_record_is_skipped(tmp_path: Path) -> None:
    def cut(data: bytearray, start: int, key: rootfile.Key) -> None:
        # the key says the object is shorter than it is: bytes are missing for the walk
        at = key.listed_at + 6
        data[at : at + 4] = struct.pack(">i", key.objlen - 40)
        key_at_record = key.seek + 6
        data[key_at_record : key_at_record + 4] = struct.pack(">i", key.objlen - 40)

    result = _damage_both_ways(tmp_path, cut)
    assert [e.path for e in result.layout.entries] == ["b"]
    assert [(s.path, s.reason.split(":")[0]) for s in result.skipped] == [("a", "unreadable")]


@pytest.mark.parametrize("where", ["stream", "checksum"])
def test_a_damaged_zlib_block_is_a_format_error_and_the_histogram_skipped(
    tmp_path: Path, where: str
) -> None:
    """Bytes of a deflate stream damaged in transit: the object is unreadable (named),
    the other histograms of the snapshot are kept, as uproot keeps them."""
    path = tmp_path / "zlib.root"
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as file:
        for h in _two_histograms():
            file[h.name] = rootio.to_uproot(h)
    data, start, key = _object_start(path, "a")
    assert data[start : start + 2] == b"ZL"
    at = start + 9 + 4 if where == "stream" else key.seek + key.nbytes - 2
    data[at : at + 2] = bytes(b ^ 0xFF for b in data[at : at + 2])
    with pytest.raises(rootfile.FormatError, match="^a: "):
        rootfile.object_bytes(bytes(data), key)
    damaged = tmp_path / "damaged.root"
    damaged.write_bytes(bytes(data))
    result = SnapshotEncoder().read(damaged)
    assert [e.path for e in result.layout.entries] == ["b"]
    assert [(s.path, s.reason.split(":")[0]) for s in result.skipped] == [("a", "unreadable")]


def test_a_file_structure_not_read_here_goes_through_uproot(root_samples_dir: Path) -> None:
    """ROOT 4 keys without byte counts: listed and read by uproot, with the same result."""
    path = root_samples_dir / "uproot-from-geant4.root"
    encoder = _check_both_ways(path)
    assert encoder.decoded == 0
