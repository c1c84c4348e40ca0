"""The wire protocol: header and request parsing, framing."""

from __future__ import annotations

import json

import pytest

from receivers import wire

GOOD = {"run": 246_001, "subsystem": "EMC", "mode": "B", "seq": 12, "timestamp": 1_700_000_000.5}


def encoded(**changes) -> bytes:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_header_round_trip():
    header = wire.Header(run=5, subsystem="TPC", mode="B", seq=3, timestamp=1.25)
    assert wire.parse_header(header.encode()) == header
    untimed = wire.Header(run=5, subsystem="TPC", seq=3)
    assert "timestamp" not in json.loads(untimed.encode())
    assert wire.parse_header(untimed.encode()).timestamp is None


def test_header_fields_and_extra_keys():
    parsed = wire.parse_header(encoded(extra="ignored", timestamp=1_700_000_000))
    assert parsed == wire.Header(246_001, "EMC", "B", 12, 1_700_000_000.0)
    assert isinstance(parsed.timestamp, float)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"{run: 1}", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (encoded(run=...), "misses the field 'run'"),
        (encoded(seq=...), "misses the field 'seq'"),
        (encoded(subsystem=...), "misses the field 'subsystem'"),
        (encoded(mode=...), "misses the field 'mode'"),
        (encoded(run="1"), "'run' must be an integer"),
        (encoded(run=1.0), "'run' must be an integer"),
        (encoded(run=True), "'run' must be an integer"),
        (encoded(run=-1), "must not be negative"),
        (encoded(run=2**31), "'run': invalid run number 2147483648: expected an integer from 1"),
        (encoded(run=10**30), "'run': invalid run number"),
        (encoded(seq=None), "'seq' must be an integer"),
        (encoded(subsystem=7), "invalid subsystem"),
        (encoded(subsystem="EMC/../x"), "invalid subsystem"),
        (encoded(subsystem=""), "invalid subsystem"),
        (encoded(mode=""), "'mode' must be"),
        (encoded(mode=2), "'mode' must be"),
        (encoded(timestamp="2024-01-01"), "'timestamp' must be a number"),
        (encoded(timestamp=False), "'timestamp' must be a number"),
        (encoded(timestamp=-5), "plausible unix time"),
        (b'{"run": 1, "subsystem": "EMC", "mode": "B", "seq": 1, "timestamp": NaN}', "plausible"),
        (b"{" + b" " * wire.MAX_HEADER_BYTES + b"}", "more than"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(frame, message):
    with pytest.raises(wire.WireError, match=message.replace("(", r"\(")):
        wire.parse_header(frame)


def test_run_range_at_the_wire():
    """Runs are 1 to 2**31 - 1 (ZODB's keys); 0 is "no run going on" and still parses."""
    assert wire.parse_header(encoded(run=2**31 - 1)).run == 2**31 - 1
    assert wire.parse_header(encoded(run=wire.NO_RUN)).run == 0


def test_refusal_header():
    refusal = wire.parse_header(wire.encode_refusal("unknown subsystem 'X'", "X"))
    assert refusal == wire.Refusal("unknown subsystem 'X'", "X")


def test_request_round_trip_and_errors():
    assert wire.parse_request(wire.encode_request("HLT")) == "HLT"
    with pytest.raises(wire.WireError, match="misses the field 'subsystem'"):
        wire.parse_request(b"{}")
    with pytest.raises(wire.WireError, match="not JSON"):
        wire.parse_request(b"EMC")
    with pytest.raises(wire.WireError, match="invalid subsystem"):
        wire.encode_request("EMC TPC")


def test_framing_per_pattern():
    header = wire.Header(run=1, subsystem="EMC", seq=1)
    assert wire.rep_message(header, b"root...") == [header.encode(), b"root..."]
    assert wire.pub_message(header, b"root...") == [b"EMC", header.encode(), b"root..."]
    assert wire.split_message([b"h", b"p"], "req") == (None, b"h", b"p")
    assert wire.split_message([b"EMC", b"h", b"p"], "sub") == (b"EMC", b"h", b"p")
    with pytest.raises(wire.WireError, match=r"expected 2 frames \[header, payload\], got 3"):
        wire.split_message([b"EMC", b"h", b"p"], "req")
    with pytest.raises(
        wire.WireError, match=r"expected 3 frames \[topic, header, payload\], got 2"
    ):
        wire.split_message([b"h", b"p"], "sub")
