"""Live pushes under load: a new snapshot to a watching client, with hundreds of idle streams.

Real processes (ZEO, ``overwatch process``, ``overwatch web`` with its default
workers); snapshots written as a receiver does (``tests.live_support.Feed``).

- ``push_latency_p95_ms``: from a snapshot file appearing on disk to a client
  that watches the event stream (``GET /api/events``) holding that snapshot's
  latest-slice JSON (told by the ``snapshot`` event, then one fetch), p95 over
  20 snapshots while ``sse_clients_held`` other streams stay open and idle.
  Target <= 1500 ms (issue 12).
- ``push_latency_quiet_p95_ms``: the same without the idle streams, measured
  first in the same run; ``push_latency_ratio`` = loaded / quiet.
- ``sse_clients_held``: idle streams opened (``IDLE``) that the server accepted
  and greeted; target >= 200.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from receivers.simulator import DetectorSimulator
from tests.live_support import SUBSYSTEM, Feed, idle_streams
from tests.realtime import percentile
from tests.unit.test_web_support import running_site

IDLE = 400
UPDATES = 20
PATH = "TPC/trackPtEtaPhi_px"


class Watcher:
    """A client on the event stream that fetches the new JSON when told."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        parsed = urlparse(url)
        self.socket = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
        self.socket.sendall(
            f"GET /api/events HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        self.buffer = b""

    def next_snapshot(self, at_least: int) -> None:
        """Wait for the snapshot event of ``at_least`` (or later)."""
        while True:
            while b"\n\n" not in self.buffer:
                self.buffer += self.socket.recv(65536)
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            lines = dict(
                line.split(": ", 1) for line in block.decode().splitlines() if ": " in line
            )
            if lines.get("event") == "snapshot":
                event = json.loads(lines["data"])
                if event["subsystem"] == SUBSYSTEM and event["timestamp"] >= at_least:
                    return

    def fetch(self) -> int:
        request = urllib.request.Request(
            f"{self.url}/api/runs/1/{SUBSYSTEM}/histograms/{PATH}?slice=latest",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.headers["X-Overwatch-Snapshot"])

    def close(self) -> None:
        self.socket.close()


def _latencies(site, feed: Feed) -> list[float]:
    watcher = Watcher(site.url, site.token)
    latencies = []
    try:
        for _ in range(UPDATES):
            stamp, written = feed.write()
            watcher.next_snapshot(stamp)
            while watcher.fetch() < stamp:  # a worker a moment behind: ask again
                time.sleep(0.01)
            latencies.append(time.time() - written)
            feed.pause()
    finally:
        watcher.close()
    return latencies


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-push-") as folder:
        simulator = DetectorSimulator(subsystems=[SUBSYSTEM], start_time=float(int(time.time()) - 4),
                                      seed=3, run=1, event_rate=200)  # fmt: skip
        with running_site(Path(folder), processing=True, snapshots=2, step=2.0,
                          simulator=simulator) as site:  # fmt: skip
            feed = Feed(simulator, site.data_dir, site.notify_address)
            try:
                quiet = _latencies(site, feed)
                with idle_streams(site.url, site.token, IDLE) as held:
                    loaded = _latencies(site, feed)
            finally:
                feed.close()
    quiet_p95, loaded_p95 = percentile(quiet, 0.95), percentile(loaded, 0.95)
    return {
        "push_latency_p95_ms": loaded_p95 * 1000.0,
        "push_latency_quiet_p95_ms": quiet_p95 * 1000.0,
        "push_latency_ratio": loaded_p95 / quiet_p95,
        "sse_clients_held": float(held),
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
