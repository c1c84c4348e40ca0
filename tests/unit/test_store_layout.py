"""overwatch.store.layout.DataDir: every path of the data directory, named in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from overwatch.names import InvalidName
from overwatch.store.layout import DataDir


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
