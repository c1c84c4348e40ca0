"""The ZMQ wire protocol between a snapshot sender and a receiver.

Framing (every frame is a ZMQ message part of one multipart message):

* REQ/REP: the receiver (REQ) sends one frame, the UTF-8 JSON request
  ``{"subsystem": "EMC"}``. The sender (REP) answers ``[header, payload]``.
* PUB/SUB: the sender publishes ``[topic, header, payload]``; ``topic`` is the
  subsystem name in ASCII (``b"EMC"``), used by ZMQ's subscription filter. A
  receiver subscribes to its subsystem and ignores any other topic (ZMQ matches
  by prefix, so ``EMC`` also lets ``EMCAL`` through).

``header`` is a UTF-8 JSON object ``{"run": int, "subsystem": "EMC", "mode":
"B", "seq": int, "timestamp": <unix float, optional>, "pending": <int,
optional>}``; further keys are ignored so senders can add information.
``pending`` (a REP sender's hint, e.g. the replay's) counts the snapshots of
that subsystem it holds ready after this one: a REQ receiver asks again at
once instead of waiting its interval. ``run`` is :data:`NO_RUN` (0, "no run
going on": stored never) or a run number of :mod:`overwatch.names` (1 to
2**31 - 1); anything else is a bad header, refused here so that no part of
Overwatch ever sees a run it cannot store. ``payload`` is the bytes of a complete
ROOT file. A sender that cannot serve a request answers a header with an
``"error"`` key (a human-readable reason) and an empty payload; the receiver
logs the reason and stores nothing.

This module is shared by the simulator (sender) and the receiver, so both sides
always agree on the format.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from overwatch import names

#: Largest accepted header frame; a header is a few dozen bytes.
MAX_HEADER_BYTES = 65_536
#: The run senders send between runs: valid on the wire, never stored.
NO_RUN = 0


class WireError(ValueError):
    """A message does not follow the wire protocol; the text says what is wrong."""


@dataclass(frozen=True)
class Header:
    """Frame 0 of a snapshot message."""

    run: int
    subsystem: str
    mode: str = "B"
    seq: int = 0
    timestamp: float | None = None
    pending: int | None = None  # snapshots the sender holds ready after this one

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run": self.run,
            "subsystem": self.subsystem,
            "mode": self.mode,
            "seq": self.seq,
        }
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        if self.pending is not None:
            data["pending"] = self.pending
        return data

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Refusal:
    """A sender's answer that it cannot serve the request (header with an "error" key)."""

    reason: str
    subsystem: str | None = None


def check_subsystem(subsystem: str) -> str:
    """Return ``subsystem`` if it is a valid name (:mod:`overwatch.names`); else WireError."""
    try:
        return names.check_subsystem(subsystem)
    except names.InvalidName as error:
        raise WireError(str(error)) from None


def _load_json_object(frame: bytes, what: str) -> dict[str, Any]:
    if len(frame) > MAX_HEADER_BYTES:
        raise WireError(f"{what} is {len(frame)} bytes, more than {MAX_HEADER_BYTES}")
    try:
        data = json.loads(bytes(frame).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise WireError(f"{what} is not UTF-8 text: {error}") from error
    except json.JSONDecodeError as error:
        raise WireError(f"{what} is not JSON: {error.msg} at position {error.pos}") from error
    if not isinstance(data, dict):
        raise WireError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _integer(data: dict[str, Any], key: str) -> int:
    if key not in data:
        raise WireError(f"header misses the field {key!r}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"header field {key!r} must be an integer, got {value!r}")
    if value < 0:
        raise WireError(f"header field {key!r} must not be negative, got {value}")
    return value


def parse_header(frame: bytes) -> Header | Refusal:
    """Decode and validate frame 0; raise :class:`WireError` naming the problem."""
    data = _load_json_object(frame, "header")
    if "error" in data:
        subsystem = data.get("subsystem")
        return Refusal(str(data["error"]), subsystem if isinstance(subsystem, str) else None)
    run = _integer(data, "run")
    if run != NO_RUN:
        try:
            names.check_run(run)
        except names.InvalidName as error:
            raise WireError(f"header field 'run': {error}") from None
    seq = _integer(data, "seq")
    if "subsystem" not in data:
        raise WireError("header misses the field 'subsystem'")
    subsystem = check_subsystem(data["subsystem"])
    if "mode" not in data:
        raise WireError("header misses the field 'mode'")
    mode = data["mode"]
    try:
        names.check_mode(mode)
    except names.InvalidName:
        raise WireError(
            f"header field 'mode' must be 1-16 letters or digits, got {mode!r}"
        ) from None
    timestamp = data.get("timestamp")
    if timestamp is not None:
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise WireError(f"header field 'timestamp' must be a number, got {timestamp!r}")
        if not math.isfinite(timestamp) or not 0 <= timestamp < 32_503_680_000:  # year 3000
            raise WireError(f"header field 'timestamp' is not a plausible unix time: {timestamp}")
        timestamp = float(timestamp)
    pending = _integer(data, "pending") if data.get("pending") is not None else None
    return Header(
        run=run, subsystem=subsystem, mode=mode, seq=seq, timestamp=timestamp, pending=pending
    )


def encode_refusal(reason: str, subsystem: str | None = None) -> bytes:
    data: dict[str, Any] = {"error": reason}
    if subsystem is not None:
        data["subsystem"] = subsystem
    return json.dumps(data).encode("utf-8")


def encode_request(subsystem: str) -> bytes:
    """The REQ frame asking a REP sender for the current snapshot of ``subsystem``."""
    return json.dumps({"subsystem": check_subsystem(subsystem)}).encode("utf-8")


def parse_request(frame: bytes) -> str:
    """The subsystem a REQ frame asks for; :class:`WireError` if malformed."""
    data = _load_json_object(frame, "request")
    if "subsystem" not in data:
        raise WireError("request misses the field 'subsystem'")
    return check_subsystem(data["subsystem"])


def rep_message(header: Header | bytes, payload: bytes) -> list[bytes]:
    """Frames of a REP answer: ``[header, payload]``."""
    head = header.encode() if isinstance(header, Header) else header
    return [head, payload]


def pub_message(header: Header, payload: bytes) -> list[bytes]:
    """Frames of a published snapshot: ``[topic, header, payload]``."""
    return [header.subsystem.encode("ascii"), header.encode(), payload]


def split_message(frames: list[bytes], pattern: str) -> tuple[bytes | None, bytes, bytes]:
    """(topic or None, header frame, payload frame) of a received message.

    ``pattern`` is the receiver's side: ``"req"`` expects two frames, ``"sub"`` three.
    """
    expected = {"req": 2, "sub": 3}[pattern]
    if len(frames) != expected:
        layout = "[header, payload]" if pattern == "req" else "[topic, header, payload]"
        raise WireError(f"expected {expected} frames {layout}, got {len(frames)}")
    if pattern == "req":
        return None, frames[0], frames[1]
    return frames[0], frames[1], frames[2]
