"""Schema 1 -> 2: a database written before alarms existed gains the alarm containers."""

from __future__ import annotations

from pathlib import Path

import transaction
import ZODB
from BTrees.IOBTree import IOBTree
from BTrees.OOBTree import OOBTree
from ZODB.FileStorage import FileStorage

from overwatch.quality import Quality
from overwatch.store import migrations
from overwatch.store.db import open_db, overwatch_root, read, transact
from overwatch.store.models import ROOT_KEY, SCHEMA_VERSION, OverwatchRoot, Run
from processing.analysis.alarms import AlarmManager, list_alarms
from processing.analysis.checks import CheckResult, EvaluationResult


def write_schema_1_database(path: Path) -> None:
    """A FileStorage holding a root as Overwatch schema 1 wrote it (no alarm containers)."""
    db = ZODB.DB(FileStorage(str(path)))
    try:
        with transaction.manager:
            connection = db.open()
            old = OverwatchRoot()
            del old.alarms
            del old.check_states
            old.schema_version = 1
            old.runs[123] = Run(123)
            connection.root()[ROOT_KEY] = old
        connection.close()
    finally:
        db.close()


def test_schema_version_is_two_and_new_roots_have_the_containers() -> None:
    assert SCHEMA_VERSION == 2
    root = OverwatchRoot()
    assert isinstance(root.alarms, IOBTree) and isinstance(root.check_states, OOBTree)


def test_opening_a_schema_1_database_adds_alarm_containers_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.fs"
    write_schema_1_database(path)
    db = open_db(f"file://{path}")
    try:
        version, runs, alarms, states = read(
            db,
            lambda root: (
                root.schema_version,
                list(root.runs.keys()),
                type(root.alarms).__name__,
                len(root.check_states),
            ),
        )
        assert (version, runs, alarms, states) == (2, [123], "IOBTree", 0)
        # and the migrated database takes alarms
        ev = EvaluationResult(
            123,
            "EMC",
            [CheckResult("hot", "EMC", "EMCal/SM00/cellHits", None, "EMCal", Quality.BAD, "3")],
        )
        manager = AlarmManager(open_after=1)  # about the migration, not about episodes
        transact(db, lambda root: manager.update(overwatch_root(root), ev, 1.0))
    finally:
        db.close()
    db = open_db(f"file://{path}")  # reopening: nothing to migrate, alarms persisted
    try:
        stored = read(db, lambda root: list_alarms(root))
        assert [(a["id"], a["run"], a["quality"]) for a in stored] == [(1, 123, "Bad")]
    finally:
        db.close()


def test_migration_step_keeps_existing_containers() -> None:
    root = OverwatchRoot()
    root.alarms[5] = "kept"
    root.schema_version = 1
    migrations.upgrade(root)
    assert root.schema_version == 2 and root.alarms[5] == "kept"


def test_alarms_and_states_stored_before_episodes_load_with_defaults(tmp_path: Path) -> None:
    """No schema step for episodes: older objects lack the new attributes and read defaults."""
    from overwatch.store.models import Alarm, CheckState
    from processing.analysis.alarms import alarm_to_dict

    path = tmp_path / "ow.fs"
    db = open_db(f"file://{path}")
    try:

        def old_objects(root) -> None:
            ow = overwatch_root(root)
            ow.alarms[1] = Alarm(1, 50.0, 123, "EMC", "hot", "p", "", "EMCal", "Bad", "m")
            state = CheckState("Bad", 50.0)
            state.alarm_id = 1
            ow.check_states[(123, "EMC", "hot", "p", "")] = state
            assert "occurrences" not in ow.alarms[1].__dict__  # the old shape
            assert "raising_streak" not in state.__dict__

        transact(db, old_objects)
    finally:
        db.close()
    db = open_db(f"file://{path}")
    try:
        stored = read(db, lambda root: alarm_to_dict(root.alarms[1]))
        assert (stored["occurrences"], stored["first_seen"], stored["last_seen"]) == (1, 50.0, 50.0)
        # and the open alarm of the old state goes on as one episode
        ev = EvaluationResult(
            123, "EMC", [CheckResult("hot", "EMC", "p", None, "EMCal", Quality.BAD, "again")]
        )
        manager = AlarmManager()
        assert transact(db, lambda root: manager.update(overwatch_root(root), ev, 60.0)) == []
        stored = read(db, lambda root: alarm_to_dict(root.alarms[1]))
        assert (stored["occurrences"], stored["last_seen"], stored["message"]) == (2, 60.0, "again")
        assert stored["active"] is True
    finally:
        db.close()
