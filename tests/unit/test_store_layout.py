"""overwatch.store.layout: every path of the data directory, named in one place; atomic_write."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from overwatch.names import InvalidName
from overwatch.store.layout import DataDir, FileSystem, atomic_write


def test_the_on_disk_layout(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    assert data.subsystem_dir(7, "EMC") == tmp_path / "Run7" / "EMC"
    assert data.cache_root == tmp_path / "cache"
    assert data.cache_dir(7, "EMC") == tmp_path / "cache" / "Run7" / "EMC"
    assert data.trend_dir(7, "EMC") == tmp_path / "cache" / "Run7" / "EMC" / "trends"
    assert data.status_dir == tmp_path / "status"
    assert data.heartbeat_file("EMC") == tmp_path / "status" / "receiver-EMC.json"
    assert data.quarantine_dir == tmp_path / "quarantine"
    assert data.quarantine_files("TPC", "2026_01_01_00_00_00", "12-3") == (
        tmp_path / "quarantine" / "TPC.2026_01_01_00_00_00.12-3.bin",
        tmp_path / "quarantine" / "TPC.2026_01_01_00_00_00.12-3.reason.json",
    )
    assert data.secret_key_file == tmp_path / ".secret_key"


@pytest.mark.parametrize("subsystem", ["../EMC", "", "EMC/x", "a b"])
def test_paths_refuse_names_that_could_leave_the_data_directory(
    tmp_path: Path, subsystem: str
) -> None:
    data = DataDir(tmp_path)
    for build in (data.subsystem_dir, data.cache_dir, data.trend_dir):
        with pytest.raises(InvalidName, match="invalid subsystem"):
            build(1, subsystem)
    with pytest.raises(InvalidName, match="invalid subsystem"):
        data.heartbeat_file(subsystem)
    with pytest.raises(InvalidName, match="invalid run number"):
        data.cache_dir(-1, "EMC")


def test_heartbeat_files_lists_only_heartbeats(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    assert data.heartbeat_files() == {}
    data.status_dir.mkdir()
    for name in (
        "receiver-TPC.json",
        "receiver-EMC.json",
        ".receiver-EMC.json.12.0.tmp",  # an atomic write in progress
        "receiver-bad name.json",
        "receiver-.json",
        "other.json",
        "receiver-HLT.txt",
    ):
        (data.status_dir / name).write_text("{}")
    assert data.heartbeat_files() == {
        "EMC": data.heartbeat_file("EMC"),
        "TPC": data.heartbeat_file("TPC"),
    }


def test_cache_runs(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    assert data.cache_runs() == []
    for name in ("Run12", "Run3", "Run007", "notarun"):
        (data.cache_root / name).mkdir(parents=True)
    (data.cache_root / "Run5").write_text("a file, not a run folder")
    assert data.cache_runs() == [3, 12]


def test_iter_snapshots_finds_only_snapshot_files(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    good = data.subsystem_dir(2, "EMC") / "EMChists.2026_01_01_00_00_00.root"
    good.parent.mkdir(parents=True)
    good.write_bytes(b"x")
    (good.parent / "TPChists.2026_01_01_00_00_00.root").write_bytes(b"x")  # other subsystem
    (good.parent / "notes.txt").write_text("x")
    (tmp_path / "Run02" / "EMC").mkdir(parents=True)  # not a canonical run folder
    (tmp_path / "Run02" / "EMC" / "EMChists.2026_01_01_00_00_00.root").write_bytes(b"x")
    assert [(s.run, s.subsystem, s.path) for s in data.iter_snapshots()] == [(2, "EMC", good)]


# --------------------------------------------------------------------------- atomic_write


def test_atomic_write_takes_bytes_text_buffers_and_blocks(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a.bin", b"bytes", fsync=False)
    atomic_write(tmp_path / "b.txt", "tëxt\n")
    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    atomic_write(tmp_path / "c.f64", array)
    atomic_write(tmp_path / "d.bin", (block for block in (b"one ", memoryview(b"two"))))
    assert (tmp_path / "a.bin").read_bytes() == b"bytes"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "tëxt\n"
    assert (tmp_path / "c.f64").read_bytes() == array.tobytes()
    assert (tmp_path / "d.bin").read_bytes() == b"one two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.f64", "d.bin"]


def test_atomic_write_replaces_and_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "file"
    atomic_write(target, b"old")
    atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_write_without_replacing_keeps_the_first(tmp_path: Path) -> None:
    target = tmp_path / "key"
    atomic_write(target, b"first", replace=False)
    with pytest.raises(FileExistsError):
        atomic_write(target, b"second", replace=False)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_a_failing_block_source_leaves_nothing_behind(tmp_path: Path) -> None:
    def blocks():
        yield b"partial"
        raise OSError("source ended early")

    target = tmp_path / "x"
    target.write_bytes(b"kept")
    with pytest.raises(OSError, match="source ended early"):
        atomic_write(target, blocks())
    assert target.read_bytes() == b"kept"
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_the_file_system_calls_can_be_injected(tmp_path: Path) -> None:
    calls: list[str] = []

    class Recording(FileSystem):
        def write(self, fd: int, data: memoryview) -> int:
            calls.append("write")
            return super().write(fd, data[:2])  # short writes are continued

        def fsync(self, fd: int) -> None:
            calls.append("fsync")

        def fsync_dir(self, path: Path) -> None:
            calls.append("fsync_dir")

    atomic_write(tmp_path / "f", b"12345", fs=Recording())
    assert (tmp_path / "f").read_bytes() == b"12345"
    assert calls == ["write", "write", "write", "fsync", "fsync_dir"]
    calls.clear()
    atomic_write(tmp_path / "g", b"1", fs=Recording(), fsync=False)
    assert calls == ["write"]
