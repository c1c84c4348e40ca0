"""Cache size: the compressed array cache against the snapshot files it was made from.

Figure (``run()``):

- ``cache_to_snapshot_bytes``: bytes of a subsystem's cache directory (every
  cache file, layout and object list, and the trend files kept beside them:
  about 0.08 of the 0.4) after ``overwatch db rebuild`` of 20
  simulated snapshots of 2,400 histograms each (the detector simulator's mix,
  cumulative fills), divided by the bytes of those ROOT files (target <= 1.0);
- ``cache_write_ms_2400`` / ``cache_read_ms_2400``: median time to write one
  cache file of that size and to decode it from disk (no LRU), the price of
  the compression;
- ``npy_to_snapshot_bytes``: the same ratio for the earlier, uncompressed
  format (float64 arrays as they are), for comparison.

``slice_ms_500`` (in bench_processing) says what the format costs a slice.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from overwatch import timestamps
from overwatch.store.db import open_db
from overwatch.store.layout import DataDir, atomic_write
from processing.ingest.cache import ArrayCache, clear_decoded
from processing.rebuild import rebuild
from receivers.simulator import DetectorSimulator

SNAPSHOTS = 20
HISTOGRAMS = 2_400
T0 = 1_767_225_600.0


def _files(data: Path) -> int:
    simulator = DetectorSimulator(["EMC"], seed=5, histograms=HISTOGRAMS, start_time=T0)
    total = 0
    for k in range(SNAPSHOTS):
        simulator.advance(60)
        payload = simulator.payload()
        path = data / timestamps.snapshot_relpath(1, "EMC", timestamps.from_unix(T0 + 60 * k))
        atomic_write(path, payload, fsync=False)
        total += len(payload)
    return total


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _timings(data: Path) -> tuple[float, float, int]:
    cache = ArrayCache(data)
    writes, reads, uncompressed = [], [], 0
    for stem, name in sorted(cache.listing(1, "EMC").items()):
        clear_decoded()
        started = time.perf_counter()
        state = cache.load(1, "EMC", name)
        reads.append(time.perf_counter() - started)
        uncompressed += state.eff.nbytes * (1 if state.off is None else 2)
        started = time.perf_counter()
        cache.write(1, "EMC", stem, state.layout, state.eff, state.off)
        writes.append(time.perf_counter() - started)
    return statistics.median(writes) * 1000, statistics.median(reads) * 1000, uncompressed


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as folder:
        data = Path(folder) / "data"
        snapshot_bytes = _files(data)
        db = open_db(f"file://{Path(folder) / 'cache.fs'}")
        try:
            rebuild(data, db)
        finally:
            db.close()
        cache_bytes = _size(DataDir(data).cache_dir(1, "EMC"))
        write_ms, read_ms, uncompressed = _timings(data)
        assert len(os.listdir(DataDir(data).cache_dir(1, "EMC"))) >= SNAPSHOTS
    return {
        "cache_to_snapshot_bytes": cache_bytes / snapshot_bytes,
        "cache_write_ms_2400": write_ms,
        "cache_read_ms_2400": read_ms,
        "npy_to_snapshot_bytes": uncompressed / snapshot_bytes,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
