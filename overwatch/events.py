"""Live events (processing -> web app): what changed, pushed to every open page.

Processing publishes one event per change it commits, on a ZMQ PUB socket
bound at ``processing.events_address``; every web worker subscribes and
forwards the events to its browsers over server-sent events
(``GET /api/events``, :mod:`webapp.push`). Nothing polls the database per
client: a page learns of a new snapshot, a quality change or an alarm the
moment processing has committed it.

**Frame**: one ZMQ frame of UTF-8 JSON, ``{"id": N, "type": T, "time": unix, ...}``.
``id`` is an integer that grows with every event of a publisher (microseconds
of the wall clock, bumped past the previous id), so ids of one publisher are
ordered and ids of different publishers interleave by time: a browser that
reconnects with ``Last-Event-ID`` gets every buffered event after it. Types:

- ``snapshot``: ``run``, ``subsystem``, ``timestamp`` (the snapshot, unix s),
  ``quality`` (of its slice) and ``group_qualities``;
- ``alarm``: ``action`` (``opened``, ``escalated``, ``closed``,
  ``acknowledged``) and ``alarm``, its fields (``processing.analysis.alarms.alarm_to_dict``);
- ``receiver`` (made by the web app from the heartbeat files): ``subsystem``, ``state``;
- ``health`` (made by the web app): ``database`` (reachable or not).

Web workers do not publish to each other: an acknowledgement made in one
worker is handed to processing as an *event notice* on the notice address
(``{"event": {...}}``, see :func:`encode_event_notice`), which processing
republishes to all (a worker shows its own at once).

ZMQ is imported lazily, as in :mod:`overwatch.notices`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from overwatch.notices import MAX_NOTICE_BYTES, FormatError

log = logging.getLogger(__name__)

TYPES = ("snapshot", "alarm", "receiver", "health")
ALARM_ACTIONS = ("opened", "escalated", "closed", "acknowledged")
#: Largest event accepted (an alarm with a long message is a few kB).
MAX_EVENT_BYTES = MAX_NOTICE_BYTES


class EventClock:
    """Event ids: microseconds of the wall clock, always above the previous id."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last


def make_event(kind: str, fields: Mapping[str, Any], event_id: int) -> dict[str, Any]:
    """The event document; raises ValueError for an unknown type."""
    if kind not in TYPES:
        raise ValueError(f"unknown event type {kind!r}; expected one of {', '.join(TYPES)}")
    return {**fields, "id": int(event_id), "type": kind, "time": fields.get("time", time.time())}


def encode_event(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), default=str).encode("utf-8")


def decode_event(frame: bytes) -> dict[str, Any]:
    """The event in ``frame``; raises :class:`FormatError` naming the problem."""
    if len(frame) > MAX_EVENT_BYTES:
        raise FormatError(f"event is {len(frame)} bytes, more than {MAX_EVENT_BYTES}")
    try:
        event = json.loads(bytes(frame).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(f"event is not JSON text: {error}") from None
    if not isinstance(event, dict):
        raise FormatError("event must be a JSON object")
    if event.get("type") not in TYPES:
        raise FormatError(f"event type {event.get('type')!r} is not one of {', '.join(TYPES)}")
    if not isinstance(event.get("id"), int) or isinstance(event.get("id"), bool):
        raise FormatError(f"event id must be an integer, got {event.get('id')!r}")
    return event


def encode_event_notice(kind: str, fields: Mapping[str, Any]) -> bytes:
    """A notice asking processing to publish an event to every web worker (e.g. an ack)."""
    if kind not in TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    return json.dumps({"event": {**fields, "type": kind}}, default=str).encode("utf-8")


class EventPublisher:
    """Binds the PUB socket processing publishes events on; thread-safe ``publish``.

    A bind failure (the address is taken, e.g. by a second processing service)
    is logged as an error and leaves the publisher silent: processing goes on,
    pages then update only by polling.
    """

    def __init__(self, address: str, *, context: Any = None) -> None:
        import zmq  # lazily, see the module docs

        self.clock = EventClock()
        self._lock = threading.Lock()
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 10_000)
        self.address: str | None
        try:
            self._socket.bind(address)
            self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as error:
            log.error(
                "cannot publish live events on %s (%s): pages will update by polling only; "
                "set processing.events_address to a free address",
                address,
                error,
            )
            self._socket.close(linger=0)
            self._socket = None
            self.address = None
        self.published = 0

    def publish(self, kind: str, **fields: Any) -> dict[str, Any] | None:
        """Publish one event now; returns it (None when the publisher is silent)."""
        if self._socket is None:
            return None
        event = make_event(kind, fields, self.clock.next())
        frame = encode_event(event)
        with self._lock:
            try:
                self._socket.send(frame, copy=False)
            except Exception:  # a full queue or a closed socket must never stop processing
                log.exception("could not publish a %s event", kind)
                return None
            self.published += 1
        return event

    def republish(self, document: Mapping[str, Any]) -> None:
        """Publish an event another process handed in (an event notice); bad ones are logged."""
        kind = document.get("type")
        if kind not in TYPES:
            log.warning("ignoring an event notice of unknown type %r", kind)
            return
        self.publish(str(kind), **{k: v for k, v in document.items() if k not in ("id", "type")})

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close(linger=0)
                self._socket = None
