"""A generated archive in the archived Overwatch layout: Zurich local-time names, true mtimes.

``make_archive(root)`` writes 3 runs x 2 subsystems x 10 cumulative snapshots,
``Run<run>/<SYS>/<SYS>hists.<Zurich wall time>.root``, each file's modification
time its true instant (as the receivers that wrote it left it). Run
:data:`AUTUMN_RUN` crosses the autumn change of 2018-10-28: its snapshots 1-5
are in the first pass through 02:00-02:59 (CEST) and 6-10 in the second (CET),
so sorting its names interleaves the passes. Every snapshot adds the same
content, so the k-th cumulative holds ``k`` times it, and ``events`` counts
:data:`EVENTS_PER_SNAPSHOT` entries a snapshot: a wrong order or a false
counter reset changes the whole-run content.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pendulum

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from overwatch.timestamps import ARCHIVE_TIMEZONE, to_unix

SUBSYSTEMS = ("EMC", "TPC")
SNAPSHOTS = 10
EVENTS_PER_SNAPSHOT = 1561
#: run -> UTC instant of its first snapshot.
RUN_STARTS = {
    290001: pendulum.datetime(2018, 7, 14, 10, 0, 0, tz="UTC"),  # summer: CEST, UTC+2
    290002: pendulum.datetime(2018, 10, 28, 0, 50, 7, tz="UTC"),  # 02:50 CEST -> 02:?? CET
    290003: pendulum.datetime(2018, 12, 3, 22, 30, 0, tz="UTC"),  # winter: CET, UTC+1
}
AUTUMN_RUN = 290002
SPACING = {290001: 60.0, 290002: 120.0, 290003: 90.0}  # seconds between snapshots


@dataclass(frozen=True)
class ArchivedSnapshot:
    run: int
    subsystem: str
    instant: float  # the true UTC instant (unix seconds)
    path: Path


def _content(k: int) -> list[Histogram]:
    """The k-th cumulative (k = 1..10): k times one snapshot's worth."""
    events = Histogram.empty("events", [Axis.regular(1, 0, 1)], "TH1D")
    events.fill(np.full(EVENTS_PER_SNAPSHOT * k, 0.5))
    spectrum = Histogram.empty("spectrum", [Axis.regular(20, 0, 20)], "TH1D")
    spectrum.fill(np.tile(np.arange(20) + 0.5, 7 * k))
    return [events, spectrum]


def instants(run: int) -> list[float]:
    start = to_unix(RUN_STARTS[run])
    # Uneven spacing (a real cadence): +-20 % around the run's interval.
    offsets = np.cumsum([0.0] + [SPACING[run] * (0.8 + 0.4 * (i % 3) / 2) for i in range(9)])
    return [float(round(start + offset)) for offset in offsets]


def zurich_name(subsystem: str, instant: float) -> str:
    wall = pendulum.from_timestamp(instant, tz=ARCHIVE_TIMEZONE).format("YYYY_MM_DD_HH_mm_ss")
    return f"{subsystem}hists.{wall}.root"


def make_archive(root: Path) -> list[ArchivedSnapshot]:
    """Write the archive under ``root``; returns every snapshot with its true instant."""
    written = []
    for run in RUN_STARTS:
        for subsystem in SUBSYSTEMS:
            folder = root / f"Run{run}" / subsystem
            folder.mkdir(parents=True, exist_ok=True)
            for k, instant in enumerate(instants(run), start=1):
                path = folder / zurich_name(subsystem, instant)
                assert not path.exists(), f"two snapshots named {path.name}"
                rootio.write_file(path, _content(k))
                os.utime(path, (instant, instant))
                written.append(ArchivedSnapshot(run, subsystem, instant, path))
    return written


def last_content(run: int) -> list[Histogram]:
    """What the whole run must hold: its last snapshot's content."""
    return _content(SNAPSHOTS)
