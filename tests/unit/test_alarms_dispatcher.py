"""The notification dispatcher: retries until delivered, bounded queue, counters on disk."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from overwatch.store.layout import DataDir
from processing.analysis.alarms import AlarmNotice, NotificationDispatcher

DEADLINE = 20.0


def notice(alarm_id: int) -> AlarmNotice:
    return AlarmNotice(
        alarm_id, 1_700_000_000.0, 300, "EMC", "hot", "EMCal/SM03/cellHits", "", "EMCal",
        "Bad", f"message {alarm_id}",
    )  # fmt: skip


def wait_for(predicate, timeout: float = DEADLINE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Flaky:
    """Fails its first ``failures`` sends, then records every batch it delivers."""

    name = "flaky"
    min_interval = 0.0

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.delivered: list[int] = []

    def send(self, notices: Sequence[AlarmNotice]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError("server down")
        self.delivered.extend(n.alarm_id for n in notices)


class Blocked:
    """Hangs in send until released."""

    name = "blocked"
    min_interval = 0.0

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.delivered: list[int] = []

    def send(self, notices: Sequence[AlarmNotice]) -> None:
        self.entered.set()
        self.release.wait(DEADLINE)
        self.delivered.extend(n.alarm_id for n in notices)


@pytest.fixture
def dispatchers() -> Iterator[list[NotificationDispatcher]]:
    created: list[NotificationDispatcher] = []
    yield created
    for dispatcher in created:
        dispatcher.stop(timeout=2)


def test_a_notifier_failing_n_times_then_up_delivers_every_notice_exactly_once(
    dispatchers,
) -> None:
    flaky = Flaky(failures=7)  # more than retry_attempts: never given up
    dispatcher = NotificationDispatcher(
        [flaky], retry_attempts=3, backoff=0.01, max_backoff=0.02, max_batch=4
    ).start()
    dispatchers.append(dispatcher)
    for alarm_id in range(1, 11):
        assert dispatcher.enqueue(notice(alarm_id))
    assert dispatcher.wait_idle(DEADLINE)
    assert sorted(flaky.delivered) == list(range(1, 11))  # all of them, once each
    stats = dispatcher.stats()["flaky"]
    assert stats["queued"] == stats["delivered"] == 10
    assert (stats["failed"], stats["dropped"], stats["pending"]) == (0, 0, 0)
    assert stats["failures"] == 7 and stats["attempts"] == flaky.calls


def test_a_full_queue_drops_and_counts(dispatchers, tmp_path: Path, caplog) -> None:
    blocked = Blocked()
    path = DataDir(tmp_path).notifications_file
    dispatcher = NotificationDispatcher(
        [blocked], queue_size=3, max_batch=1, status_file=path, status_interval=0.05
    ).start()
    dispatchers.append(dispatcher)
    assert dispatcher.enqueue(notice(1))
    assert blocked.entered.wait(DEADLINE)  # #1 is being sent: the queue holds 3 more
    results = [dispatcher.enqueue(notice(i)) for i in range(2, 8)]
    assert results == [True, True, True, False, False, False]
    assert "queue full (3): dropped alarm #5" in caplog.text
    stats = dispatcher.stats()["blocked"]
    assert (stats["queued"], stats["dropped"], stats["pending"]) == (4, 3, 4)

    def saved() -> dict:
        try:
            return json.loads(path.read_text())["notifiers"]["blocked"]
        except (OSError, ValueError, KeyError):
            return {}

    assert wait_for(lambda: saved().get("dropped") == 3 and saved().get("pending") == 4)
    blocked.release.set()
    assert dispatcher.wait_idle(DEADLINE)
    assert blocked.delivered == [1, 2, 3, 4]
    assert wait_for(lambda: saved().get("delivered") == 4 and saved().get("pending") == 0)
    dispatcher.stop()
    document = json.loads(path.read_text())
    assert document["running"] is False and document["queue_size"] == 3


def test_what_is_still_queued_at_stop_counts_as_failed(dispatchers, tmp_path: Path) -> None:
    path = tmp_path / "status" / "notifications.json"
    flaky = Flaky(failures=10**6)
    dispatcher = NotificationDispatcher(
        [flaky], retry_attempts=1, backoff=0.01, max_backoff=0.01, max_batch=1, status_file=path
    ).start()
    for alarm_id in (1, 2, 3):
        dispatcher.enqueue(notice(alarm_id))
    assert wait_for(lambda: flaky.calls >= 3)
    dispatcher.stop(timeout=2)
    stats = dispatcher.stats()["flaky"]
    assert (stats["delivered"], stats["failed"]) == (0, 3)
    assert json.loads(path.read_text())["notifiers"]["flaky"]["failed"] == 3


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        NotificationDispatcher([], queue_size=0)
