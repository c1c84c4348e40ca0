"""The array cache: layouts, flat buffers, atomic files, and the one-read encoder."""

from __future__ import annotations

import json
from pathlib import Path

import cramjam
import numpy as np
import pytest

from overwatch import rootio
from overwatch.config import ProcessingSettings
from overwatch.histogram import Axis, Histogram
from overwatch.rootio import RootFileError
from overwatch.store.db import open_db
from processing.ingest import cache as cache_module
from processing.ingest.cache import (
    CACHE_SUFFIX,
    LAYOUT_SUFFIX,
    LEGACY_LAYOUT_SUFFIX,
    LEGACY_SUFFIX,
    ArrayCache,
    CacheError,
    clear_decoded,
    encode_array,
    split_cache_name,
)
from processing.ingest.cache_layout import Layout, LayoutError
from processing.ingest.objects import is_part, part_path
from processing.ingest.read import SnapshotEncoder
from processing.pipeline import Pipeline
from processing.slices.reader import SliceReader
from tests.processing_helpers import SAMPLES, T0, write_snapshot


def every_class() -> list[Histogram]:
    """One filled histogram of each kind the cache must keep exactly."""
    rng = np.random.default_rng(7)
    labels = Axis.regular(3, 0, 3, title="trigger", labels={1: "MB", 2: "EMC", 3: "DCal"})
    made = [
        Histogram.empty("dir/sub dir/h1f", [Axis.regular(20, -1, 1, title="x")], "TH1F"),
        Histogram.empty("h1d", [Axis.from_edges([0, 1, 3, 7, 15])], "TH1D", weighted=True),
        Histogram.empty("h1i", [labels], "TH1I"),
        Histogram.empty("h2f", [Axis.regular(6, 0, 1), Axis.regular(4, 0, 1)], "TH2F"),
        Histogram.empty("h3d", [Axis.regular(3, 0, 1)] * 3, "TH3D"),
        Histogram.empty("prof", [Axis.regular(5, 0, 1)], "TProfile"),
        Histogram.empty("prof2", [Axis.regular(4, 0, 1), Axis.regular(3, 0, 1)], "TProfile2D"),
    ]
    for h in made:
        coords = [rng.uniform(-0.2, 1.2, 200) for _ in h.axes]
        if h.is_profile:
            h.fill(*coords, y=rng.normal(size=200), weights=rng.uniform(0.5, 2, 200))
        elif h.class_name == "TH1D":
            h.fill(rng.uniform(0, 16, 200), weights=rng.uniform(0.5, 2, 200))
        elif h.class_name == "TH1I":
            h.fill(rng.uniform(0, 3, 200))
        else:
            h.fill(*coords)
        h.title = f"title of {h.name}"
    return made


def test_layout_round_trips_every_class_exactly() -> None:
    histograms = every_class()
    layout = Layout.of(histograms)
    buffer = layout.pack(histograms)
    again = Layout.from_json(layout.to_json())
    assert again.hash == layout.hash and again.size == layout.size == len(buffer)
    for h in histograms:
        back = again.histogram(buffer, h.name)
        assert back.class_name == h.class_name and back.title == h.title
        assert back.same_binning(h)
        assert [a.labels for a in back.axes] == [a.labels for a in h.axes]
        assert [a.variable for a in back.axes] == [a.variable for a in h.axes]
        for name in ("values", "sumw2", "bin_entries", "bin_sumw2"):
            mine, theirs = getattr(back, name), getattr(h, name)
            assert (mine is None) == (theirs is None), name
            if mine is not None:
                np.testing.assert_array_equal(mine, theirs)
        assert back.entries == h.entries and back.stats == h.stats


def test_layout_hash_depends_on_description_not_numbers() -> None:
    histograms = every_class()
    first = Layout.of(histograms)
    histograms[0].fill(np.array([0.5]))
    assert Layout.of(histograms).hash == first.hash
    histograms[0].title = "another title"
    assert Layout.of(histograms).hash != first.hash


def test_cache_files_are_written_atomically_and_read_back(tmp_path) -> None:
    histograms = every_class()
    layout = Layout.of(histograms)
    eff = layout.pack(histograms)
    cache = ArrayCache(tmp_path)
    relative = cache.write(3, "EMC", "EMChists.2026_01_01_00_00_00", layout, eff)
    assert relative.startswith("cache/Run3/EMC/") and (tmp_path / relative).is_file()
    assert split_cache_name(relative.rsplit("/", 1)[1]) == (
        "EMChists.2026_01_01_00_00_00",
        layout.hash,
    )
    state = cache.load(3, "EMC", relative)
    np.testing.assert_array_equal(state.eff, eff)
    assert state.off is None and not state.eff.flags.writeable  # a read-only mmap

    offsets = np.arange(layout.size, dtype=np.float64)
    cache.write(3, "EMC", "EMChists.2026_01_01_00_01_00", layout, eff + offsets, offsets)
    with_offsets = cache.load(3, "EMC", f"EMChists.2026_01_01_00_01_00.{layout.hash}{CACHE_SUFFIX}")
    np.testing.assert_array_equal(with_offsets.off, offsets)
    np.testing.assert_allclose(with_offsets.raw(), eff, rtol=1e-12)  # eff - off: rounding only
    assert sorted(cache.listing(3, "EMC")) == [
        "EMChists.2026_01_01_00_00_00",
        "EMChists.2026_01_01_00_01_00",
    ]
    assert not list(cache.directory(3, "EMC").glob(".*"))  # no temporary file left behind


def test_damaged_or_missing_cache_files_raise_cache_error(tmp_path) -> None:
    histograms = every_class()
    layout = Layout.of(histograms)
    cache = ArrayCache(tmp_path)
    relative = cache.write(
        1, "EMC", "EMChists.2026_01_01_00_00_00", layout, layout.pack(histograms)
    )
    path = tmp_path / relative
    path.write_bytes(path.read_bytes()[:100])  # truncated by someone else
    with pytest.raises(CacheError, match="damaged|does not match"):
        cache.load(1, "EMC", relative)
    with pytest.raises(CacheError, match="missing"):
        cache.load(1, "EMC", f"EMChists.2026_01_01_00_09_00.0123456789abcdef{CACHE_SUFFIX}")
    layout_file = cache.directory(1, "EMC") / f"layout-{layout.hash}{LAYOUT_SUFFIX}"
    text = json.loads(bytes(cramjam.zstd.decompress(layout_file.read_bytes())))
    text["histograms"][0]["title"] = "tampered"
    with pytest.raises(LayoutError, match="does not match its hash"):
        Layout.from_json(json.dumps(text))


def test_remove_temporary_cleans_interrupted_writes(tmp_path) -> None:
    cache = ArrayCache(tmp_path)
    directory = cache.directory(2, "TPC")
    directory.mkdir(parents=True)
    (directory / f".TPChists.2026_01_01_00_00_00.abc{CACHE_SUFFIX}.x1.tmp").write_bytes(b"half")
    assert cache.remove_temporary(2, "TPC") == 1
    assert list(directory.iterdir()) == []


def test_encoder_equals_reference_conversion_on_real_files(sample_file: Path) -> None:
    """The fast path (known signatures) gives exactly what rootio.read_histograms gives."""
    path = sample_file  # one per sample file; a missing folder fails (tests/conftest.py)
    reference = rootio.read_histograms(path)
    encoder = SnapshotEncoder()
    first, second = encoder.read(path), encoder.read(path)  # second read: fast path
    histograms = list(reference.histograms.values())
    expected = Layout.of(histograms)
    assert first.layout.hash == second.layout.hash
    # The file's histograms come first, as the reference converts them; the parts of
    # other objects (a TEfficiency's passed and total) follow in the same layout.
    plain = [e for e in first.layout.entries if not is_part(e.path)]
    assert [e.digest for e in plain] == [e.digest for e in expected.entries]
    packed = expected.pack(histograms)
    for encoded in (first, second):
        for i, entry in enumerate(expected.entries):
            j = encoded.layout.index[entry.path]
            np.testing.assert_array_equal(
                encoded.layout.block(encoded.raw, j), expected.block(packed, i)
            )
    # What the reference skips as "not a histogram" the encoder keeps if it can be drawn.
    kept = {record.path for record in first.objects}
    assert {s.path for s in first.skipped} | kept == {s.path for s in reference.skipped}
    parts = {e.path for e in first.layout.entries if is_part(e.path)}
    assert parts == {part_path(r.path, p) for r in first.objects for p in r.parts}


def test_encoder_refuses_truncated_and_foreign_files(tmp_path) -> None:
    data = (SAMPLES / "uproot-hepdata-example.root").read_bytes()
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"this is not a ROOT file at all" * 10)
    encoder = SnapshotEncoder()
    for path in (truncated, garbage):
        with pytest.raises(RootFileError):
            encoder.read(path)


# -- the compressed format -------------------------------------------------------------


def _cache_with_one(tmp_path: Path, off: bool = False) -> tuple[ArrayCache, Layout, np.ndarray]:
    histograms = every_class()
    layout = Layout.of(histograms)
    eff = layout.pack(histograms)
    eff[:4] = [np.nan, np.inf, -np.inf, -0.0]  # every bit pattern must come back
    cache = ArrayCache(tmp_path)
    offsets = np.linspace(0, 1, layout.size) if off else None
    cache.write(1, "EMC", "EMChists.2026_01_01_00_00_00", layout, eff, offsets)
    return cache, layout, eff


@pytest.mark.parametrize("off", [False, True])
def test_compressed_cache_round_trips_bit_for_bit(tmp_path: Path, off: bool) -> None:
    cache, layout, eff = _cache_with_one(tmp_path, off)
    (name,) = cache.listing(1, "EMC").values()
    assert name.endswith(CACHE_SUFFIX)
    state = cache.load(1, "EMC", name)
    assert state.eff.view(np.uint64).tolist() == eff.view(np.uint64).tolist()
    assert (state.off is not None) == off
    if off:
        offsets = np.linspace(0, 1, layout.size)
        assert state.off.view(np.uint64).tolist() == offsets.view(np.uint64).tolist()
    assert not state.eff.flags.writeable  # shared by readers: nobody may change it
    assert np.shares_memory(cache.load(1, "EMC", name).eff, state.eff)  # decoded once
    assert (cache.directory(1, "EMC") / name).stat().st_size < eff.nbytes * (1 + off)


def _with_header(data: bytes, **changes) -> bytes:
    """``.owc`` bytes with header fields replaced, the body kept."""
    size = int.from_bytes(data[4:8], "little")
    header = json.dumps({**json.loads(data[8 : 8 + size]), **changes}).encode()
    return data[:4] + len(header).to_bytes(4, "little") + header + data[8 + size :]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "damaged"),
        (lambda b: b"XXXX" + b[4:], "not an Overwatch cache file"),
        (lambda b: b[:8] + b"#" + b[9:], "bad header"),
        (lambda b: b[:-3], "damaged"),
        (lambda b: b"", "not an Overwatch cache file"),
        (lambda b: _with_header(b, shape=[10**12]), "does not match layout"),  # no 8 TB buffer
        (lambda b: _with_header(b, shape=[3, 5]), "unknown codec or shape"),
        (lambda b: _with_header(b, shape=[]), "unknown codec or shape"),
        (lambda b: _with_header(b, codec="zstd-shuffle4"), "unknown codec or shape"),
        (lambda b: _with_header(b, layout="0123456789abcdef"), "holds layout 0123456789abcdef"),
    ],
)
def test_damaged_compressed_cache_file_is_a_clear_error(tmp_path: Path, damage, message) -> None:
    cache, _layout, _eff = _cache_with_one(tmp_path)
    (name,) = cache.listing(1, "EMC").values()
    path = cache.directory(1, "EMC") / name
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CacheError, match=message) as raised:
        cache.load(1, "EMC", name)
    assert str(path) in str(raised.value)


def test_cache_files_of_the_earlier_format_are_still_read_and_replaced(tmp_path: Path) -> None:
    histograms = every_class()
    layout = Layout.of(histograms)
    eff = layout.pack(histograms)
    cache = ArrayCache(tmp_path)
    stem = "EMChists.2026_01_01_00_00_00"
    cache.write(1, "EMC", stem, layout, eff)  # writes the layout file too
    directory = cache.directory(1, "EMC")
    (new,) = directory.glob(f"*{CACHE_SUFFIX}")
    old = directory / f"{stem}.{layout.hash}{LEGACY_SUFFIX}"
    np.save(old, eff)
    new.unlink()
    assert cache.listing(1, "EMC") == {stem: old.name}
    assert np.array_equal(cache.load(1, "EMC", old.name).eff, eff)
    new.write_bytes(b"")  # both formats present: the compressed one is listed
    assert cache.listing(1, "EMC") == {stem: new.name}
    cache.write(1, "EMC", stem, layout, eff)  # rewriting the snapshot drops the old file
    assert not old.exists() and cache.listing(1, "EMC") == {stem: new.name}


def test_a_rewritten_cache_file_is_decoded_again(tmp_path: Path) -> None:
    cache, layout, eff = _cache_with_one(tmp_path)
    (name,) = cache.listing(1, "EMC").values()
    assert cache.load(1, "EMC", name).eff[5] == eff[5]
    changed = eff.copy()
    changed[5:] += 1.0
    cache.write(1, "EMC", "EMChists.2026_01_01_00_00_00", layout, changed)  # a late snapshot
    assert cache.load(1, "EMC", name).eff.tolist()[5:] == changed.tolist()[5:]


def test_a_cache_file_under_another_layouts_name_is_refused(tmp_path: Path) -> None:
    cache, layout, eff = _cache_with_one(tmp_path)
    other = Layout.of(every_class()[:2])
    cache.write(1, "EMC", "EMChists.2026_01_01_00_01_00", other, other.pack(every_class()[:2]))
    listing = cache.listing(1, "EMC")
    first, second = (cache.directory(1, "EMC") / listing[s] for s in sorted(listing))
    second.write_bytes(first.read_bytes())
    clear_decoded()
    with pytest.raises(CacheError, match=f"holds layout {layout.hash}, its name says {other.hash}"):
        cache.load(1, "EMC", second.name)
    # The header is checked as written: the same bytes under their own name still read.
    assert encode_array(eff, layout.hash) == first.read_bytes()


def test_layouts_are_compressed_and_plain_json_layouts_still_read(tmp_path, monkeypatch) -> None:
    cache, layout, eff = _cache_with_one(tmp_path)
    directory = cache.directory(1, "EMC")
    compressed = directory / f"layout-{layout.hash}{LAYOUT_SUFFIX}"
    text = bytes(cramjam.zstd.decompress(compressed.read_bytes()))
    assert (
        compressed.stat().st_size < len(text) / 3
        and Layout.from_json(text.decode()).hash == layout.hash
    )
    monkeypatch.setattr(cache_module, "known_layout", lambda _hash: None)  # read from disk
    (name,) = cache.listing(1, "EMC").values()
    compressed.unlink()
    (directory / f"layout-{layout.hash}{LEGACY_LAYOUT_SUFFIX}").write_bytes(text)  # earlier
    assert cache.load(1, "EMC", name).layout.hash == layout.hash
    compressed.write_bytes(b"\x28\xb5\x2f\xfd garbage")  # both: the compressed one wins
    with pytest.raises(CacheError, match=f"layout file {compressed} is damaged"):
        cache.load(1, "EMC", name)
    compressed.unlink()
    (directory / f"layout-{layout.hash}{LEGACY_LAYOUT_SUFFIX}").unlink()
    with pytest.raises(CacheError, match=f"layout file {compressed} is missing"):
        cache.load(1, "EMC", name)


def test_a_data_directory_of_the_earlier_format_keeps_working(tmp_path: Path) -> None:
    """Caches written before ``.owc`` (``.npy`` and plain layouts) serve slices and go on."""
    histograms = every_class()
    rng = np.random.default_rng(3)
    for k in range(3):
        write_snapshot(tmp_path, 5, "EMC", T0 + 60 * k, histograms)
        for h in histograms:  # cumulative: the next snapshot holds more
            coords = [rng.uniform(0, 1, 50) for _ in h.axes]
            h.fill(*coords, **({"y": rng.normal(size=50)} if h.is_profile else {}))
    db = open_db("memory://")
    Pipeline(tmp_path, db, ProcessingSettings()).run_until_idle()
    reader = SliceReader(tmp_path, db)
    expected = reader.slice(5, "EMC", T0, T0 + 120)
    directory = ArrayCache(tmp_path).directory(5, "EMC")
    for path in directory.glob(f"*{CACHE_SUFFIX}"):  # as an earlier version left them
        np.save(path.with_suffix(LEGACY_SUFFIX), cache_module.decode_array(path.read_bytes(), ""))
        path.unlink()
    for path in directory.glob(f"layout-*{LAYOUT_SUFFIX}"):
        legacy = path.name[: -len(LAYOUT_SUFFIX)] + LEGACY_LAYOUT_SUFFIX
        (directory / legacy).write_bytes(cramjam.zstd.decompress(path.read_bytes()))
        path.unlink()
    clear_decoded()

    for path, h in SliceReader(tmp_path, db).slice(5, "EMC", T0, T0 + 120).items():
        assert h.values.tolist() == expected[path].values.tolist(), path
    write_snapshot(tmp_path, 5, "EMC", T0 + 180, histograms)
    assert Pipeline(tmp_path, db, ProcessingSettings()).run_until_idle().processed == 1
    latest = SliceReader(tmp_path, db).latest_slice(5, "EMC", "h1d")
    assert latest.entries == 50 and sorted(p.suffix for p in directory.glob("EMChists*")) == [
        *[LEGACY_SUFFIX] * 3,
        CACHE_SUFFIX,
    ]


def test_a_cache_file_is_found_under_either_suffix(tmp_path: Path) -> None:
    """Records keep the name first written; the snapshot may be rewritten as ``.owc`` since."""
    cache, layout, eff = _cache_with_one(tmp_path)
    (name,) = cache.listing(1, "EMC").values()
    legacy_name = name[: -len(CACHE_SUFFIX)] + LEGACY_SUFFIX
    state = cache.load(1, "EMC", f"cache/Run1/EMC/{legacy_name}")
    assert state.eff.view(np.uint64).tolist() == eff.view(np.uint64).tolist()
    (cache.directory(1, "EMC") / name).unlink()
    with pytest.raises(CacheError, match=f"{legacy_name} is missing"):
        cache.load(1, "EMC", legacy_name)
