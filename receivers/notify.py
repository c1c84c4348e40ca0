"""The sending end of the "new snapshot" notice from receivers to processing.

The notice format and the listening end are defined once, in
:mod:`overwatch.notices` (processing binds its ``NoticeListener``).

Topology: processing *binds* one PULL socket at ``receiver.notify_address``
(default ``tcp://127.0.0.1:8851``); every receiver *connects* a PUSH socket to
it and sends one frame per snapshot stored (after the rename).

Why PUSH/PULL: a PUSH socket connected before processing starts queues up to
``hwm`` notices and delivers them once processing binds, and a connecting
receiver never competes for the port. Sending never blocks: it uses
``NOBLOCK`` and a notice that does not fit the queue is dropped and counted.
"""

from __future__ import annotations

import logging

import zmq

from overwatch.notices import encode_notice

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
        message = encode_notice(run, subsystem, path)
        try:
            self._socket.send(message, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("nobody takes new-snapshot notices at %s: dropping them", self.address)
            return False
        return True

    def close(self, linger: float = 0.0) -> None:
        """Close the socket; ``linger`` seconds let notices just sent still leave (a
        short-lived process such as ``overwatch import`` exits right after), else they go."""
        if self._socket is not None:
            self._socket.close(linger=int(linger * 1000))
            self._socket = None
