"""On-demand slices: server time of a new slice, against what ALICE Overwatch did per request.

Figures (``run()``):

- ``slice_server_ms_500``: median time of ``SliceService.get`` for a NEW slice
  (an interval and options never asked before, so nothing is cached) of the
  EMC simulator with 500 histograms: its description written to ZODB, the
  subtraction from the array cache, the EMC plugin (derived histograms, hot
  and dead cells of the 20 cell maps), trend values and the checks of
  ``config/checks.yaml``; measured in-process around the service call
  (target <= 100 ms);
- ``slice_speedup_vs_naive``: the naive way measured here on the same files,
  i.e. read both snapshot files with uproot, subtract, write the slice as a
  ROOT file with uproot, divided by ``slice_server_ms_500`` (target >= 20).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from overwatch import rootio
from overwatch.store.db import open_db
from processing.analysis.live import load_engine
from processing.pipeline import Pipeline
from processing.slices.service import SliceService
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0, snapshot_path, write_snapshot

RUN = 9
HISTOGRAMS = 500
SNAPSHOTS = 6
REPEATS = 15


def _data(directory: Path) -> list[float]:
    simulator = DetectorSimulator(["EMC"], run=RUN, seed=11, start_time=T0, histograms=HISTOGRAMS)
    times = []
    for _ in range(SNAPSHOTS):
        simulator.advance(60.0)
        write_snapshot(directory, RUN, "EMC", simulator.now, simulator.snapshot("EMC").values())
        times.append(simulator.now)
    return times


def _naive(directory: Path, first: float, last: float) -> float:
    """Seconds to read both files with uproot, subtract every histogram, write the slice."""
    started = time.perf_counter()
    base = rootio.read_histograms(snapshot_path(directory, RUN, "EMC", first)).histograms
    end = rootio.read_histograms(snapshot_path(directory, RUN, "EMC", last)).histograms
    piece = [end[path] - base[path] for path in end if path in base]
    rootio.write_file(directory / "naive-slice.root", piece)
    return time.perf_counter() - started


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        times = _data(directory)
        db = open_db(f"file://{directory / 'bench.fs'}")
        try:
            report = Pipeline(directory, db, checks=load_engine()).run_until_idle()
            assert not report.failed and report.processed == SNAPSHOTS, report
            service = SliceService(directory, db, max_entries=4)
            assert len(service.reader.histogram_paths(RUN, "EMC")) == HISTOGRAMS
            service.get(service.validate(RUN, "EMC", start=0, end=1))  # warm: imports, layouts
            seconds = []
            for k in range(REPEATS):
                spec = service.validate(
                    RUN, "EMC", start=k % 3, end=3 + k % 3,
                    options={"hot_channel_threshold": 5.0 + k, "scale_by_events": k % 2 == 0},
                )  # fmt: skip
                started = time.perf_counter()
                result = service.get(spec)
                seconds.append(time.perf_counter() - started)
                assert len(result.histograms) > HISTOGRAMS and result.analysis.check_results()
            server = statistics.median(seconds)
            naive = statistics.median(_naive(directory, times[0], times[3]) for _ in range(3))
        finally:
            db.close()
    return {
        "slice_server_ms_500": server * 1e3,
        "slice_speedup_vs_naive": naive / server,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
