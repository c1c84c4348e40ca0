"""Live snapshots for the push tests and benchmark: a continuing simulator, idle streams.

:class:`Feed` writes the next snapshot of simulated detectors into a data
directory the way a receiver does (atomic rename, then a notice to
processing), at most one per second so every snapshot has its own name.
:func:`idle_streams` opens event streams (``GET /api/events``) that only wait,
as wall screens and forgotten tabs do, and checks each was accepted.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import zmq

from overwatch import notices
from overwatch.store.layout import atomic_write
from overwatch.timestamps import from_unix, snapshot_relpath
from receivers.simulator import DetectorSimulator

SUBSYSTEM = "TPC"


class Feed:
    """Writes the next snapshot of the simulated detectors as a receiver does."""

    def __init__(self, simulator: DetectorSimulator, data_dir: Path, notify: str) -> None:
        self.simulator = simulator
        self.data_dir = data_dir
        self.push = zmq.Context.instance().socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(notify)
        self.rng = random.Random(7)
        self.last = int(simulator.now)

    def write(self, subsystem: str = SUBSYSTEM, payload: bytes | None = None) -> tuple[int, float]:
        """(snapshot name time, wall time it appeared on disk)."""
        time.sleep(max(0.0, self.last + 1.1 - time.time()))  # one name per second at most
        self.simulator.advance(max(time.time() - self.simulator.now, 0.001))
        stamp = int(self.simulator.now)
        relpath = snapshot_relpath(1, subsystem, from_unix(stamp))
        atomic_write(self.data_dir / relpath, payload or self.simulator.payload(subsystem))
        written = time.time()
        self.push.send(notices.encode_notice(1, subsystem, relpath))
        self.last = stamp
        return stamp, written

    def pause(self) -> None:
        time.sleep(self.rng.uniform(0.0, 0.9))  # uneven spacing: 1.1 to 2 s

    def close(self) -> None:
        self.push.close(linger=0)


@contextlib.contextmanager
def idle_streams(url: str, token: str, count: int, timeout: float = 60.0) -> Iterator[int]:
    """``count`` open event streams; yields how many the server accepted (got ``hello``)."""
    parsed = urlparse(url)
    request = (
        f"GET /api/events HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            client = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
            client.sendall(request)
            sockets.append(client)
        held = 0
        deadline = time.monotonic() + timeout
        for client in sockets:
            received = b""
            client.settimeout(max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(OSError):
                while b"event: hello" not in received and len(received) < 65536:
                    chunk = client.recv(4096)
                    if not chunk:
                        break
                    received += chunk
            held += received.startswith(b"HTTP/1.1 200") and b"event: hello" in received
        yield held
    finally:
        for client in sockets:
            client.close()
