"""The spool's clock and its names: new runs marked UTC, existing folders keep theirs,
no file is ever replaced by another writer's."""

from __future__ import annotations

import pendulum

from overwatch.store import archive
from overwatch.store.layout import DataDir
from receivers.spool import Item, Spool

T = pendulum.datetime(2018, 10, 28, 0, 30, 0, tz="UTC").timestamp()  # 02:30 CEST in Zurich


def test_a_new_run_folder_says_utc_before_its_first_file(tmp_path) -> None:
    spool = Spool(tmp_path, fsync=False)
    relpath = spool.unique_relpath(9, "EMC", T)
    assert relpath == "Run9/EMC/EMChists.2018_10_28_00_30_00.root"
    assert spool.store(Item(relpath, b"one")).status == "written"
    assert archive.read_marker(tmp_path / "Run9") == "UTC"


def test_an_archived_run_folder_gets_names_in_its_own_zone(tmp_path) -> None:
    """Adding to a folder of Zurich names (an import into an archived run) names in Zurich."""
    (tmp_path / "Run9").mkdir()
    (tmp_path / "Run9" / ".overwatch-timezone").write_text("Europe/Zurich\n")
    spool = Spool(tmp_path, fsync=False)
    relpath = spool.unique_relpath(9, "EMC", T)
    assert relpath == "Run9/EMC/EMChists.2018_10_28_02_30_00.root"
    spool.store(Item(relpath, b"one"))
    assert archive.read_marker(tmp_path / "Run9") == "Europe/Zurich"  # kept, not re-declared
    zone = archive.zone_of(DataDir(tmp_path), 9)
    name = relpath.rpartition("/")[2]
    good, _ = archive.read_names({name: tmp_path / relpath}, zone)
    assert good == {name: T}  # read in the folder's clock, it is the true instant


def test_an_existing_unmarked_folder_is_not_re_declared(tmp_path) -> None:
    (tmp_path / "Run9" / "EMC").mkdir(parents=True)
    (tmp_path / ".overwatch-timezone").write_text("Europe/Zurich\n")  # the whole directory
    spool = Spool(tmp_path, fsync=False)
    relpath = spool.unique_relpath(9, "EMC", T)
    assert relpath.endswith("EMChists.2018_10_28_02_30_00.root")
    spool.store(Item(relpath, b"one"))
    assert archive.read_marker(tmp_path / "Run9") is None


def test_a_name_another_writer_took_gets_the_next_second(tmp_path) -> None:
    spool = Spool(tmp_path, fsync=False)
    relpath = spool.unique_relpath(9, "EMC", T)
    (tmp_path / relpath).parent.mkdir(parents=True)
    (tmp_path / relpath).write_bytes(b"someone else's")  # taken after the name was given
    item = Item(relpath, b"mine")
    assert spool.store(item).status == "written"
    assert (tmp_path / relpath).read_bytes() == b"someone else's"  # never replaced
    assert item.relpath == "Run9/EMC/EMChists.2018_10_28_00_30_01.root"
    assert (tmp_path / item.relpath).read_bytes() == b"mine"


def test_a_retry_finding_its_own_bytes_counts_as_written(tmp_path) -> None:
    spool = Spool(tmp_path, fsync=False)
    relpath = spool.unique_relpath(9, "EMC", T)
    (tmp_path / relpath).parent.mkdir(parents=True)
    (tmp_path / relpath).write_bytes(b"mine")  # an earlier try got there, then failed late
    item = Item(relpath, b"mine")
    assert spool.store(item).status == "written"
    assert item.relpath == relpath
    assert sorted(p.name for p in (tmp_path / "Run9" / "EMC").iterdir()) == [
        relpath.rpartition("/")[2]
    ]
