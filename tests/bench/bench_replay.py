"""Replay throughput: a run of 500-histogram snapshots replayed at ``--speed max`` into one receiver.

The source is :data:`SNAPSHOTS` distinct cumulative snapshots of 500 histograms
(simulated, written in the receivers' layout); the sender is
:class:`receivers.replay.ReplaySender` (REP) and the receiver a real
:class:`~receivers.zmq_receiver.Receiver` in a thread (fsync on, as deployed),
polling every second: it keeps up only because the replay says ``pending``.

Figures:

* ``replay_snapshots_per_s``: snapshots stored per second, from the replay's
  start to the last one on disk (target >= 100, issue 14);
* ``replay_baseline_snapshots_per_s``: the same receiver taking the same
  files' bytes from a bare REP loop that holds them in memory (no file read, no
  schedule), and ``replay_vs_baseline_ratio`` = replay / baseline (1.0: the
  replay sender costs nothing beyond receiving and storing);
* ``replay_mb_per_s``: the replay's rate in bytes.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import zmq

from overwatch.config import ReceiverSettings
from overwatch.store.archive import read_source
from overwatch.store.layout import atomic_write
from overwatch.timestamps import from_unix, snapshot_relpath
from receivers import wire
from receivers.replay import ReplayPlan, ReplaySender
from receivers.simulator import DetectorSimulator
from receivers.zmq_receiver import Receiver

HISTOGRAMS = 500
SNAPSHOTS = 100
RUN = 7
T0 = 1_700_000_000


def _write_source(folder: Path) -> list[bytes]:
    simulator = DetectorSimulator(["EMC"], seed=3, histograms=HISTOGRAMS, start_time=T0)
    payloads = []
    for i in range(SNAPSHOTS):
        simulator.advance(30)
        payload = simulator.payload()
        path = folder / snapshot_relpath(RUN, "EMC", from_unix(T0 + 30 * (i + 1)))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, payload, fsync=False)
        payloads.append(payload)
    return payloads


def _settings() -> ReceiverSettings:
    return ReceiverSettings(interval=1.0, timeout=10.0, fsync=True, notify_address="")


def _receive(data: Path, endpoint: str, start_sender) -> float:
    """Seconds until the receiver stored every snapshot (the sender started just before)."""
    receiver = Receiver(_settings(), data, "EMC", endpoint, "req")
    stop = threading.Event()
    runner = threading.Thread(target=receiver.run, args=(stop,), daemon=True)
    started = time.perf_counter()
    start_sender()
    runner.start()
    deadline = time.monotonic() + 300
    while receiver.counters["stored"] < SNAPSHOTS and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    stop.set()
    runner.join(30)
    if receiver.counters["stored"] != SNAPSHOTS or receiver.counters["quarantined"]:
        raise RuntimeError(
            f"stored {receiver.counters['stored']} of {SNAPSHOTS}: {receiver.counters}"
        )
    return elapsed


def _replay(source: Path, data: Path) -> float:
    plan = ReplayPlan(read_source(source))
    sender = ReplaySender(plan, "tcp://127.0.0.1:*", speed=None)
    stop = threading.Event()
    thread = threading.Thread(target=sender.serve, args=(stop,), daemon=True)
    try:
        return _receive(data, sender.endpoint, thread.start)
    finally:
        stop.set()
        thread.join(30)


def _baseline(payloads: list[bytes], data: Path) -> float:
    """A bare REP loop answering the payloads in order from memory (what replay adds is
    reading the files and keeping the schedule)."""
    socket = zmq.Context.instance().socket(zmq.REP)
    socket.setsockopt(zmq.LINGER, 0)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        for seq, payload in enumerate(payloads, start=1):
            while not socket.poll(50, zmq.POLLIN):
                if stop.is_set():
                    return
            socket.recv()
            header = wire.Header(RUN, "EMC", seq=seq, timestamp=T0 + 30 * seq,
                                 pending=len(payloads) - seq)  # fmt: skip
            socket.send_multipart(wire.rep_message(header, payload))

    thread = threading.Thread(target=serve, daemon=True)
    try:
        return _receive(data, f"tcp://127.0.0.1:{port}", thread.start)
    finally:
        stop.set()
        thread.join(30)
        socket.close(linger=0)


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="overwatch-bench-replay-") as tmp:
        source = Path(tmp) / "source"
        payloads = _write_source(source)
        baseline = _baseline(payloads, Path(tmp) / "baseline")
        replay = _replay(source, Path(tmp) / "replayed")
    mean_bytes = sum(len(p) for p in payloads) / len(payloads)
    return {
        "replay_snapshots_per_s": SNAPSHOTS / replay,
        "replay_baseline_snapshots_per_s": SNAPSHOTS / baseline,
        "replay_vs_baseline_ratio": baseline / replay,
        "replay_mb_per_s": SNAPSHOTS / replay * mean_bytes / 1e6,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
