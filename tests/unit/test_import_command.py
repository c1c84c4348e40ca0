"""``overwatch import FILE.root --run N --subsystem S [--time T]``: any ROOT file becomes a snapshot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import uproot
import zmq

from overwatch.cli import main
from overwatch.notices import NoticeListener
from overwatch.store.db import open_db, read
from receivers.quarantine import read_index
from tests.unit.test_web_support import process

#: 2025-11-22 10:00:00 UTC
T0 = 1_763_805_600.0
NAME = "EMChists.2025_11_22_10_00_00.root"


@pytest.fixture
def root_file(tmp_path: Path) -> Path:
    """A ROOT file written by uproot, not by Overwatch: an events count and a 2D histogram."""
    rng = np.random.default_rng(3)
    path = tmp_path / "from elsewhere.root"
    with uproot.recreate(path) as file:
        file["events"] = np.histogram(rng.random(500), bins=1, range=(0, 1))
        file["EMCal/cell map"] = np.histogram2d(
            rng.normal(size=400), rng.normal(size=400), bins=(8, 6), range=((-3, 3), (-3, 3))
        )
    return path


def run_import(*args: str, data_dir: Path) -> int:
    return main(["import", *args, "--data-dir", str(data_dir), "--notify", ""])


def stored(data_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(data_dir))
        for p in data_dir.glob("Run*/*/*")
        if not p.name.startswith(".")
    )


def test_a_root_file_becomes_a_snapshot_that_processing_reads(tmp_path, root_file, capsys):
    data_dir = tmp_path / "data"
    code = run_import(str(root_file), "--run", "12", "--subsystem", "EMC",
                      "--time", "2025-11-22T11:00:00+01:00", data_dir=data_dir)  # fmt: skip
    assert code == 0
    assert stored(data_dir) == [f"Run12/EMC/{NAME}"]
    assert (data_dir / "Run12" / "EMC" / NAME).read_bytes() == root_file.read_bytes()
    assert f"stored {root_file} as {data_dir / 'Run12' / 'EMC' / NAME}" in capsys.readouterr().out
    db = open_db("memory://")
    try:
        process(data_dir, db)
        seen = read(db, lambda root: (list(root.runs[12].subsystems["EMC"].snapshots),
                                      sorted(root.runs[12].subsystems["EMC"].histograms)))  # fmt: skip
    finally:
        db.close()
    assert seen == ([T0], ["EMCal/cell map", "events"])


def test_the_time_defaults_to_the_files_modification_time_and_names_stay_unique(
    tmp_path, root_file
):
    data_dir = tmp_path / "data"
    os.utime(root_file, (T0, T0))
    assert run_import(str(root_file), "--run", "3", "--subsystem", "EMC", data_dir=data_dir) == 0
    other = tmp_path / "other.root"
    with uproot.recreate(other) as file:
        file["events"] = np.histogram(np.arange(10.0), bins=2)
    assert run_import(str(other), "--run", "3", "--subsystem", "EMC", "--time", str(T0),
                      data_dir=data_dir) == 0  # fmt: skip
    assert stored(data_dir) == [
        f"Run3/EMC/{NAME}",
        "Run3/EMC/EMChists.2025_11_22_10_00_01.root",  # the same second: the next free one
    ]


def test_the_new_snapshot_is_announced_to_processing(tmp_path, root_file):
    context = zmq.Context()
    listener = NoticeListener("tcp://127.0.0.1:*", context=context)
    try:
        code = main(["import", str(root_file), "--run", "4", "--subsystem", "TPC", "--time",
                     str(T0), "--data-dir", str(tmp_path / "data"),
                     "--notify", listener.address])  # fmt: skip
        assert code == 0
        notice = listener.receive(5.0)  # sent before the command returned
    finally:
        listener.close()
        context.destroy(linger=0)
    assert notice == {"run": 4, "subsystem": "TPC",
                      "path": "Run4/TPC/TPChists.2025_11_22_10_00_00.root"}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (("--run", "abc"), "--run: invalid run number 'abc'"),
        (("--run", "0"), "--run: invalid run number 0"),
        (("--run", "-5"), "--run: invalid run number"),
        (("--run", "2147483648"), "--run: invalid run number"),
        (("--subsystem", "EMC/x"), "--subsystem: invalid subsystem"),
        (("--subsystem", ""), "--subsystem: invalid subsystem"),
        (("--mode", "no mode"), "--mode: invalid mode"),
        (("--time", "yesterday"), "--time: 'yesterday': expected unix seconds"),
        (("--time", "2025-11-22T10:00:00"), "--time: '2025-11-22T10:00:00' has no zone"),
        (("--time", "1e13"), "--time: is not a plausible unix time"),
    ],
)
def test_a_bad_option_exits_2_saying_which(tmp_path, root_file, capsys, options, words):
    data_dir = tmp_path / "data"
    arguments = {"--run": "1", "--subsystem": "EMC"}
    arguments.update(dict(zip(options[::2], options[1::2], strict=True)))
    flat = [item for pair in arguments.items() for item in pair]
    assert run_import(str(root_file), *flat, data_dir=data_dir) == 2
    error = capsys.readouterr().err
    assert error.startswith("overwatch import: ") and words in error, error
    assert stored(data_dir) == []


def test_a_missing_file_or_a_folder_exits_2(tmp_path, capsys):
    data_dir = tmp_path / "data"
    missing = tmp_path / "nothing.root"
    assert run_import(str(missing), "--run", "1", "--subsystem", "EMC", data_dir=data_dir) == 2
    assert f"overwatch import: {missing} does not exist" in capsys.readouterr().err
    assert run_import(str(tmp_path), "--run", "1", "--subsystem", "EMC", data_dir=data_dir) == 2
    assert "is not a file" in capsys.readouterr().err
    assert not data_dir.exists()


def test_a_file_that_is_not_root_exits_2_and_nothing_is_stored(tmp_path, capsys):
    data_dir = tmp_path / "data"
    text = tmp_path / "notes.root"
    text.write_text("these are notes, not histograms\n")
    assert run_import(str(text), "--run", "1", "--subsystem", "EMC", data_dir=data_dir) == 2
    error = capsys.readouterr().err
    assert f"overwatch import: {text} is not a ROOT file listing objects" in error
    assert "nothing stored" in error
    assert stored(data_dir) == []
    assert [r["reason"].startswith("bad payload") for r in read_index(data_dir, "EMC")] == [True]
    empty = tmp_path / "empty.root"
    empty.write_bytes(b"")
    assert run_import(str(empty), "--run", "1", "--subsystem", "EMC", data_dir=data_dir) == 2
    assert f"{empty} is empty" in capsys.readouterr().err


def test_a_time_in_the_future_exits_2(tmp_path, root_file, capsys):
    data_dir = tmp_path / "data"
    later = str(time.time() + 86_400)
    assert run_import(str(root_file), "--run", "1", "--subsystem", "EMC", "--time", later,
                      data_dir=data_dir) == 2  # fmt: skip
    assert "future timestamp" in capsys.readouterr().err
    assert stored(data_dir) == []
