"""Live events for the pages of one web process: processing's events, buffered and waited on.

One :class:`EventHub` per process (made on the first ``GET /api/events``,
so after gunicorn's fork) runs one thread that

- subscribes to processing's events (``processing.events_address``, see
  :mod:`overwatch.events`) and keeps the last :data:`BUFFERED` of them;
- reads the receivers' heartbeat files every second and adds a ``receiver``
  event when a receiver's state changes;
- adds a ``health`` event every :data:`HEALTH_SECONDS` (database reachable or
  not), which also tells pages the stream is alive.

Every stream (one per open page) waits on the hub's condition; nothing here
reads the database per client. ``events_after(last_id)`` is what a reconnecting
page gets (``Last-Event-ID``): every buffered event after it, or ``None`` when
the id is older than the buffer (the page then reloads what it shows).

Worker model: gunicorn's ``gthread`` workers. A stream is a long response that
holds one thread while it waits on the condition (no CPU, a small stack), so
the server gives each worker ``web.max_streams`` threads on top of those that
answer ordinary requests (:func:`webapp.server.gunicorn_options`), and a page
beyond the limit gets 503 and polls instead. This keeps one process model for
everything (ZODB connections, the slice cache) instead of an event loop beside it.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import current_app

from overwatch.events import EventClock, decode_event, encode_event_notice, make_event
from overwatch.notices import FormatError, decode_heartbeat
from overwatch.store.layout import DataDir
from webapp.context import resources

log = logging.getLogger(__name__)

BUFFERED = 2000  # events kept for pages that reconnect
HEALTH_SECONDS = 10.0
HEARTBEAT_SECONDS = 1.0  # how often the receivers' heartbeat files are read


class EventHub:
    """Buffered events of this process and the condition streams wait on."""

    def __init__(
        self,
        address: str,
        data_dir: str,
        *,
        database_ok: Callable[[], bool] | None = None,
        max_streams: int = 256,
        forward_address: str = "",
        on_snapshot: Callable[[int, str, float], None] | None = None,
    ) -> None:
        self.on_snapshot = on_snapshot  # told first, so pages that fetch at once see it
        self.address = address
        self.forward_address = forward_address
        self._forward: Any = None
        self._forward_lock = threading.Lock()
        self.data = DataDir(data_dir)
        self.database_ok = database_ok or (lambda: True)
        self.max_streams = max_streams
        self.clock = EventClock()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=BUFFERED)
        self._condition = threading.Condition()
        self._streams = 0
        self._receivers: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
        self._thread.start()

    # -- streams ------------------------------------------------------------------
    def open_stream(self) -> bool:
        """Count a new stream in; False when this process holds ``max_streams`` already."""
        with self._condition:
            if self._streams >= self.max_streams:
                return False
            self._streams += 1
            return True

    def close_stream(self) -> None:
        with self._condition:
            self._streams -= 1

    @property
    def streams(self) -> int:
        return self._streams

    def last_id(self) -> int:
        with self._condition:
            return self._events[-1]["id"] if self._events else 0

    def events_after(self, last_id: int) -> list[dict[str, Any]] | None:
        """Buffered events after ``last_id``; None if events after it were dropped already."""
        with self._condition:
            if self._events and last_id and last_id < self._events[0]["id"] - 1:
                return None
            return [e for e in self._events if e["id"] > last_id]

    def wait(self, last_id: int, timeout: float) -> list[dict[str, Any]]:
        """Events after ``last_id``, waiting up to ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                if self._events and self._events[-1]["id"] > last_id:
                    return [e for e in self._events if e["id"] > last_id]
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return []
                self._condition.wait(left)

    def receivers(self) -> dict[str, str]:
        """The last known state of every receiver (subsystem -> state)."""
        with self._condition:
            return dict(self._receivers)

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        """An event made in this process (receiver state, health, an acknowledgement)."""
        event = make_event(kind, fields, self.clock.next())
        self._append(event)
        return event

    def _append(self, event: dict[str, Any]) -> None:
        with self._condition:
            if self._events and event["id"] <= self._events[-1]["id"]:
                # Another publisher's clock is behind ours: keep the buffer ordered.
                event = {**event, "id": self._events[-1]["id"] + 1}
            self._events.append(event)
            self._condition.notify_all()

    def forward(self, kind: str, fields: dict[str, Any]) -> bool:
        """Hand an event to processing (an event notice), which publishes it to every worker.

        Never blocks: without processing listening, the event stays with this process.
        """
        if not self.forward_address:
            return False
        import zmq

        with self._forward_lock:
            if self._forward is None:
                self._forward = zmq.Context.instance().socket(zmq.PUSH)
                self._forward.setsockopt(zmq.LINGER, 0)
                self._forward.setsockopt(zmq.SNDHWM, 100)
                self._forward.connect(self.forward_address)
            try:
                self._forward.send(encode_event_notice(kind, fields), zmq.NOBLOCK)
                return True
            except zmq.Again:
                log.info("processing is not listening: the %s event stays in this process", kind)
                return False

    def stop(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)

    # -- the hub's thread -----------------------------------------------------------
    def _run(self) -> None:
        socket = self._subscribe()
        next_heartbeats = next_health = 0.0
        try:
            while not self._stop.is_set():
                if socket is not None and socket.poll(200):
                    self._receive(socket)
                    continue
                if socket is None:
                    self._stop.wait(0.2)
                now = time.monotonic()
                if now >= next_heartbeats:
                    next_heartbeats = now + HEARTBEAT_SECONDS
                    self._read_heartbeats()
                if now >= next_health:
                    next_health = now + HEALTH_SECONDS
                    self.add("health", database=self._database_ok())
        except Exception:
            log.exception("the live-event hub stopped")
        finally:
            if socket is not None:
                socket.close(linger=0)

    def _subscribe(self) -> Any:
        if not self.address:
            log.info("no processing.events_address: pages update by polling")
            return None
        import zmq  # only processes that serve streams load it

        socket = zmq.Context.instance().socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(self.address)  # connects lazily: processing may start later
        log.info("live events from %s", self.address)
        return socket

    def _receive(self, socket: Any) -> None:
        frame = socket.recv()
        try:
            event = decode_event(frame)
        except FormatError as error:
            log.warning("ignoring a malformed live event (%s)", error)
            return
        self.clock.next()  # keep this process's own ids after processing's
        if event["type"] == "snapshot" and self.on_snapshot is not None:
            try:
                self.on_snapshot(
                    int(event["run"]), str(event["subsystem"]), float(event["timestamp"])
                )
            except Exception:  # a malformed event or a cache in trouble: pages still hear it
                log.exception("could not note the new snapshot of %s", event)
        self._append(event)

    def _database_ok(self) -> bool:
        try:
            return bool(self.database_ok())
        except Exception:
            return False

    def _read_heartbeats(self) -> None:
        for subsystem, path in self.data.heartbeat_files().items():
            try:
                state = str(decode_heartbeat(path.read_bytes()).get("state", ""))
            except (OSError, FormatError):
                continue
            if self._receivers.get(subsystem) != state:
                with self._condition:
                    self._receivers[subsystem] = state
                self.add("receiver", subsystem=subsystem, state=state)


# --------------------------------------------------------------------------- per process

_HUBS = "overwatch.push"
_LOCK = threading.Lock()


def hub() -> EventHub:
    """This process's hub, started on first use (after gunicorn's fork, never before)."""
    holder = current_app.extensions.setdefault(_HUBS, {})
    found = holder.get(os.getpid())
    if found is None:
        with _LOCK:
            found = holder.get(os.getpid())
            if found is None:
                res = resources()
                found = holder[os.getpid()] = EventHub(
                    res.settings.processing.events_address,
                    str(res.data_dir),
                    database_ok=res.database_reachable,
                    max_streams=res.settings.web.max_streams,
                    forward_address=res.settings.receiver.notify_address,
                    # Late-bound: the views (and the database) are not needed to subscribe.
                    on_snapshot=lambda *snapshot: res.views.expect_snapshot(*snapshot),
                )
    return found


def announce(kind: str, **fields: Any) -> None:
    """An event made by a request (an acknowledgement): to this process's pages at once,
    and through processing to every other web worker's."""
    events = hub()
    events.add(kind, **fields)
    events.forward(kind, fields)


def init_app(app) -> None:
    """Every web process subscribes on its first request, whatever it is: a process
    answering a page's JSON must hear of new snapshots even if no stream is its own."""
    if app.config.get("TESTING"):
        return  # test clients: a hub only where a test opens /api/events itself
    app.before_request(lambda: (hub(), None)[1])
