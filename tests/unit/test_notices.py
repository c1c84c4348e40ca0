"""overwatch.notices: the notice and heartbeat formats, and the one notice listener."""

from __future__ import annotations

import json
import threading
import time

import pytest
import zmq

from overwatch.notices import (
    COUNTERS,
    FormatError,
    NoticeListener,
    decode_heartbeat,
    decode_notice,
    encode_heartbeat,
    encode_notice,
)

PATH = "Run123/EMC/EMChists.2026_01_01_00_00_00.root"


# --------------------------------------------------------------------------- notices


def test_notice_round_trip() -> None:
    frame = encode_notice(123, "EMC", PATH)
    assert json.loads(frame) == {"run": 123, "subsystem": "EMC", "path": PATH}
    assert decode_notice(frame) == {"run": 123, "subsystem": "EMC", "path": PATH}


def test_notice_extra_keys_are_ignored() -> None:
    frame = json.dumps({"run": 1, "subsystem": "TPC", "path": "x", "seq": 9}).encode()
    assert decode_notice(frame) == {"run": 1, "subsystem": "TPC", "path": "x"}


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"{not json", "notice is not JSON"),
        (b"\xff\xfe", "notice is not UTF-8"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'{"subsystem": "EMC", "path": "x"}', "misses the field 'run'"),
        (b'{"run": 1, "path": "x"}', "misses the field 'subsystem'"),
        (b'{"run": 1, "subsystem": "EMC"}', "misses the field 'path'"),
        (b'{"run": "1", "subsystem": "EMC", "path": "x"}', "invalid run number"),
        (b'{"run": -1, "subsystem": "EMC", "path": "x"}', "invalid run number"),
        (b'{"run": true, "subsystem": "EMC", "path": "x"}', "invalid run number"),
        (b'{"run": 1, "subsystem": "../EMC", "path": "x"}', "invalid subsystem"),
        (b'{"run": 1, "subsystem": "EMC", "path": 5}', "'path' must be a string"),
        (b"{" + b" " * 70_000 + b"}", "more than"),
        (None, "must be bytes or text"),
    ],
)
def test_bad_notices_are_refused_with_a_reason(frame: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        decode_notice(frame)


def test_encode_notice_refuses_bad_names() -> None:
    with pytest.raises(ValueError, match="invalid subsystem"):
        encode_notice(1, "EMC/x", PATH)
    with pytest.raises(ValueError, match="invalid run number"):
        encode_notice(-1, "EMC", PATH)
    with pytest.raises(TypeError, match="path must be a string"):
        encode_notice(1, "EMC", None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- heartbeats


def heartbeat(**changes) -> dict:
    document = {
        "subsystem": "EMC",
        "pid": 12,
        "host": "box",
        "state": "receiving",
        "started": 1.0,
        "updated": 2.5,
        "last_contact": None,
        "last_snapshot": 2,
        "last_snapshot_path": PATH,
        "last_run": 123,
        "last_seq": None,
        "counters": dict.fromkeys(COUNTERS, 0),
        "pending": {"count": 0, "bytes": 0, "limit": 10},
        "last_error": None,
    }
    return {**document, **changes}


def test_heartbeat_round_trip() -> None:
    document = heartbeat(extra={"kept": True})
    assert decode_heartbeat(encode_heartbeat(document)) == document
    assert decode_heartbeat(encode_heartbeat(document).decode()) == document  # text works too


def test_every_heartbeat_field_is_optional() -> None:
    assert decode_heartbeat(b"{}") == {}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (heartbeat(updated="yesterday"), "'updated' must be a unix time or null"),
        (heartbeat(started=True), "'started' must be a unix time"),
        (heartbeat(last_run=1.5), "'last_run' must be an integer or null"),
        (heartbeat(state=3), "'state' must be text or null"),
        (heartbeat(counters={"stored": "12"}), "'counters' must map names to integers"),
        (heartbeat(counters=[1, 2]), "'counters' must map names to integers"),
        (heartbeat(pending={"count": None}), "'pending' must map names to integers"),
    ],
)
def test_bad_heartbeats_are_refused_both_ways(document: dict, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        encode_heartbeat(document)
    with pytest.raises(FormatError, match=message):
        decode_heartbeat(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"{not json", "heartbeat is not JSON"), (b'"text"', "must be a JSON object, got str")],
)
def test_unreadable_heartbeat_files(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        decode_heartbeat(data)


# --------------------------------------------------------------------------- the listener


@pytest.fixture
def pusher():
    sockets = []

    def connect(address: str) -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        sockets.append(sock)
        return sock

    yield connect
    for sock in sockets:
        sock.close(linger=0)


def test_listener_receives_notices_and_skips_malformed_ones(pusher) -> None:
    listener = NoticeListener("tcp://127.0.0.1:*")
    try:
        assert listener.address.startswith("tcp://127.0.0.1:")
        assert listener.receive(0.01) is None  # nothing sent yet
        push = pusher(listener.address)
        push.send(b"{not json")
        push.send_multipart([encode_notice(1, "EMC", PATH), b"second frame"])
        push.send(encode_notice(7, "TPC", PATH))
        received = [listener.receive(5) for _ in range(3)]
        assert received == [None, None, {"run": 7, "subsystem": "TPC", "path": PATH}]
        assert listener.malformed == 2
    finally:
        listener.close()


def test_binding_an_address_twice_fails_at_once() -> None:
    first = NoticeListener("tcp://127.0.0.1:*")
    try:
        with pytest.raises(zmq.ZMQError):
            NoticeListener(first.address)
    finally:
        first.close()


def test_listen_calls_back_until_stopped_and_survives_a_failing_handler(pusher) -> None:
    listener = NoticeListener("tcp://127.0.0.1:*")
    seen: list[dict] = []

    def on_notice(notice: dict) -> None:
        seen.append(notice)
        if notice["run"] == 1:
            raise RuntimeError("handler bug")

    stop = threading.Event()
    thread = threading.Thread(target=listener.listen, args=(on_notice, stop, 0.05))
    thread.start()
    push = pusher(listener.address)
    for run in (1, 2):
        push.send(encode_notice(run, "EMC", PATH))
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert [notice["run"] for notice in seen] == [1, 2]
