"""Archives read right: time-zone markers, file order across the autumn hour, old names, bad files.

Processing an archive in place (``Pipeline(timezone=...)``, ``overwatch process
--archived``, ``db rebuild --archived``) must give every snapshot its true UTC
instant, no false counter reset, and a whole run equal to its last snapshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pendulum
import pytest

from overwatch import cli, rootio
from overwatch.config import ConfigError, ProcessingSettings, load_settings
from overwatch.store import archive
from overwatch.store.db import open_db, read
from overwatch.store.layout import DataDir
from processing.pipeline import Pipeline
from processing.rebuild import rebuild
from processing.slices.reader import SliceReader
from receivers.spool import Item, Spool
from tests.archive_support import (
    AUTUMN_RUN,
    EVENTS_PER_SNAPSHOT,
    SNAPSHOTS,
    last_content,
    make_archive,
    zurich_name,
)

SETTINGS = ProcessingSettings(events_histogram={"EMC": "events", "TPC": "events"})
ZURICH = "Europe/Zurich"


@pytest.fixture
def db():
    database = open_db("memory://")
    yield database
    database.close()


def chain_view(db, run: int, subsystem: str) -> dict:
    def work(ow):
        sub = ow.runs[run].subsystems[subsystem]
        return {
            "times": list(sub.snapshots.keys()),
            "files": {t: r.filename for t, r in sub.snapshots.items()},
            "resets": [r.resets for r in sub.snapshots.values()],
            "start": sub.start,
            "end": sub.end,
            "n_events": sub.n_events,
            "bad": dict(sub.bad_snapshots.items()),
        }

    return read(db, work)


def assert_archive_read_right(data: Path, db, written) -> None:
    reader = SliceReader(data, db)
    for run in {s.run for s in written}:
        for subsystem in ("EMC", "TPC"):
            mine = sorted(
                (s for s in written if (s.run, s.subsystem) == (run, subsystem)),
                key=lambda s: s.instant,
            )
            view = chain_view(db, run, subsystem)
            assert view["times"] == [s.instant for s in mine]  # true UTC instants, in order
            names = [Path(view["files"][s.instant]).name for s in mine]
            assert names == [s.path.name for s in mine]
            assert all(not resets for resets in view["resets"])  # no false counter reset
            assert view["n_events"] == EVENTS_PER_SNAPSHOT * SNAPSHOTS
            assert view["end"] - view["start"] == mine[-1].instant - mine[0].instant
            whole = reader.cumulative(run, subsystem, "spectrum")
            expected = {h.name: h for h in last_content(run)}["spectrum"]
            np.testing.assert_array_equal(whole.values, expected.values)
            assert whole.entries == expected.entries


# --------------------------------------------------------------------------- processing in place


def test_archive_processed_in_place_gives_true_instants(tmp_path, db) -> None:
    written = make_archive(tmp_path)
    report = Pipeline(tmp_path, db, SETTINGS, timezone=ZURICH).run_until_idle()
    assert (report.processed, report.bad, report.failed) == (60, 0, [])
    assert_archive_read_right(tmp_path, db, written)
    autumn = chain_view(db, AUTUMN_RUN, "EMC")
    assert autumn["end"] - autumn["start"] < 20 * 60  # not the 59 minutes of name order


def test_archive_read_as_utc_is_wrong_by_the_zone_offset(tmp_path, db) -> None:
    """The fault this guards against: without the declaration, times are UTC and wrong."""
    written = make_archive(tmp_path)
    Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    summer = [s for s in written if s.run == 290001 and s.subsystem == "EMC"]
    assert chain_view(db, 290001, "EMC")["times"][0] == summer[0].instant + 7200


def test_directory_marker_declares_the_zone(tmp_path, db) -> None:
    written = make_archive(tmp_path)
    (DataDir(tmp_path).timezone_marker()).write_text("Europe/Zurich\n")
    Pipeline(tmp_path, db, SETTINGS).run_until_idle()  # no flag: the marker says it
    assert_archive_read_right(tmp_path, db, written)


def test_run_marker_wins_over_the_flag(tmp_path, db) -> None:
    """New receivers mark their runs UTC: an archive flag does not turn them into local time."""
    make_archive(tmp_path)
    spool = Spool(tmp_path, fsync=False)
    instant = pendulum.datetime(2026, 7, 1, 12, 0, 0, tz="UTC").timestamp()
    relpath = spool.unique_relpath(7, "EMC", instant)
    spool.store(Item(relpath, rootio.to_bytes(last_content(7))))
    assert archive.read_marker(tmp_path / "Run7") == "UTC"
    Pipeline(tmp_path, db, SETTINGS, timezone=ZURICH).run_until_idle()
    assert chain_view(db, 7, "EMC")["times"] == [instant]


def test_autumn_run_without_file_order_cannot_be_resolved_and_keeps_instants_monotonic(
    tmp_path,
) -> None:
    """Names alone interleave the two passes: the file order is what resolves them."""
    written = [s for s in make_archive(tmp_path) if (s.run, s.subsystem) == (AUTUMN_RUN, "EMC")]
    paths = {s.path.name: s.path for s in written}
    good, bad = archive.read_names(paths, ZURICH, run=AUTUMN_RUN, subsystem="EMC")
    assert bad == {}
    assert good == {s.path.name: s.instant for s in written}
    for path in paths.values():  # a copy that lost the modification times
        os.utime(path, (0, 0))
    good, _ = archive.read_names(paths, ZURICH, run=AUTUMN_RUN, subsystem="EMC")
    in_name_order = [good[name] for name in sorted(good)]
    assert in_name_order == sorted(in_name_order)  # monotonic in name order, so...
    assert good != {s.path.name: s.instant for s in written}  # ...the second pass is lost


def test_db_rebuild_with_the_archived_flag(tmp_path, db, capsys) -> None:
    written = make_archive(tmp_path)
    Pipeline(tmp_path, db, SETTINGS).run_until_idle()  # read wrongly first (as UTC)
    report = rebuild(tmp_path, db, SETTINGS, timezone=ZURICH)
    assert (report.processed, report.bad) == (60, 0)
    assert_archive_read_right(tmp_path, db, written)


def test_process_and_rebuild_commands_take_the_archived_flag(tmp_path) -> None:
    data = tmp_path / "data"
    written = make_archive(data)
    uri = f"file://{tmp_path / 'db.fs'}"
    for command in (["process", "--once"], ["db", "rebuild"]):
        code = cli.main([*command, "--data-dir", str(data), "--db", uri, "--archived"])
        assert code == 0
    database = open_db(uri)
    try:
        times = chain_view(database, AUTUMN_RUN, "TPC")["times"]
    finally:
        database.close()
    assert times == sorted(
        s.instant for s in written if (s.run, s.subsystem) == (AUTUMN_RUN, "TPC")
    )


def test_unknown_zone_is_refused_by_flag_config_and_marker(tmp_path, capsys) -> None:
    make_archive(tmp_path / "data")
    code = cli.main(["process", "--once", "--data-dir", str(tmp_path / "data"),
                     "--db", "memory://", "--timezone", "Mars/Olympus"])  # fmt: skip
    assert code == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  timezone: Europe/Zurch\n")
    with pytest.raises(ConfigError, match=r"data\.timezone: unknown time zone 'Europe/Zurch'"):
        load_settings(config, env={}, search_user_dirs=False)
    (tmp_path / "data" / ".overwatch-timezone").write_text("CEST+2\n")
    with pytest.raises(archive.ArchiveError, match="overwatch-timezone"):
        archive.zone_of(DataDir(tmp_path / "data"), AUTUMN_RUN)


def test_bad_marker_fails_the_chain_with_its_reason(tmp_path, db) -> None:
    make_archive(tmp_path)
    (tmp_path / f"Run{AUTUMN_RUN}" / ".overwatch-timezone").write_text("not a zone\n")
    report = Pipeline(tmp_path, db, SETTINGS, timezone=ZURICH).run_until_idle()
    assert len(report.failed) == 2  # both subsystems of that run, with the reason
    assert all("overwatch-timezone" in failure for failure in report.failed)
    assert report.processed == 40  # the other runs go on


# --------------------------------------------------------------------------- bad and old names


def test_unreadable_names_are_recorded_bad_with_the_reason(tmp_path, db) -> None:
    written = make_archive(tmp_path)
    folder = tmp_path / "Run290001" / "EMC"
    shutil.copy(written[0].path, folder / "EMChists.2018_13_40_10_00_00.root")  # no such date
    shutil.copy(written[0].path, folder / "notes.root")  # no snapshot name
    shutil.copy(written[0].path, folder / "TPChists.2018_07_14_12_30_00.root")  # other subsystem
    (folder / ".EMChists.2018_07_14_12_31_00.root.123.0.tmp").write_bytes(b"half")  # temporary
    report = Pipeline(tmp_path, db, SETTINGS, timezone=ZURICH).run_until_idle()
    assert (report.processed, report.bad) == (60, 3)
    bad = chain_view(db, 290001, "EMC")["bad"]
    assert set(bad) == {
        "EMChists.2018_13_40_10_00_00.root",
        "notes.root",
        "TPChists.2018_07_14_12_30_00.root",
    }
    assert "not a valid date" in bad["EMChists.2018_13_40_10_00_00.root"]
    assert "not a snapshot file name" in bad["notes.root"]
    assert "of subsystem TPC" in bad["TPChists.2018_07_14_12_30_00.root"]


def old_name(subsystem: str, run: int, instant: float) -> str:
    local = pendulum.from_timestamp(instant, tz=ZURICH)
    stamp = "_".join(
        str(getattr(local, f)) for f in ("year", "month", "day", "hour", "minute", "second")
    )
    return f"{subsystem}histos_{run}_B_{stamp}.root"


def test_old_receiver_names_are_read_flat_and_in_run_folders(tmp_path, db) -> None:
    archived = tmp_path / "archived"
    written = [s for s in make_archive(archived) if s.run == AUTUMN_RUN]
    data = tmp_path / "data"
    data.mkdir()
    for s in written:  # EMC flat in the data directory, TPC inside its run folder
        if s.subsystem == "EMC":
            target = data / old_name("EMC", s.run, s.instant)
        else:
            target = data / f"Run{s.run}" / "TPC" / old_name("TPC", s.run, s.instant)
            target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s.path, target)  # keeps the modification time: the file order
    report = Pipeline(data, db, SETTINGS).run_until_idle()  # old names are Zurich always
    assert (report.processed, report.bad, report.failed) == (20, 0, [])
    for subsystem in ("EMC", "TPC"):
        mine = sorted(s.instant for s in written if s.subsystem == subsystem)
        assert chain_view(db, AUTUMN_RUN, subsystem)["times"] == mine
    reader = SliceReader(data, db)
    assert reader.cumulative(AUTUMN_RUN, "EMC", "events").entries == EVENTS_PER_SNAPSHOT * 10
    assert archive.read_source(data).runs == [AUTUMN_RUN]


def test_old_name_of_another_run_in_a_run_folder_is_bad(tmp_path, db) -> None:
    written = make_archive(tmp_path / "a")
    folder = tmp_path / "data" / "Run5" / "EMC"
    folder.mkdir(parents=True)
    shutil.copy(written[0].path, folder / old_name("EMC", 6, written[0].instant))
    report = Pipeline(tmp_path / "data", db, SETTINGS).run_until_idle()
    assert report.bad == 1
    assert "of run 6" in next(iter(chain_view(db, 5, "EMC")["bad"].values()))


# --------------------------------------------------------------------------- sources (replay)


def test_read_source_of_each_kind_of_folder(tmp_path) -> None:
    written = make_archive(tmp_path / "data")
    truth = {(s.run, s.subsystem, s.path.name): s.instant for s in written}

    def got(source):
        return {(s.run, s.subsystem, s.path.name): s.instant for s in source.snapshots}

    whole = archive.read_source(tmp_path / "data", timezone=ZURICH)
    assert got(whole) == truth and whole.runs == [290001, 290002, 290003]
    assert [s.instant for s in whole.snapshots] == sorted(truth.values())
    run = archive.read_source(tmp_path / "data" / f"Run{AUTUMN_RUN}", timezone=ZURICH)
    assert got(run) == {k: v for k, v in truth.items() if k[0] == AUTUMN_RUN}
    sub = archive.read_source(tmp_path / "data" / f"Run{AUTUMN_RUN}" / "TPC", timezone=ZURICH)
    assert got(sub) == {k: v for k, v in truth.items() if k[:2] == (AUTUMN_RUN, "TPC")}
    flat = tmp_path / "flat"
    flat.mkdir()
    for s in written:
        if s.run == 290003:
            shutil.copy2(s.path, flat / s.path.name)
    with pytest.raises(archive.ArchiveError, match="--run-as"):
        archive.read_source(flat, timezone=ZURICH)
    numbered = archive.read_source(flat, timezone=ZURICH, run=17)
    assert numbered.runs == [17] and len(numbered.snapshots) == 20
    with pytest.raises(archive.ArchiveError, match="not a folder"):
        archive.read_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(archive.ArchiveError, match="no readable snapshot"):
        archive.read_source(tmp_path / "empty")


def test_marker_is_written_once_and_atomically(tmp_path) -> None:
    assert archive.write_marker(tmp_path) is True
    assert archive.write_marker(tmp_path, ZURICH) is False  # an existing one is kept
    assert archive.read_marker(tmp_path) == "UTC"
    assert [p.name for p in tmp_path.iterdir()] == [".overwatch-timezone"]


def test_zurich_names_of_the_archive_helper_round_trip() -> None:
    instant = pendulum.datetime(2018, 10, 28, 1, 2, 7, tz="UTC").timestamp()  # 02:02 CET
    assert zurich_name("EMC", instant) == "EMChists.2018_10_28_02_02_07.root"
