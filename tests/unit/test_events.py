"""Live events: the format, processing's publisher, the web's hub and its stream.

Real ZMQ sockets on loopback; the stream is read through Flask's test client.
"""

from __future__ import annotations

import json
import time

import pytest
import zmq

from overwatch import events
from overwatch.notices import FormatError, NoticeListener
from webapp.push import EventHub


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def until(chunks, text: str) -> str:
    """The first chunk of a stream holding ``text`` (keep-alives and others skipped)."""
    return next(chunk for chunk in chunks if text in chunk)


def test_event_frames_round_trip_and_bad_ones_are_named() -> None:
    event = events.make_event("snapshot", {"run": 3, "subsystem": "EMC", "timestamp": 5.0}, 7)
    assert events.decode_event(events.encode_event(event)) == event
    with pytest.raises(ValueError, match="unknown event type 'gossip'"):
        events.make_event("gossip", {}, 1)
    for frame, message in [
        (b"\xff", "not JSON text"),
        (b"[1]", "must be a JSON object"),
        (b'{"id": 1, "type": "gossip"}', "event type 'gossip'"),
        (b'{"id": "x", "type": "alarm"}', "event id must be an integer"),
        (b"x" * (events.MAX_EVENT_BYTES + 1), "more than"),
    ]:
        with pytest.raises(FormatError, match=message):
            events.decode_event(frame)


def test_event_ids_grow_even_when_the_clock_does_not() -> None:
    clock = events.EventClock()
    ids = [clock.next() for _ in range(1000)]
    assert ids == sorted(set(ids)) and ids[0] >= time.time_ns() // 1000 - 10_000_000


def test_published_events_reach_the_hub_and_streams_resume_after_an_id(tmp_path) -> None:
    publisher = events.EventPublisher("tcp://127.0.0.1:*")
    hub = EventHub(publisher.address, str(tmp_path))
    try:

        def snapshot_seen():  # a subscriber misses what comes before it joined: say it again
            publisher.publish("snapshot", run=1, subsystem="TPC", timestamp=10.0)
            time.sleep(0.02)
            return [e for e in hub.events_after(0) if e["type"] == "snapshot"]

        first = wait_for(snapshot_seen)[-1]["id"]
        second = publisher.publish("alarm", action="opened", alarm={"id": 4, "run": 1})
        got = wait_for(lambda: [e for e in hub.wait(first, 1.0) if e["type"] == "alarm"])
        assert [e["id"] for e in got] == [second["id"]] and got[0]["alarm"]["id"] == 4
        assert [e for e in hub.events_after(first) if e["type"] == "alarm"] == got
        assert hub.wait(hub.last_id(), 0.05) == []  # nothing new: waits, then empty
    finally:
        hub.stop()
        publisher.close()


def test_a_taken_address_leaves_processing_running_without_events() -> None:
    first = events.EventPublisher("tcp://127.0.0.1:*")
    try:
        second = events.EventPublisher(first.address)
        assert second.address is None and second.publish("snapshot", run=1) is None
    finally:
        first.close()


def test_event_notices_are_handed_to_processing_and_republished() -> None:
    publisher = events.EventPublisher("tcp://127.0.0.1:*")
    listener = NoticeListener("tcp://127.0.0.1:*", on_event=publisher.republish)
    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(publisher.address)
    push = context.socket(zmq.PUSH)
    push.connect(listener.address)
    try:
        time.sleep(0.2)  # the subscription reaches the publisher
        push.send(events.encode_event_notice("alarm", {"action": "acknowledged",
                                                        "alarm": {"id": 9}}))  # fmt: skip
        assert listener.receive(5.0) is None  # not a snapshot notice: handed on
        assert sub.poll(5000)
        event = events.decode_event(sub.recv())
        assert event["type"] == "alarm" and event["action"] == "acknowledged"
        assert event["alarm"] == {"id": 9} and isinstance(event["id"], int)
    finally:
        for socket in (sub, push):
            socket.close(linger=0)
        listener.close()
        publisher.close()


def test_the_stream_greets_resumes_and_refuses_beyond_its_limit(tmp_path, monkeypatch) -> None:
    import dataclasses

    from overwatch.store.db import open_db
    from tests.unit.test_web_support import add_user, login, make_settings
    from webapp.app import create_app

    settings = make_settings(tmp_path)
    settings = dataclasses.replace(  # no processing here: the hub subscribes to nothing
        settings, processing=dataclasses.replace(settings.processing, events_address="")
    )
    db = open_db("memory://")
    app = create_app(settings, db=db, data_dir=settings.data.data_dir, testing=True)
    add_user(db, "shifter")
    client = app.test_client()
    login(client, "shifter")
    response = client.get("/api/events")
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = (c.decode() for c in response.response)
    assert next(chunks).startswith("retry: ")
    assert "event: hello" in next(chunks)
    from webapp import push

    with app.app_context():
        hub = push.hub()
    sent = hub.add("health", database=True)
    assert until(chunks, f"id: {sent['id']}")
    response.close()
    # Reconnecting after that id: only what came later.
    later = hub.add("receiver", subsystem="EMC", state="receiving")
    resumed = client.get("/api/events", headers={"Last-Event-ID": str(sent["id"])})
    parts = (c.decode() for c in resumed.response)
    data = until(parts, "event: ")
    assert f"id: {later['id']}" in data
    assert json.loads(data.split("data: ")[1])["state"] == "receiving"
    resumed.close()
    monkeypatch.setattr(hub, "max_streams", hub.streams)
    refused = client.get("/api/events")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
