"""Ingest throughput: 500-histogram snapshots through one receiver, REQ/REP on loopback, fsync on.

Figures:

* ``ingest_histograms_per_s``: histograms stored per second (target >= 20,000);
* ``ingest_snapshots_per_s`` and ``ingest_mb_per_s``: the same in snapshots and bytes;
* ``raw_write_snapshots_per_s``: the baseline, the same bytes written with the
  same atomic write (temp file, fsync, rename, fsync dir) with no ZMQ and no
  validation, and ``ingest_vs_raw_write_ratio`` = ingest / baseline (1.0 means
  the receiver costs nothing beyond the disk);
* ``validate_ms_per_snapshot``: the ROOT check alone (reads the key list only);
* ``simulator_payload_500_s`` / ``simulator_payload_1000_s``: time to serialise
  one simulated snapshot of that many histograms with uproot (sender side cost,
  why the simulator caches its payload).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import zmq

from overwatch.config import ReceiverSettings
from overwatch.notices import NoticeListener
from overwatch.rootio import validate_root_bytes
from receivers import wire
from receivers.simulator import DetectorSimulator
from receivers.spool import atomic_write
from receivers.zmq_receiver import Receiver

HISTOGRAMS = 500
DISTINCT = 40
MESSAGES = 240
T0 = 1_700_000_000


def _payloads() -> list[bytes]:
    simulator = DetectorSimulator(["EMC"], seed=11, histograms=HISTOGRAMS, start_time=T0)
    payloads = []
    for _ in range(DISTINCT):
        simulator.advance(1)
        payloads.append(simulator.payload())
    return payloads


def _serve(payloads: list[bytes], socket: zmq.Socket, stop: threading.Event) -> None:
    """A REP sender cycling through the payloads with increasing seq and timestamps."""
    seq = 0
    while not stop.is_set():
        if not socket.poll(50, zmq.POLLIN):
            continue
        socket.recv()
        header = wire.Header(run=1, subsystem="EMC", seq=seq + 1, timestamp=T0 + seq)
        socket.send_multipart(wire.rep_message(header, payloads[seq % len(payloads)]))
        seq += 1


def _drain(listener: NoticeListener, stop: threading.Event) -> None:
    while not stop.is_set():
        listener.receive(0.05)


def _ingest(payloads: list[bytes], data_dir: Path) -> tuple[float, int]:
    context = zmq.Context.instance()
    server = context.socket(zmq.REP)
    server.setsockopt(zmq.LINGER, 0)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    listener = NoticeListener("tcp://127.0.0.1:*")
    stop_server = threading.Event()
    threads = [
        threading.Thread(target=_serve, args=(payloads, server, stop_server), daemon=True),
        threading.Thread(target=_drain, args=(listener, stop_server), daemon=True),
    ]
    for thread in threads:
        thread.start()
    settings = ReceiverSettings(
        interval=1e-4, timeout=10.0, fsync=True, notify_address=listener.address
    )
    receiver = Receiver(settings, data_dir, "EMC", f"tcp://127.0.0.1:{port}", "req")
    stop = threading.Event()
    runner = threading.Thread(target=receiver.run, args=(stop,), daemon=True)
    started = time.perf_counter()
    runner.start()
    deadline = time.monotonic() + 300
    while receiver.counters["stored"] < MESSAGES and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    stored = receiver.counters["stored"]
    stop.set()
    runner.join(30)
    stop_server.set()
    for thread in threads:
        thread.join(5)
    server.close(linger=0)
    listener.close()
    if stored < MESSAGES or receiver.counters["quarantined"]:
        raise RuntimeError(f"ingest benchmark stored {stored} of {MESSAGES}: {receiver.counters}")
    return elapsed, stored


def _raw_writes(payloads: list[bytes], directory: Path) -> float:
    started = time.perf_counter()
    for i in range(MESSAGES):
        atomic_write(directory / f"raw{i:05d}.root", payloads[i % len(payloads)], fsync=True)
    return time.perf_counter() - started


def run() -> dict[str, float]:
    started = time.perf_counter()
    payloads = _payloads()
    generate_500 = (time.perf_counter() - started) / DISTINCT
    big = DetectorSimulator(["EMC"], seed=1, histograms=1000, start_time=T0)
    big.advance(1)
    started = time.perf_counter()
    big.payload()
    generate_1000 = time.perf_counter() - started

    started = time.perf_counter()
    for payload in payloads:
        validate_root_bytes(payload)
    validate = (time.perf_counter() - started) / len(payloads)

    with tempfile.TemporaryDirectory(prefix="overwatch-bench-") as tmp:
        elapsed, stored = _ingest(payloads, Path(tmp) / "data")
        raw_dir = Path(tmp) / "raw"
        raw_dir.mkdir()
        raw = _raw_writes(payloads, raw_dir)
    mean_bytes = sum(len(p) for p in payloads) / len(payloads)
    ingest_rate = stored / elapsed
    raw_rate = MESSAGES / raw
    return {
        "ingest_histograms_per_s": ingest_rate * HISTOGRAMS,
        "ingest_snapshots_per_s": ingest_rate,
        "ingest_mb_per_s": ingest_rate * mean_bytes / 1e6,
        "raw_write_snapshots_per_s": raw_rate,
        "ingest_vs_raw_write_ratio": ingest_rate / raw_rate,
        "validate_ms_per_snapshot": validate * 1e3,
        "simulator_payload_500_s": generate_500,
        "simulator_payload_1000_s": generate_1000,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
