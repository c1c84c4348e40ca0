"""Processing speed: per-snapshot overhead, notice-to-record latency, cached slice time.

Figures (``run()``):

- ``process_overhead_ratio``: processing one 500-histogram snapshot (scan, read
  by bulk decoding, cache write, ZODB commit, the live analysis) divided by a
  plain uproot read of the same file (open it and read every histogram
  object), both measured here, on the same files (target <= 0.1);
- ``latency_p95_ms``: from a snapshot renamed into the data directory, with a
  notice pushed as a receiver does, to its record committed in ZODB, with the
  scheduler running and a long interval so only the notice can wake it
  (target <= 1000 ms);
- ``slice_ms_500``: median time of ``SliceReader.slice`` over all 500
  histograms between two random cached snapshots (target <= 10 ms), and
  ``slice_ms_500_cold`` the same with both states decompressed from their
  cache files (no decoded state kept in memory).
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot
import zmq

from overwatch import rootio, timestamps
from overwatch.config import ProcessingSettings
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, read
from overwatch.store.layout import atomic_write
from processing.ingest.cache import clear_decoded
from processing.pipeline import Pipeline
from processing.scheduler import ProcessingService
from processing.slices.reader import SliceReader

N_HISTOGRAMS = 500
T0 = 1_767_225_600.0


def _histograms(rng: np.random.Generator) -> list[Histogram]:
    """A detector-like mix: 1D of several types, 2D maps, profiles."""
    made = []
    for i in range(N_HISTOGRAMS):
        kind = i % 5
        directory = f"SM{i // 50:02d}"
        if kind == 0:
            h = Histogram.empty(f"{directory}/amp{i}", [Axis.regular(100, 0, 10)], "TH1F")
        elif kind == 1:
            h = Histogram.empty(
                f"{directory}/time{i}", [Axis.regular(200, 0, 10)], "TH1D", weighted=True
            )
        elif kind == 2:
            axes = [Axis.regular(48, 0, 10), Axis.regular(24, 0, 10)]
            h = Histogram.empty(f"{directory}/cellHits{i}", axes, "TH2F")
        elif kind == 3:
            h = Histogram.empty(f"{directory}/profile{i}", [Axis.regular(50, 0, 10)], "TProfile")
        else:
            h = Histogram.empty(f"{directory}/counts{i}", [Axis.regular(64, 0, 10)], "TH1I")
        made.append(h)
    return made


def _fill(histograms: list[Histogram], rng: np.random.Generator, n: int = 300) -> None:
    for h in histograms:
        x = rng.uniform(0, 10, n)
        if h.ndim == 2:
            h.fill(x, rng.uniform(0, 10, n))
        elif h.is_profile:
            h.fill(x, y=rng.normal(size=n))
        elif h.sumw2 is not None:
            h.fill(x, weights=rng.uniform(0.5, 2, n))
        else:
            h.fill(x)


def _series(count: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    histograms = _histograms(rng)
    payloads = []
    for _ in range(count):
        _fill(histograms, rng)
        payloads.append(rootio.to_bytes(histograms))
    return payloads


def _plain_read(path: Path) -> int:
    """The baseline: open with uproot and read every histogram object."""
    count = 0
    with uproot.open(path) as file:
        for name, class_name in file.classnames().items():
            if class_name.startswith(("TH1", "TH2", "TH3", "TProfile")):
                file[name]
                count += 1
    return count


def _place(data: Path, run: int, ts: float, payload: bytes) -> Path:
    path = data / timestamps.snapshot_relpath(run, "EMC", timestamps.from_unix(ts))
    atomic_write(path, payload, fsync=False)
    return path


def _overhead(payloads: list[bytes], root: Path) -> float:
    data = root / "overhead"
    db = open_db(f"file://{root / 'overhead.fs'}")
    pipeline = Pipeline(data, db, ProcessingSettings())
    plain, processing = [], []
    for k, payload in enumerate(payloads):
        path = _place(data, 1, T0 + 60 * k, payload)
        assert _plain_read(path) == N_HISTOGRAMS  # also warms the page cache for both
        started = time.perf_counter()
        _plain_read(path)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = pipeline.run_pass()
        processing.append(time.perf_counter() - started)
        assert report.processed == 1, report
    db.close()
    # The first snapshot also builds layouts and opens the chain: a one-off, left out.
    return statistics.median(processing[1:]) / statistics.median(plain[1:])


def _latency(payloads: list[bytes], root: Path) -> tuple[float, Path, object]:
    data = root / "latency"
    db = open_db(f"file://{root / 'latency.fs'}")
    pipeline = Pipeline(data, db, ProcessingSettings())
    service = ProcessingService(pipeline, interval=600.0, notify_address="tcp://127.0.0.1:*")
    service.start()
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(service.notify_address)
    latencies = []

    def recorded(ts: float) -> bool:
        def work(ow) -> bool:
            run = ow.runs.get(2)
            return run is not None and ts in run.subsystems["EMC"].snapshots

        return read(db, work)

    try:
        time.sleep(0.5)  # the first pass (empty directory) is done
        for k, payload in enumerate(payloads):
            ts = T0 + 60 * k
            path = _place(data, 2, ts, payload)
            written = time.perf_counter()
            relative = str(path.relative_to(data))
            push.send(json.dumps({"run": 2, "subsystem": "EMC", "path": relative}).encode())
            deadline = written + 30
            while not recorded(ts):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"snapshot {k} not processed within 30 s")
                time.sleep(0.005)
            latencies.append(time.perf_counter() - written)
    finally:
        push.close(linger=0)
        service.stop()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    return p95 * 1000.0, data, db


def _slice_time(data: Path, db, count: int, cold: bool = False) -> float:
    reader = SliceReader(data, db)
    times = reader.snapshot_times(2, "EMC")
    rng = random.Random(3)
    durations = []
    for _ in range(count):
        start, end = sorted(rng.sample(times[1:], 2))
        if cold:
            clear_decoded()  # both states decompressed from their files
        started = time.perf_counter()
        result = reader.slice(2, "EMC", start, end)
        durations.append(time.perf_counter() - started)
        assert len(result) == N_HISTOGRAMS
    return statistics.median(durations) * 1000.0


def run() -> dict[str, float]:
    payloads = _series(16)
    with tempfile.TemporaryDirectory(prefix="bench-processing-") as folder:
        root = Path(folder)
        ratio = _overhead(payloads, root)
        p95, data, db = _latency(payloads, root)
        try:
            slice_ms = _slice_time(data, db, 30)
            cold_ms = _slice_time(data, db, 30, cold=True)
        finally:
            db.close()
    return {
        "process_overhead_ratio": ratio,
        "latency_p95_ms": p95,
        "slice_ms_500": slice_ms,
        "slice_ms_500_cold": cold_ms,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
