"""Shared pieces of the processing tests: snapshot files on disk and an independent slice.

The independent computation reads snapshots with plain uproot and subtracts
with numpy; it shares no code with ``processing`` (nor with ``overwatch.rootio``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import uproot

from overwatch import rootio, timestamps
from overwatch.histogram import Histogram

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / ".." / "shared" / "data" / "root-samples"
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def snapshot_path(data_dir: Path, run: int, subsystem: str, ts: float) -> Path:
    return Path(data_dir) / timestamps.snapshot_relpath(run, subsystem, timestamps.from_unix(ts))


def write_snapshot(data_dir: Path, run: int, subsystem: str, ts: float, histograms) -> Path:
    """Write a snapshot the way a receiver does: temporary name, then rename."""
    path = snapshot_path(data_dir, run, subsystem, ts)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.tmp"
    rootio.write_file(temporary, list(histograms))
    os.replace(temporary, path)
    return path


def merged(h: Histogram, k: float) -> Histogram:
    """``k`` identical copies merged: every sum (and the entries) times ``k``."""
    out = h.copy()
    out.values = np.asfortranarray(h.values * k)
    if h.sumw2 is not None:
        out.sumw2 = np.asfortranarray(h.sumw2 * k)
    if h.bin_entries is not None:
        out.bin_entries = np.asfortranarray(h.bin_entries * k)
    if h.bin_sumw2 is not None:
        out.bin_sumw2 = np.asfortranarray(h.bin_sumw2 * k)
    out.entries = h.entries * k
    out.stats = {name: value * k for name, value in h.stats.items()}
    return out


def _tarray(model) -> np.ndarray:
    pending = [model]
    while pending:
        current = pending.pop(0)
        if type(current).__name__.startswith("Model_TArray"):
            return np.asarray(current, dtype=np.float64)
        pending.extend(getattr(current, "bases", []))
    raise AssertionError(f"{type(model).__name__} has no TArray")


def uproot_sums(source, path: str) -> dict[str, np.ndarray | float]:
    """Raw sums of one histogram read with plain uproot, arrays shaped [ix, iy, iz] with flow.

    ``source`` is a file path or an already open uproot file.
    """
    if isinstance(source, str | Path):
        with uproot.open(source) as f:
            return uproot_sums(f, path)
    obj = source[path]
    axes = [obj.member(f"f{a}axis") for a in "XYZ"[: len(obj.axes)]]
    shape = tuple(int(a.member("fNbins")) + 2 for a in axes)

    def shaped(flat) -> np.ndarray:
        return np.asarray(flat, dtype=np.float64).reshape(shape, order="F")

    sums: dict[str, np.ndarray | float] = {"values": shaped(_tarray(obj))}
    sumw2 = obj.member("fSumw2")
    if len(sumw2):
        sums["sumw2"] = shaped(sumw2)
    if "fBinEntries" in obj.all_members:
        sums["bin_entries"] = shaped(obj.member("fBinEntries"))
    sums["entries"] = float(obj.member("fEntries"))
    return sums


def independent_slice(first, last, path: str) -> dict:
    """``last - first`` of one histogram by plain uproot + numpy (``first`` None: ``last``).

    ``first`` and ``last`` are file paths or open uproot files.
    """
    end = uproot_sums(last, path)
    if first is None:
        return end
    start = uproot_sums(first, path)
    return {key: end[key] - start[key] for key in end}


def assert_matches(histogram: Histogram, expected: dict, rtol: float = 0.0) -> None:
    """Bin by bin, flow included: contents, Σw², Σw (profiles), entries."""
    np.testing.assert_allclose(histogram.values, expected["values"], rtol=rtol, atol=0)
    if "sumw2" in expected:
        np.testing.assert_allclose(histogram.sumw2, expected["sumw2"], rtol=rtol, atol=0)
    if "bin_entries" in expected:
        np.testing.assert_allclose(histogram.bin_entries, expected["bin_entries"], rtol=rtol)
    assert histogram.entries == expected["entries"]
