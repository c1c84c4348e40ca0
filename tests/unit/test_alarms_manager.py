"""Alarms by episode (open after K raising, close after M others), notifications, queries."""

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


def one(**kwargs) -> AlarmManager:
    """K = M = 1: for tests about something else than episode lengths."""
    return AlarmManager(open_after=1, close_after=1, **kwargs)


def test_k_consecutive_bad_open_exactly_one_alarm_updated_while_bad(db) -> None:
    manager = AlarmManager(open_after=2, close_after=3)
    assert step(db, manager, evaluation(G), T0) == []
    assert step(db, manager, evaluation(B), T0 + 60) == []  # one Bad: not yet
    assert step(db, manager, evaluation(B), T0 + 120) == [1]  # the second in a row opens it
    assert step(db, manager, evaluation(B), T0 + 180) == []  # still Bad: the same alarm
    (alarm,) = alarms(db)
    assert alarm["occurrences"] == 3 and alarm["active"] is True
    assert alarm["first_seen"] == T0 + 60 and alarm["last_seen"] == T0 + 180
    assert alarm["time"] == T0 + 120 and alarm["run"] == 300 and alarm["subsystem"] == "EMC"
    assert alarm["check"] == "hot" and alarm["histogram"] == "EMCal/SM00/cellHits"
    assert alarm["trend"] == "hot_cells" and alarm["group"] == "EMCal"
    assert alarm["quality"] == "Bad" and alarm["message"] == "0: Bad"
    assert alarm["acknowledged"] is False and alarm["acknowledged_by"] is None


def test_a_single_bad_between_goods_opens_nothing(db) -> None:
    manager = AlarmManager(open_after=2)
    for i, q in enumerate([G, B, G, B, G, B, G]):
        assert step(db, manager, evaluation(q), T0 + 60 * i) == []
    assert alarms(db) == []


def test_a_flickering_target_gives_one_alarm_not_one_per_flip(db) -> None:
    recorder = Recorder()
    manager = AlarmManager(open_after=2, close_after=3, renotify_minutes=60, notify=recorder)
    step(db, manager, evaluation(B), T0)
    assert step(db, manager, evaluation(B), T0 + 2) == [1]
    raised = []
    for i in range(1, 21):  # Good, Bad, Good, Bad ... every 2 s
        raised += step(db, manager, evaluation(G if i % 2 else B), T0 + 2 + 2 * i)
    assert raised == []
    (alarm,) = alarms(db)
    assert alarm["active"] is True and alarm["occurrences"] == 2 + 10
    assert alarm["last_seen"] == T0 + 42
    assert [n.alarm_id for n in recorder.notices] == [1]  # announced once


def test_null_neither_opens_nor_closes_nor_resets(db) -> None:
    manager = AlarmManager(open_after=2, close_after=2)
    assert step(db, manager, evaluation(B), T0) == []
    assert step(db, manager, evaluation(N), T0 + 60) == []
    assert step(db, manager, evaluation(B), T0 + 120) == [1]  # Bad, no data, Bad: two in a row
    assert step(db, manager, evaluation(N), T0 + 180) == []
    assert step(db, manager, evaluation(N), T0 + 240) == []
    assert alarms(db)[0]["active"] is True  # "cannot tell" never closes an alarm
    assert step(db, manager, evaluation(G), T0 + 300) == []
    assert step(db, manager, evaluation(N), T0 + 360) == []
    assert alarms(db)[0]["active"] is True
    assert step(db, manager, evaluation(G), T0 + 420) == []  # Good, no data, Good: two
    (alarm,) = alarms(db)
    assert alarm["active"] is False and alarm["cleared_at"] == T0 + 420
    assert alarm["occurrences"] == 2


def test_m_non_bad_close_and_a_later_episode_is_a_new_alarm(db) -> None:
    manager = AlarmManager(open_after=2, close_after=3)
    step(db, manager, evaluation(B), T0)
    assert step(db, manager, evaluation(B), T0 + 60) == [1]
    assert step(db, manager, evaluation(G), T0 + 120) == []
    assert step(db, manager, evaluation(G), T0 + 180) == []
    assert step(db, manager, evaluation(B), T0 + 240) == []  # back before M: same episode
    assert alarms(db)[0]["occurrences"] == 3
    for minute in (5, 6):
        step(db, manager, evaluation(G), T0 + 60 * minute)
    assert alarms(db)[0]["active"] is True  # two Good only
    step(db, manager, evaluation(G), T0 + 420)  # the third in a row closes it
    first = alarms(db)[0]
    assert first["active"] is False and first["cleared_at"] == T0 + 420
    assert first["first_seen"] == T0 and first["last_seen"] == T0 + 240
    assert step(db, manager, evaluation(B), T0 + 480) == []
    assert step(db, manager, evaluation(B), T0 + 540) == [2]  # a new episode, a new alarm
    newest, older = alarms(db)
    assert (newest["id"], older["id"]) == (2, 1)  # newest first
    assert newest["first_seen"] == T0 + 480 and newest["occurrences"] == 2


def test_slice_end_times_are_the_seen_times(db) -> None:
    manager = AlarmManager(open_after=2, close_after=1)
    for i in range(2):
        transact(
            db,
            lambda root, i=i: manager.update(
                overwatch_root(root), evaluation(B), T0 + 1000, slice_end=T0 + 10 * i
            ),
        )
    (alarm,) = alarms(db)
    assert (alarm["time"], alarm["first_seen"], alarm["last_seen"]) == (T0 + 1000, T0, T0 + 10)


def test_first_result_bad_raises_and_targets_are_independent(db) -> None:
    manager = one()
    assert step(db, manager, evaluation(B, G, B), T0) == [1, 2]
    assert step(db, manager, evaluation(B, B, B), T0 + 60) == [3]
    assert {a["histogram"] for a in alarms(db)} == {f"EMCal/SM0{i}/cellHits" for i in range(3)}
    # the same check on another run or subsystem is another target
    assert step(db, manager, evaluation(B, run=301), T0 + 120) == [4]
    assert step(db, manager, evaluation(B, subsystem="TPC"), T0 + 120) == [5]
    assert [a["id"] for a in alarms(db, run=301)] == [4]


def test_medium_raises_only_when_configured(db) -> None:
    default = one()
    assert step(db, default, evaluation(M), T0) == []
    assert step(db, default, evaluation(B), T0 + 60) == [1]  # Medium -> Bad

    recorder = Recorder()
    medium = one(raise_on=("Bad", "Medium"), notify=recorder)
    assert step(db, medium, evaluation(M, run=2), T0) == [2]  # Good/none -> Medium
    assert step(db, medium, evaluation(B, run=2), T0 + 60) == []  # escalation: the same episode
    assert step(db, medium, evaluation(M, run=2), T0 + 120) == []  # still raising
    (escalated,) = alarms(db, run=2)
    assert escalated["quality"] == "Bad" and escalated["active"] is True
    assert escalated["occurrences"] == 3
    # announced when it opened and again when it turned Bad
    assert [(n.alarm_id, n.quality, n.reminder) for n in recorder.notices] == [
        (2, "Medium", False),
        (2, "Bad", False),
    ]
    assert [a["id"] for a in alarms(db, quality=B)] == [2, 1]


def test_the_streak_opens_with_its_worst_quality(db) -> None:
    manager = AlarmManager(raise_on=("Bad", "Medium"), open_after=2)
    step(db, manager, evaluation(B), T0)
    assert step(db, manager, evaluation(M), T0 + 60) == [1]
    assert alarms(db)[0]["quality"] == "Bad"


def test_renotification_every_n_minutes_while_open(db) -> None:
    recorder = Recorder()
    manager = AlarmManager(renotify_minutes=10, notify=recorder, open_after=2, close_after=3)
    step(db, manager, evaluation(B), T0 - 60)
    assert recorder.notices == []  # not open yet
    step(db, manager, evaluation(B), T0)
    assert [(n.alarm_id, n.reminder) for n in recorder.notices] == [(1, False)]
    for minute in range(1, 10):  # still Bad (or no data), every minute: nothing new
        step(db, manager, evaluation(B if minute % 3 else N), T0 + 60 * minute)
    assert len(recorder.notices) == 1
    step(db, manager, evaluation(N), T0 + 600)  # ten minutes later: a reminder (still open)
    assert [(n.alarm_id, n.reminder) for n in recorder.notices[1:]] == [(1, True)]
    assert "Reminder" in recorder.notices[1].text()
    step(db, manager, evaluation(B), T0 + 1199)
    assert len(recorder.notices) == 2
    step(db, manager, evaluation(B), T0 + 1200)
    assert len(recorder.notices) == 3
    assert alarms(db)[0]["notifications"] == 3
    for second in (1, 2, 3):  # closing: no notice (the page shows cleared_at)
        step(db, manager, evaluation(G), T0 + 1200 + second)
    assert alarms(db)[0]["active"] is False and len(recorder.notices) == 3
    step(db, manager, evaluation(B), T0 + 1300)
    step(db, manager, evaluation(B), T0 + 1301)  # a new episode is announced at once
    assert [(n.alarm_id, n.reminder) for n in recorder.notices[3:]] == [(2, False)]


def test_invalid_episode_lengths() -> None:
    for name in ("open_after", "close_after"):
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match=f"alarms.{name}"):
                AlarmManager(**{name: bad})


def test_settings_validate_episode_lengths_and_queue_size() -> None:
    from overwatch.config import ConfigError, load_settings

    settings = load_settings(search_user_dirs=False, env={})
    assert (settings.alarms.open_after, settings.alarms.close_after) == (2, 3)
    assert settings.alarms.queue_size == 1000
    manager = AlarmManager.from_settings(settings.alarms)
    assert (manager.open_after, manager.close_after) == (2, 3)
    env = {"OVERWATCH_ALARMS__OPEN_AFTER": "4", "OVERWATCH_ALARMS__CLOSE_AFTER": "1"}
    alarms_settings = load_settings(search_user_dirs=False, env=env).alarms
    assert (alarms_settings.open_after, alarms_settings.close_after) == (4, 1)
    for key, value in (("OPEN_AFTER", "0"), ("CLOSE_AFTER", "2.5"), ("QUEUE_SIZE", "0")):
        with pytest.raises(ConfigError, match=f"alarms.{key.lower()}: expected an integer"):
            load_settings(search_user_dirs=False, env={f"OVERWATCH_ALARMS__{key}": value})


def test_acknowledged_alarm_is_not_reminded(db) -> None:
    recorder = Recorder()
    manager = one(renotify_minutes=1, notify=recorder)
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
    step(db, one(), evaluation(B), T0)
    with pytest.raises(ValueError, match="name of the user"):
        transact(db, lambda root: acknowledge(overwatch_root(root), 1, ""))


def test_notices_are_sent_only_after_commit(db) -> None:
    recorder = Recorder()
    manager = one(notify=recorder)

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

    assert step(db, one(notify=broken), evaluation(B), T0) == [1]
    assert len(alarms(db)) == 1


def test_list_alarms_filters_and_limit(db) -> None:
    manager = one()
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
    step(db, one(notify=recorder), evaluation(B), T0)
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
