"""Alarms on quality transitions, re-notification limits, acknowledgement, queries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ZODB.POSException import ConflictError

from overwatch.config import AlarmSettings
from overwatch.quality import Quality
from overwatch.store.db import open_db, overwatch_root, read, transact
from processing.analysis.alarms import AlarmManager, AlarmNotice, acknowledge, list_alarms
from processing.analysis.checks import CheckResult, EvaluationResult

G, M, B, N = Quality.GOOD, Quality.MEDIUM, Quality.BAD, Quality.NULL
PATH = "EMCal/SM03/cellHits"
T0 = 1_700_000_000.0


def evaluation(*qualities: Quality, run: int = 300, subsystem: str = "EMC") -> EvaluationResult:
    """One result per quality: check "hot" on SM00, SM01, ... (trend hot_cells)."""
    results = [
        CheckResult(
            "hot", subsystem, f"EMCal/SM{i:02d}/cellHits", "hot_cells", "EMCal", q, f"{i}: {q}"
        )
        for i, q in enumerate(qualities)
    ]
    return EvaluationResult(run, subsystem, results)


@pytest.fixture
def db() -> Iterator:
    database = open_db("memory://")
    yield database
    database.close()


class Recorder:
    """Collects what the manager hands to the notifier (the dispatcher's enqueue)."""

    def __init__(self) -> None:
        self.notices: list[AlarmNotice] = []

    def __call__(self, notice: AlarmNotice) -> None:
        self.notices.append(notice)


def step(db, manager: AlarmManager, ev: EvaluationResult, now: float) -> list[int]:
    """One processing pass: update in its own transaction; the ids of the alarms raised."""
    return transact(db, lambda root: [a.id for a in manager.update(overwatch_root(root), ev, now)])


def alarms(db, **filters) -> list[dict]:
    return read(db, lambda root: list_alarms(root, **filters))


def test_alarm_on_transition_only(db) -> None:
    manager = AlarmManager()
    assert step(db, manager, evaluation(G), T0) == []
    assert step(db, manager, evaluation(B), T0 + 60) == [1]  # Good -> Bad
    assert step(db, manager, evaluation(B), T0 + 120) == []  # Bad -> Bad
    assert step(db, manager, evaluation(B), T0 + 180) == []
    assert step(db, manager, evaluation(G), T0 + 240) == []  # recovery closes the alarm
    assert step(db, manager, evaluation(B), T0 + 300) == [2]  # Bad -> Good -> Bad
    stored = alarms(db)
    assert [a["id"] for a in stored] == [2, 1]  # newest first
    first = stored[1]
    assert first["time"] == T0 + 60 and first["run"] == 300 and first["subsystem"] == "EMC"
    assert first["check"] == "hot" and first["histogram"] == "EMCal/SM00/cellHits"
    assert first["trend"] == "hot_cells" and first["group"] == "EMCal"
    assert first["quality"] == "Bad" and first["message"] == "0: Bad"
    assert first["active"] is False and first["cleared_at"] == T0 + 240
    assert stored[0]["active"] is True and stored[0]["cleared_at"] is None
    assert first["acknowledged"] is False and first["acknowledged_by"] is None


def test_first_result_bad_raises_and_targets_are_independent(db) -> None:
    manager = AlarmManager()
    assert step(db, manager, evaluation(B, G, B), T0) == [1, 2]
    assert step(db, manager, evaluation(B, B, B), T0 + 60) == [3]
    assert {a["histogram"] for a in alarms(db)} == {f"EMCal/SM0{i}/cellHits" for i in range(3)}
    # the same check on another run or subsystem is another target
    assert step(db, manager, evaluation(B, run=301), T0 + 120) == [4]
    assert step(db, manager, evaluation(B, subsystem="TPC"), T0 + 120) == [5]
    assert [a["id"] for a in alarms(db, run=301)] == [4]


def test_null_is_no_transition(db) -> None:
    manager = AlarmManager()
    step(db, manager, evaluation(B), T0)
    assert step(db, manager, evaluation(N), T0 + 60) == []
    assert step(db, manager, evaluation(B), T0 + 120) == []  # Bad -> (no data) -> Bad: same alarm
    assert alarms(db)[0]["active"] is True
    assert step(db, manager, evaluation(N), T0 + 180) == []
    assert step(db, manager, evaluation(G), T0 + 240) == []
    assert alarms(db)[0]["active"] is False


def test_medium_raises_only_when_configured(db) -> None:
    default = AlarmManager()
    assert step(db, default, evaluation(M), T0) == []
    assert step(db, default, evaluation(B), T0 + 60) == [1]  # Medium -> Bad

    medium = AlarmManager(raise_on=("Bad", "Medium"))
    ev = evaluation(M, run=2)
    assert step(db, medium, ev, T0) == [2]  # Good/none -> Medium
    assert step(db, medium, evaluation(B, run=2), T0 + 60) == [3]  # escalation
    assert step(db, medium, evaluation(M, run=2), T0 + 120) == []  # de-escalation keeps alarm 3
    by_id = {a["id"]: a for a in alarms(db, run=2)}
    assert by_id[2]["active"] is False and by_id[3]["active"] is True
    assert [a["id"] for a in alarms(db, quality="Medium")] == [2]
    assert [a["id"] for a in alarms(db, quality=B)] == [3, 1]


def test_renotification_at_most_every_n_minutes(db) -> None:
    recorder = Recorder()
    manager = AlarmManager(renotify_minutes=10, notify=recorder)
    step(db, manager, evaluation(B), T0)
    assert [(n.alarm_id, n.reminder) for n in recorder.notices] == [(1, False)]
    for minute in range(1, 10):  # still Bad, every minute: nothing new
        step(db, manager, evaluation(B), T0 + 60 * minute)
    assert len(recorder.notices) == 1
    step(db, manager, evaluation(B), T0 + 600)  # ten minutes later: a reminder
    assert [(n.alarm_id, n.reminder) for n in recorder.notices[1:]] == [(1, True)]
    assert "Reminder" in recorder.notices[1].text()
    assert alarms(db)[0]["notifications"] == 2


def test_flapping_raises_alarms_but_no_notification_storm(db) -> None:
    recorder = Recorder()
    manager = AlarmManager(renotify_minutes=10, notify=recorder)
    step(db, manager, evaluation(B), T0)
    raised = []
    for i in range(1, 6):  # Good, then Bad again, every 100 s: well inside 10 minutes
        raised += step(db, manager, evaluation(G), T0 + 100 * i - 50)
        raised += step(db, manager, evaluation(B), T0 + 100 * i)
    assert raised == [2, 3, 4, 5, 6]  # every transition is recorded ...
    assert [n.alarm_id for n in recorder.notices] == [1]  # ... but notified once
    step(db, manager, evaluation(B), T0 + 660)  # the window has passed: the open alarm goes out
    assert [n.alarm_id for n in recorder.notices] == [1, 6]
    assert recorder.notices[1].reminder is False  # alarm 6 itself was never announced before


def test_acknowledged_alarm_is_not_reminded(db) -> None:
    recorder = Recorder()
    manager = AlarmManager(renotify_minutes=1, notify=recorder)
    step(db, manager, evaluation(B), T0)
    alarm = transact(
        db, lambda root: acknowledge(overwatch_root(root), 1, "shifter", now=T0 + 30).id
    )
    assert alarm == 1
    step(db, manager, evaluation(B), T0 + 600)
    assert len(recorder.notices) == 1
    (stored,) = alarms(db)
    assert stored["acknowledged"] is True
    assert stored["acknowledged_by"] == "shifter" and stored["acknowledged_at"] == T0 + 30
    # a second acknowledgement does not overwrite who saw it first
    transact(db, lambda root: manager.acknowledge(overwatch_root(root), 1, "expert", T0 + 90))
    assert alarms(db)[0]["acknowledged_by"] == "shifter"
    assert alarms(db, acknowledged=False) == [] and len(alarms(db, acknowledged=True)) == 1


def test_acknowledge_unknown_alarm(db) -> None:
    with pytest.raises(LookupError, match="no alarm with id 42"):
        transact(db, lambda root: acknowledge(overwatch_root(root), 42, "shifter"))
    step(db, AlarmManager(), evaluation(B), T0)
    with pytest.raises(ValueError, match="name of the user"):
        transact(db, lambda root: acknowledge(overwatch_root(root), 1, ""))


def test_notices_are_sent_only_after_commit(db) -> None:
    recorder = Recorder()
    manager = AlarmManager(notify=recorder)

    def fails_after_update(root) -> None:
        manager.update(overwatch_root(root), evaluation(B), T0)
        raise RuntimeError("processing failed later in the same transaction")

    with pytest.raises(RuntimeError):
        transact(db, fails_after_update)
    assert recorder.notices == [] and alarms(db) == []

    attempts = []

    def conflicts_once(root) -> None:
        manager.update(overwatch_root(root), evaluation(B), T0)
        attempts.append(len(recorder.notices))
        if len(attempts) == 1:
            raise ConflictError("another process wrote the same object")

    transact(db, conflicts_once)
    assert attempts == [0, 0]  # nothing announced before a commit
    assert [n.alarm_id for n in recorder.notices] == [1]  # the retry announced it once
    assert len(alarms(db)) == 1


def test_a_failing_notify_never_breaks_processing(db) -> None:
    def broken(notice: AlarmNotice) -> None:
        raise OSError("queue gone")

    assert step(db, AlarmManager(notify=broken), evaluation(B), T0) == [1]
    assert len(alarms(db)) == 1


def test_list_alarms_filters_and_limit(db) -> None:
    manager = AlarmManager()
    step(db, manager, evaluation(B, B), T0)
    step(db, manager, evaluation(B, run=5, subsystem="TPC"), T0)
    step(db, manager, evaluation(G, G), T0 + 60)
    assert [a["id"] for a in alarms(db, subsystem="EMC")] == [2, 1]
    assert [a["id"] for a in alarms(db, subsystem="TPC", run=5)] == [3]
    assert alarms(db, subsystem="TPC", run=300) == []
    assert [a["id"] for a in alarms(db, active=True)] == [3]
    assert [a["id"] for a in alarms(db, limit=2)] == [3, 2]
    assert alarms(db, quality="Medium") == []


def test_notice_text_names_everything_a_shifter_needs(db) -> None:
    recorder = Recorder()
    step(db, AlarmManager(notify=recorder), evaluation(B), T0)
    text = recorder.notices[0].text()
    for part in (
        "#1",
        "Bad",
        "EMC",
        "run 300",
        "hot",
        "EMCal/SM00/cellHits",
        "hot_cells",
        "0: Bad",
    ):
        assert part in text
    assert "2023-11-14 22:13:20 UTC" in text


def test_from_settings_and_invalid_raise_on() -> None:
    manager = AlarmManager.from_settings(
        AlarmSettings(raise_on=["Bad", "medium"], renotify_minutes=5)
    )
    assert manager.raise_on == {B, M} and manager.renotify_seconds == 300
    with pytest.raises(ValueError, match="alarms.raise_on"):
        AlarmManager(raise_on=["Good"])
    with pytest.raises(ValueError, match="alarms.raise_on"):
        AlarmManager(raise_on=[])
    with pytest.raises(ValueError):
        AlarmManager(raise_on=["Awful"])
    with pytest.raises(ValueError, match="renotify_minutes"):
        AlarmManager(renotify_minutes=0)
