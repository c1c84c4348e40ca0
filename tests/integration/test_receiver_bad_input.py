"""Bad input over real sockets: quarantined with a reason, counted, and receiving goes on."""

from __future__ import annotations

import json
import logging
import random
import struct

import pytest

from receivers.quarantine import read_index
from receivers.zmq_receiver import Receiver
from tests.integration.receiver_helpers import (
    ScriptedPub,
    ScriptedRep,
    header,
    make_payload,
    running,
    settings,
    stored_files,
    wait_for,
)

pytestmark = pytest.mark.integration

GOOD = make_payload(100, n=1, bins=5)
BAD_ROOT = make_payload(7)
# A plausible ROOT header (magic, version, fBEGIN, fEND = its length) over random bytes.
GARBAGE = b"root" + struct.pack(">iii", 62206, 100, 4096) + random.Random(3).randbytes(4096 - 16)
GOOD_HEADER = {"run": 1, "subsystem": "EMC", "mode": "B", "seq": 1}


def _json(**changes) -> bytes:
    data = {**GOOD_HEADER, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


# (case id, frames sent as the REP answer, words expected in the reason)
CASES = [
    ("header-not-json", [b"{run: 1", BAD_ROOT], "not JSON"),
    ("header-not-utf8", [b"\xff\xfe\x00", BAD_ROOT], "not UTF-8"),
    ("header-not-object", [b"[1, 2]", BAD_ROOT], "JSON object"),
    ("header-misses-run", [_json(run=...), BAD_ROOT], "misses the field 'run'"),
    ("header-misses-seq", [_json(seq=...), BAD_ROOT], "misses the field 'seq'"),
    ("header-misses-subsystem", [_json(subsystem=...), BAD_ROOT], "misses the field 'subsystem'"),
    ("header-misses-mode", [_json(mode=...), BAD_ROOT], "misses the field 'mode'"),
    ("run-is-text", [_json(run="1"), BAD_ROOT], "'run' must be an integer"),
    ("run-is-bool", [_json(run=True), BAD_ROOT], "'run' must be an integer"),
    ("run-negative", [_json(run=-4), BAD_ROOT], "must not be negative"),
    # Beyond ZODB's 32-bit run keys: stored, it made every processing pass fail.
    ("run-beyond-2**31", [_json(run=2**31), GOOD], "invalid run number 2147483648"),
    ("run-beyond-2**63", [_json(run=2**64 + 1), GOOD], "expected an integer from 1 to"),
    # 2096: stored, it would name every later snapshot of the run after it.
    ("timestamp-in-the-future", [_json(timestamp=3_976_000_000), GOOD], "future timestamp"),
    ("seq-is-float", [_json(seq=1.5), BAD_ROOT], "'seq' must be an integer"),
    ("timestamp-is-text", [_json(timestamp="now"), BAD_ROOT], "'timestamp' must be a number"),
    ("subsystem-with-slash", [_json(subsystem="../EMC"), BAD_ROOT], "invalid subsystem"),
    ("other-subsystem", [_json(subsystem="TPC"), BAD_ROOT], "header names subsystem 'TPC'"),
    ("payload-not-root", [_json(), b"hello world " * 50], "does not start with 'root'"),
    ("payload-root-header-garbage-body", [_json(), GARBAGE], "ROOT"),
    ("payload-truncated", [_json(), BAD_ROOT[: len(BAD_ROOT) // 2]], "ROOT"),
    ("payload-cut-short-by-one-byte", [_json(), BAD_ROOT[:-1]], "ROOT"),
    ("three-frames", [_json(), BAD_ROOT, b"extra"], "expected 2 frames"),
    ("one-frame", [_json()], "expected 2 frames"),
]


@pytest.mark.parametrize(("frames", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_message_is_quarantined_and_receiving_goes_on(tmp_path, caplog, frames, words):
    rep = ScriptedRep([frames, [header(seq=2, timestamp=1_700_000_000), GOOD]])
    receiver = Receiver(settings(), tmp_path, "EMC", rep.endpoint, "req")
    with caplog.at_level(logging.ERROR, logger="receivers"):
        try:
            with running(receiver):
                wait_for(
                    lambda: receiver.counters["stored"] == 1,
                    what="the good message after the bad one",
                )
        finally:
            rep.stop()
    assert receiver.counters["quarantined"] == 1
    assert [p.read_bytes() for p in stored_files(tmp_path)] == [GOOD]
    [kept] = list((tmp_path / "quarantine").glob("*.bin"))
    assert kept.read_bytes() == frames[-1]
    reason = json.loads(kept.with_name(kept.name[: -len(".bin")] + ".reason.json").read_text())
    assert words in reason["reason"]
    assert reason["frame_bytes"] == [len(f) for f in frames]
    rejected = [r for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(rejected) == 1 and words in rejected[0].getMessage()


def test_oversized_message_is_quarantined_keeping_only_its_start(tmp_path):
    big = make_payload(8, n=20, bins=1000)
    assert len(big) > len(GOOD) + 100  # a valid ROOT file, rejected for its size alone
    rep = ScriptedRep([[_json(), big], [header(seq=2, timestamp=1_700_000_000), GOOD]])
    receiver = Receiver(
        settings(max_message_bytes=len(GOOD) + 100, quarantine_payload_bytes=1000),
        tmp_path, "EMC", rep.endpoint, "req",
    )  # fmt: skip
    try:
        with running(receiver):
            wait_for(lambda: receiver.counters["stored"] == 1, what="the good message")
    finally:
        rep.stop()
    [kept] = list((tmp_path / "quarantine").glob("*.bin"))
    assert kept.read_bytes() == big[:1000]
    reason = json.loads(kept.with_name(kept.name[: -len(".bin")] + ".reason.json").read_text())
    assert reason["reason"].startswith("oversized message")
    assert reason["payload_bytes"] == len(big) and reason["kept_bytes"] == 1000
    [indexed] = read_index(tmp_path, "EMC")
    assert indexed["reason"] == reason["reason"] and indexed["kept"] == kept.name


def test_message_beyond_the_zmq_limit_is_cut_off_and_receiving_goes_on(tmp_path):
    """ZMQ_MAXMSGSIZE (twice the limit plus headroom) drops the connection: a timeout, then on."""
    huge = b"root" + bytes(400_000)
    rep = ScriptedRep([[_json(), huge], [header(seq=2, timestamp=1_700_000_000), GOOD]])
    receiver = Receiver(
        settings(max_message_bytes=len(GOOD) + 100, timeout=0.5, max_backoff=0.2),
        tmp_path, "EMC", rep.endpoint, "req",
    )  # fmt: skip
    try:
        with running(receiver):
            wait_for(lambda: receiver.counters["stored"] == 1, what="the good message")
    finally:
        rep.stop()
    assert receiver.counters["timeouts"] >= 1
    assert [p.read_bytes() for p in stored_files(tmp_path)] == [GOOD]


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        ([b"EMC", b"not json", BAD_ROOT], "not JSON"),
        ([b"EMC", _json(), b"ROOT? no"], "does not start with 'root'"),
        ([b"EMC", _json()], "expected 3 frames"),
    ],
    ids=["header-not-json", "payload-not-root", "missing-payload"],
)
def test_bad_published_message_is_quarantined(tmp_path, frames, words):
    pub = ScriptedPub()
    receiver = Receiver(settings(), tmp_path, "EMC", pub.endpoint, "sub")
    try:
        with running(receiver):
            wait_for(
                lambda: pub.send(frames) or receiver.counters["quarantined"],
                what="the bad message to arrive",
            )
            pub.send([b"EMC", header(seq=2, timestamp=1_700_000_000), GOOD])
            wait_for(lambda: receiver.counters["stored"] == 1, what="the good message")
    finally:
        pub.close()
    reasons = [
        json.loads(p.read_text())["reason"] for p in (tmp_path / "quarantine").glob("*.json")
    ]
    assert reasons and all(words in r for r in reasons)
    assert [p.read_bytes() for p in stored_files(tmp_path)] == [GOOD]
