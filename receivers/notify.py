"""The "new snapshot" notice from receivers to processing.

Topology: processing *binds* one PULL socket at ``receiver.notify_address``
(default ``tcp://127.0.0.1:8851``); every receiver *connects* a PUSH socket to
it. Each notice is one frame, UTF-8 JSON::

    {"run": 123, "subsystem": "EMC", "path": "Run123/EMC/EMChists.2026_01_01_00_00_00.root"}

``path`` is relative to the data directory and points to a complete file (the
notice is sent after the rename). A notice is only a wake-up call: processing
still scans the data directory, so a lost notice delays work by at most one
processing interval, and nothing depends on its delivery.

Why PUSH/PULL: a PUSH socket connected before processing starts queues up to
``hwm`` notices and delivers them once processing binds, and a connecting
receiver never competes for the port. Sending never blocks: it uses
``NOBLOCK`` and a notice that does not fit the queue is dropped and counted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import zmq

log = logging.getLogger(__name__)


class Notifier:
    """Receiver side: send notices without ever blocking. An empty address disables it."""

    def __init__(self, address: str, *, context: zmq.Context | None = None, hwm: int = 100) -> None:
        self.address = address
        self.dropped = 0
        self._socket = None
        if not address:
            return
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(address)

    def notify(self, run: int, subsystem: str, path: str) -> bool:
        """Send one notice; False if it was dropped (nobody listening and the queue full)."""
        if self._socket is None:
            return False
        message = json.dumps({"run": run, "subsystem": subsystem, "path": path}).encode("utf-8")
        try:
            self._socket.send(message, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("nobody takes new-snapshot notices at %s: dropping them", self.address)
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None


class NoticeListener:
    """Processing side (also used by tests): bind PULL and receive notices."""

    def __init__(self, address: str, *, context: zmq.Context | None = None) -> None:
        self._socket = (context or zmq.Context.instance()).socket(zmq.PULL)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(address)
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next notice, or None after ``timeout`` seconds; malformed notices are skipped."""
        if not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        frame = self._socket.recv()
        try:
            notice = json.loads(frame)
        except ValueError:
            log.warning("ignoring a malformed notice: %r", frame[:200])
            return None
        return notice if isinstance(notice, dict) else None

    def close(self) -> None:
        self._socket.close(linger=0)
