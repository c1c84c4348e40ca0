"""The status page and /api/status: receivers coloured by age, processing lag, database, disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import webapp.status
from overwatch.store.db import overwatch_root, transact
from receivers.heartbeat import Heartbeat, status_path
from tests.unit.test_web_support import add_user, login, make_app
from webapp.status import ALIVE, DEAD, LATE, UNKNOWN, level, redact


def write_heartbeat(
    data_dir: Path, subsystem: str, age: float, snapshot_age: float | None, **extra
):
    """A heartbeat file as a receiver writes it, aged by rewriting its times."""
    beat = Heartbeat(data_dir, subsystem)
    beat.set_state(extra.pop("state", "receiving"))
    assert beat.maybe_write(force=True)
    document = json.loads(status_path(data_dir, subsystem).read_text())
    now = time.time()
    document["updated"] = now - age
    document["last_contact"] = now - age
    document["last_snapshot"] = None if snapshot_age is None else now - snapshot_age
    document["started"] = now - 3600
    document.update(extra)
    status_path(data_dir, subsystem).write_text(json.dumps(document))


@pytest.fixture
def status_app(tmp_path: Path):
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    write_heartbeat(data_dir, "EMC", age=2, snapshot_age=5, counters={"stored": 12, "received": 14})
    write_heartbeat(data_dir, "TPC", age=2, snapshot_age=90)  # receiver fine, sender silent: late
    write_heartbeat(data_dir, "HLT", age=400, snapshot_age=400)  # receiver gone: dead
    client = app.test_client()
    login(client, "alice")
    return app, db, client, data_dir


def test_level_thresholds() -> None:
    assert level(0, 60, 300) == ALIVE
    assert level(59.9, 60, 300) == ALIVE
    assert level(60, 60, 300) == LATE
    assert level(300, 60, 300) == DEAD
    assert level(None, 60, 300) == UNKNOWN


def test_receivers_are_coloured_by_heartbeat_and_snapshot_age(status_app) -> None:
    _app, _db, client, _data_dir = status_app
    status = client.get("/api/status").get_json()
    by_name = {r["subsystem"]: r for r in status["receivers"]}
    assert [r["subsystem"] for r in status["receivers"]] == ["EMC", "HLT", "TPC"]
    assert by_name["EMC"]["status"] == ALIVE
    assert by_name["TPC"]["status"] == LATE
    assert by_name["HLT"]["status"] == DEAD
    assert by_name["EMC"]["counters"]["stored"] == 12
    assert 1 <= by_name["EMC"]["heartbeat_age"] < 30
    assert status["thresholds"] == {"late_seconds": 60.0, "dead_seconds": 300.0}
    page = client.get("/status").data.decode()
    for subsystem, colour in (("EMC", ALIVE), ("TPC", LATE), ("HLT", DEAD)):
        assert f'data-subsystem="{subsystem}" data-status="{colour}"' in page
        assert f"ow-row-{colour}" in page


def test_a_stopped_receiver_is_dead_and_an_unreadable_heartbeat_is_shown(status_app) -> None:
    _app, _db, client, data_dir = status_app
    write_heartbeat(data_dir, "EMC", age=1, snapshot_age=1, state="stopped")
    status_path(data_dir, "ZDC").write_text("{not json")
    rows = {r["subsystem"]: r for r in client.get("/api/status").get_json()["receivers"]}
    assert rows["EMC"]["status"] == DEAD
    assert rows["ZDC"]["state"] == "unreadable heartbeat file"
    assert rows["ZDC"]["status"] == UNKNOWN


def test_a_heartbeat_that_breaks_the_format_is_shown_with_the_reason(status_app) -> None:
    _app, _db, client, data_dir = status_app
    document = json.loads(status_path(data_dir, "EMC").read_text())
    document["updated"] = "yesterday"
    status_path(data_dir, "EMC").write_text(json.dumps(document))
    rows = {r["subsystem"]: r for r in client.get("/api/status").get_json()["receivers"]}
    assert rows["EMC"]["state"] == "unreadable heartbeat file"
    assert "'updated' must be a unix time" in rows["EMC"]["last_error"]
    assert rows["EMC"]["status"] == UNKNOWN
    assert rows["TPC"]["status"] == LATE  # the others are unaffected


def test_receivers_show_from_their_heartbeats_when_the_database_is_down(
    status_app, monkeypatch
) -> None:
    app, _db, _client, _data_dir = status_app

    def unreachable():
        raise ConnectionError("ZEO server gone")

    monkeypatch.setattr(webapp.status, "overwatch", unreachable)
    with app.app_context():
        status = webapp.status.collect()
    assert status["database"]["reachable"] is False
    assert "ZEO server gone" in status["database"]["error"]
    assert status["processing"]["status"] == UNKNOWN
    by_name = {r["subsystem"]: r["status"] for r in status["receivers"]}
    assert by_name == {"EMC": ALIVE, "HLT": DEAD, "TPC": LATE}


def test_processing_lag_database_and_disk(status_app) -> None:
    _app, db, client, _data_dir = status_app
    now = time.time()

    def passes(finished: float, error: str = ""):
        def work(root: dict) -> None:
            status = overwatch_root(root).processing
            status.last_pass_started = finished - 1
            status.last_pass_finished = finished
            status.last_error = error

        transact(db, work)

    passes(now - 1)  # after the newest snapshot (5 s ago): no lag
    status = client.get("/api/status").get_json()
    assert status["processing"]["lag_seconds"] == 0.0
    assert status["processing"]["status"] == ALIVE
    assert status["database"]["reachable"] is True
    assert status["disk"]["free_bytes"] > 0
    assert 0 < status["disk"]["free_fraction"] <= 1

    passes(now - 30)  # the EMC snapshot of 5 s ago waits for a pass
    lagging = client.get("/api/status").get_json()["processing"]
    assert 4 <= lagging["lag_seconds"] < 60

    passes(now - 1000, "Run1/EMC: disk full")
    stale = client.get("/api/status").get_json()["processing"]
    assert stale["status"] == DEAD
    assert stale["last_error"] == "Run1/EMC: disk full"
    assert "disk full" in client.get("/status").data.decode()


def test_unreachable_database_is_reported(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    add_user(db)
    client = app.test_client()
    login(client, "alice")
    assert client.get("/healthz").get_json()["database"] == "reachable"
    db.close()
    health = client.get("/healthz")
    assert health.status_code == 503
    assert "database unreachable" in health.get_json()["error"]


def test_storage_passwords_are_not_shown() -> None:
    assert redact("postgresql://user:s3cret@db:5432/ow") == "postgresql://user:***@db:5432/ow"
    assert redact("zeo://127.0.0.1:8100") == "zeo://127.0.0.1:8100"


def test_notification_counters_saved_by_processing_are_shown(status_app) -> None:
    """Processing's dispatcher writes its counters to a status file; the page shows them."""
    from overwatch.store.layout import DataDir
    from processing.analysis.alarms import AlarmNotice, NotificationDispatcher

    _app, _db, client, data_dir = status_app
    assert client.get("/api/status").get_json()["notifications"] == {}
    assert "not saved notification counters yet" in client.get("/status").data.decode()

    class Down:
        name = "email"
        min_interval = 0.0

        def send(self, notices) -> None:
            raise ConnectionRefusedError("mail server down")

    dispatcher = NotificationDispatcher(
        [Down()], queue_size=2, max_batch=1, backoff=0.01, max_backoff=0.01,
        status_file=DataDir(data_dir).notifications_file,
    ).start()  # fmt: skip
    try:
        for alarm_id in range(1, 6):
            dispatcher.enqueue(
                AlarmNotice(alarm_id, time.time(), 3, "EMC", "hot", "p", "", "g", "Bad", "m")
            )
        dispatcher.write_status()
        shown = client.get("/api/status").get_json()["notifications"]
        (row,) = shown["notifiers"]
        assert row["name"] == "email" and row["queued"] + row["dropped"] == 5
        assert row["dropped"] >= 2 and row["delivered"] == 0 and row["status"] == DEAD
        assert shown["status"] == DEAD and shown["running"] is True and shown["queue_size"] == 2
        assert shown["totals"]["dropped"] == row["dropped"]
        page = client.get("/status").data.decode()
        assert 'data-notifier="email"' in page
        assert f'<td data-counter="dropped">{row["dropped"]}</td>' in page
    finally:
        dispatcher.stop(timeout=2)
    stopped = client.get("/api/status").get_json()["notifications"]
    assert stopped["running"] is False and stopped["notifiers"][0]["failed"] >= 1


def test_unreadable_notification_counters_are_shown_not_fatal(status_app) -> None:
    from overwatch.store.layout import DataDir

    _app, _db, client, data_dir = status_app
    DataDir(data_dir).notifications_file.write_text("{not json")
    shown = client.get("/api/status").get_json()["notifications"]
    assert shown["status"] == UNKNOWN and "unreadable" in shown["error"]
    assert client.get("/status").status_code == 200
