"""Where processing's time goes: seconds per stage, summed over the snapshots processed.

The pipeline times each stage of a snapshot (:mod:`processing.pipeline`: read,
counter resets, cache write, analysis, commit) and the rest of its passes
(``other``: scanning, bad files, status records); ``overwatch process`` logs
the averages when it stops, so an operator sizing a machine, or a benchmark,
sees per snapshot what it costs under the real load (two ``perf_counter``
calls per stage: nothing measurable next to the stages themselves).

The first snapshot a process handles is kept apart: it pays for what is done
once (plugins imported, every histogram seen for the first time read with
uproot, :mod:`processing.ingest.read`), which would blur the averages of a
short run and is worth knowing on its own (a restart mid-run pays it again).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Stages in the order a snapshot goes through them (``other``: the rest of the passes).
STAGES = ("read", "resets", "cache", "analysis", "commit", "other")


class StageTimes:
    """Seconds per stage of the snapshots processed, the first one of the process apart."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        #: Snapshots counted in :attr:`seconds` (the first one is not).
        self.snapshots = 0
        #: Seconds per stage of the process's first snapshot (empty until it is done).
        self.first: dict[str, float] = {}
        #: Seconds ever added to the stages of snapshots (a pass's ``other`` is the rest).
        self.staged = 0.0
        self._current: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to ``name`` (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        """Time of the snapshot in hand (``other``: of the pass, counted at once)."""
        if name == "other":
            self.seconds[name] += seconds
            return
        self._current[name] = self._current.get(name, 0.0) + seconds
        self.staged += seconds

    def done(self) -> None:
        """The snapshot in hand was processed: its times count (the first one's apart)."""
        current, self._current = self._current, {}
        if not self.first:
            self.first = {name: current.get(name, 0.0) for name in STAGES if name != "other"}
            return
        for name, seconds in current.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.snapshots += 1

    def dropped(self) -> None:
        """The snapshot in hand was not processed (bad file, failure): its time is the
        pass's ``other`` (no longer :attr:`staged`)."""
        self.staged -= sum(self._current.values())
        self._current = {}

    def per_snapshot_ms(self) -> dict[str, float]:
        """Milliseconds per processed snapshot after the first, by stage (0 before)."""
        count = max(self.snapshots, 1)
        return {name: 1000.0 * total / count for name, total in self.seconds.items()}

    def describe(self) -> str:
        """One log line: ``stage times per snapshot (N after the first): read=110.2ms ...``."""
        per = self.per_snapshot_ms()
        parts = " ".join(f"{name}={ms:.1f}ms" for name, ms in per.items())
        first = " ".join(f"{name}={1000 * s:.1f}ms" for name, s in self.first.items())
        return (
            f"stage times per snapshot ({self.snapshots} after the first): {parts} "
            f"total={sum(per.values()):.1f}ms; the first: {first or 'none'}"
        )
