"""Benchmark of ``overwatch compare``: histogram pairs compared per second.

Two files of 1,000 histograms each (half TH1D with 100 bins, half TH2D 20x20,
in nested directories, filled from the same distributions with different
seeds) are written with overwatch.rootio, then compared by the real command
line entry point with ``--jobs 2``, file reading included. The baseline is the
time uproot alone takes to read every object of both files, one after the
other; ``compare_vs_read`` > 1 means the whole comparison takes less time than
that plain read.

Target: compare_per_s >= 1,000.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot

from overwatch import rootio
from overwatch.cli import main
from overwatch.histogram import Axis, Histogram

N_HISTOGRAMS = 1000
REPEATS = 3


def make_file(path: Path, seed: int, n: int = N_HISTOGRAMS) -> None:
    rng = np.random.default_rng(seed)
    histograms = []
    for i in range(n):
        directory = f"SYS{i % 5}/module{i % 17:02d}"
        if i % 2 == 0:
            h = Histogram.empty(f"{directory}/energy_{i}", [Axis.regular(100, 0.0, 10.0)], "TH1D")
            h.fill(rng.normal(5.0, 1.5, 3000))
        else:
            axes = [Axis.regular(20, -3.0, 3.0), Axis.regular(20, -3.0, 3.0)]
            h = Histogram.empty(f"{directory}/hitmap_{i}", axes, "TH2D")
            h.fill(rng.normal(size=3000), rng.normal(size=3000))
        histograms.append(h)
    rootio.write_file(path, histograms)


def read_with_uproot(*paths: Path) -> float:
    started = time.perf_counter()
    for path in paths:
        with uproot.open(path) as file:
            for _, key in rootio.list_keys(file):
                key.get()
    return time.perf_counter() - started


def run_cli(argv: list[str]) -> tuple[int, float]:
    sink = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = main(argv)
    return code, time.perf_counter() - started


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        test, reference = Path(tmp) / "test.root", Path(tmp) / "reference.root"
        make_file(test, seed=1)
        make_file(reference, seed=2)
        small = Path(tmp) / "small.root"
        make_file(small, seed=3, n=4)
        run_cli(["compare", str(small), str(small), "--jobs", "2"])  # imports, entry points
        read_times, compare_times = [], []
        for _ in range(REPEATS):
            read_times.append(read_with_uproot(test, reference))
            code, seconds = run_cli(["compare", str(test), str(reference), "--jobs", "2"])
            if code not in (0, 1):
                raise RuntimeError(f"overwatch compare exited with {code}")
            compare_times.append(seconds)
    compare_seconds = statistics.median(compare_times)
    read_seconds = statistics.median(read_times)
    return {
        "compare_per_s": N_HISTOGRAMS / compare_seconds,
        "compare_uproot_read_both_s": read_seconds,
        "compare_vs_read": read_seconds / compare_seconds,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")
