"""``overwatch slice``: write one time slice of a run's subsystem as a ROOT file.

Times are minutes relative to the run start, which is the earliest processed
snapshot of the run across all its subsystems (so the same minute means the
same instant for every subsystem of a run). ``end`` may be the word ``end``
(the latest snapshot). The interval snaps to snapshots as ``SliceReader.slice``
does: ``start`` 0 (or anything at or before the subsystem's first snapshot)
means "from the run start", i.e. the slice includes the first snapshot's content.

Every histogram of the slice is written with its Σw², entries and running
sums, at its path (directories created), so ROOT or uproot reads it as any
other file. The file appears atomically.

``options`` (``--option KEY=VALUE``) are the hook for plugin options of a
later version; none are defined yet, so any option is refused by name.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ZODB

from overwatch import rootio
from overwatch.store.db import read
from processing.slices import SliceRangeError, SliceReader, UnknownRun, snap_interval

log = logging.getLogger(__name__)

#: Options a slice understands (name -> help). Plugins will add theirs.
KNOWN_OPTIONS: dict[str, str] = {}


class ExportError(ValueError):
    """A slice request that cannot be served; the message says what to change."""


@dataclass
class ExportResult:
    path: Path
    start: float | None  # base snapshot (None: the run start)
    end: float
    n_histograms: int
    left_out: list[str]


def parse_options(items: list[str] | None) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> dict; a malformed item is an ExportError."""
    options: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExportError(f"option {item!r} is not KEY=VALUE")
        options[key.strip()] = value
    return options


def run_start(db: ZODB.DB, run: int) -> float:
    """Earliest processed snapshot of a run over all its subsystems."""

    def work(ow) -> float:
        run_object = ow.runs.get(run)
        if run_object is None:
            raise UnknownRun(f"run {run} is unknown (not processed yet?)")
        starts = [s.start for s in run_object.subsystems.values() if len(s.snapshots)]
        if not starts:
            raise UnknownRun(f"run {run} has no processed snapshot")
        return min(starts)

    return read(db, work)


def export_slice(
    data_dir: str | Path,
    db: ZODB.DB,
    run: int,
    subsystem: str,
    start: float,
    end: float | str,
    output: str | Path,
    options: dict[str, str] | None = None,
) -> ExportResult:
    """Write the slice [start, end] (run-relative minutes) to ``output`` as a ROOT file."""
    options = options or {}
    unknown = sorted(set(options) - set(KNOWN_OPTIONS))
    if unknown:
        known = ", ".join(sorted(KNOWN_OPTIONS)) or "none are defined yet"
        raise ExportError(f"unknown slice option(s) {', '.join(unknown)} (known: {known})")
    if start < 0:
        raise ExportError(f"--start {start:g}: minutes count from the run start, so use 0 or more")
    if isinstance(end, str) and end != "end":
        raise ExportError(f"--end {end!r}: give minutes or the word 'end'")
    if not isinstance(end, str) and start >= end:
        raise ExportError(f"--start {start:g} must be less than --end {end:g}")
    reader = SliceReader(data_dir, db)
    begin = run_start(db, run)
    times = reader.snapshot_times(run, subsystem)
    start_ts = begin + 60.0 * start
    end_ts = times[-1] if end == "end" else begin + 60.0 * float(end)
    if end == "end" and start_ts > times[-1]:
        raise SliceRangeError(
            f"--start {start:g} is after the last snapshot "
            f"(minute {(times[-1] - begin) / 60.0:.2f}) of run {run} {subsystem}"
        )
    try:
        base, last = snap_interval(times, None if start_ts <= times[0] else start_ts, end_ts)
    except SliceRangeError as error:
        first, final = ((t - begin) / 60.0 for t in (times[0], times[-1]))
        raise SliceRangeError(
            f"{error}; run {run} {subsystem} has snapshots from minute {first:.2f} to {final:.2f}"
        ) from error
    histograms = reader.slice_between(run, subsystem, base, last)
    left_out = [p for p, _ in reader.paths_at(run, subsystem, last) if p not in histograms]
    if left_out:
        log.warning("left out of the slice (binning changed): %s", ", ".join(left_out))
    if not histograms:
        raise ExportError("the slice holds no histogram (every binning changed within it)")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{output.name}.", suffix=".tmp", dir=output.parent
    )
    os.close(handle)
    try:
        rootio.write_file(temporary, histograms.values())
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    log.info("wrote %d histograms of run %d %s to %s", len(histograms), run, subsystem, output)
    return ExportResult(output, base, last, len(histograms), left_out)
