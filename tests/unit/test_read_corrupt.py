"""A snapshot whose subdirectory key list is damaged: the directory is named, the rest is read.

The fixtures are ROOT files written by uproot (``overwatch.rootio.write_file``)
whose ``sub`` directory's key list is corrupted byte by byte, the way a
flipped block on disk or a broken sender would do it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import uproot

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, read
from processing.ingest.read import SnapshotEncoder
from processing.pipeline import Pipeline
from tests.processing_helpers import T0, write_snapshot


def _hist(name: str) -> Histogram:
    h = Histogram.empty(name, [Axis.regular(3, 0, 1)], "TH1D")
    h.values = np.asfortranarray(np.array([0.0, 1.0, 2.0, 3.0, 0.0]))
    h.entries = 6.0
    h.stats = h.compute_stats()
    return h


HISTOGRAMS = ("top", "sub/h1", "sub/h2")


def _key_list(path: Path) -> tuple[int, int, int]:
    """(start, length, offset of the key count) of the ``sub`` directory's key list."""
    with uproot.open(path) as file:
        sub = file["sub"]
        start, length = sub._fSeekKeys, sub._fNbytesKeys  # noqa: SLF001
    data = path.read_bytes()
    header = struct.unpack(">h", data[start + 14 : start + 16])[0]  # the list's TKey fKeylen
    return start, length, start + header


def _count_minus_one(data: bytearray, start: int, length: int, count: int) -> None:
    data[count : count + 4] = b"\xff\xff\xff\xff"  # uproot reads -1 keys as none at all


def _garbage_keys(data: bytearray, start: int, length: int, count: int) -> None:
    data[count + 4 : count + 80] = b"\xab" * 76  # the key headers after the count


def _garbage_header(data: bytearray, start: int, length: int, count: int) -> None:
    data[start + 5 : start + 61] = b"\xff" * 56  # the list's own header and its count


@pytest.fixture(params=[_count_minus_one, _garbage_keys, _garbage_header])
def corrupt_file(request, tmp_path: Path) -> Path:
    good = tmp_path / "good.root"
    rootio.write_file(good, [_hist(name) for name in HISTOGRAMS])
    assert set(rootio.read_histograms(good).histograms) == set(HISTOGRAMS)
    data = bytearray(good.read_bytes())
    request.param(data, *_key_list(good))
    bad = tmp_path / "bad.root"
    bad.write_bytes(bytes(data))
    return bad


def test_the_encoder_names_the_unreadable_directory_and_keeps_the_rest(corrupt_file) -> None:
    encoded = SnapshotEncoder().read(corrupt_file)
    assert [entry.path for entry in encoded.layout.entries] == ["top"]
    notes = {note.path: note.reason for note in encoded.unreadable}
    assert list(notes) == ["sub"], encoded.skipped
    assert notes["sub"].startswith("unreadable directory:")


def test_read_histograms_names_it_too(corrupt_file) -> None:
    result = rootio.read_histograms(corrupt_file)
    assert list(result.histograms) == ["top"]
    assert [(s.path, s.reason.split(":")[0]) for s in result.skipped] == [
        ("sub", "unreadable directory")
    ]


def test_an_intact_file_has_no_note(tmp_path: Path) -> None:
    path = tmp_path / "good.root"
    rootio.write_file(path, [_hist(name) for name in HISTOGRAMS])
    encoded = SnapshotEncoder().read(path)
    assert [entry.path for entry in encoded.layout.entries] == list(HISTOGRAMS)
    assert encoded.skipped == []


def test_processing_records_the_directory_as_an_error_of_the_snapshot(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    path = write_snapshot(data_dir, 3, "EMC", T0, [_hist(name) for name in HISTOGRAMS])
    data = bytearray(path.read_bytes())
    _count_minus_one(data, *_key_list(path))
    path.write_bytes(bytes(data))
    db = open_db("memory://")
    try:
        report = Pipeline(data_dir, db, analysis=False).run_until_idle()
        assert (report.processed, report.bad, report.failed) == (1, 0, [])

        def work(ow):
            sub = ow.runs[3].subsystems["EMC"]
            return sorted(sub.histograms), [(e.path, e.message) for e in sub.errors]

        histograms, errors = read(db, work)
    finally:
        db.close()
    assert histograms == ["top"]
    assert [p for p, _ in errors] == ["sub"]
    assert "damaged key list" in errors[0][1]
