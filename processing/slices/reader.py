"""Time slices from the array cache: the API the web app and exports read through.

A time slice is the content that arrived between two snapshots,
``eff(t1) - eff(t0)``, where ``eff`` is the effective cumulative kept in the
array cache (``processing.ingest.cache``; it stays valid across counter resets).
A slice from the run start is the snapshot itself.

Usage (one reader per process; it keeps parsed layouts, so a request costs
one ZODB look-up, two cache states (decoded once and kept, see
``processing.ingest.cache``) and a few numpy operations)::

    reader = SliceReader(data_dir, db)
    reader.snapshot_times(run, subsystem)            # [unix seconds], ascending
    reader.histogram_paths(run, subsystem)           # [(path, class_name)] of the latest snapshot
    reader.cumulative(run, subsystem, path)          # Histogram, latest effective cumulative
    reader.latest_slice(run, subsystem, path)        # latest minus the previous snapshot
    reader.slice(run, subsystem, start, end, paths)  # {path: Histogram}
    reader.version(run, subsystem)                   # str; changes with every new snapshot
    reader.slice_between(run, subsystem, base, end)  # exact snapshot times, no snapping
    reader.paths_at(run, subsystem, ts)              # (path, class) of any processed snapshot

Interval rules (``slice`` and ``overwatch slice``): times are snapped to
processed snapshots. ``end`` becomes the latest snapshot at or before it;
``start`` the latest snapshot at or before it, or the run start (no
subtraction) when ``start`` is None or at or before the subsystem's first
snapshot. An empty or inverted interval, or one outside the run, raises
:class:`SliceRangeError`.

What a slice holds: bin contents, Σw² (and for profiles Σw, Σw²) subtracted;
entries and ROOT's running sums (``fTsumw``, ``fTsumwx``, ...) subtracted too.
The running sums are additive, so the slice's mean and RMS are exactly those
of the entries filled in the interval, not a bin-centre approximation.

Histograms that appear within the interval contribute their whole content
(they did not exist at its start); one missing at the start is taken from the
latest earlier snapshot that has it. A histogram whose binning changed within
the interval cannot be subtracted and is left out of ``slice`` (logged;
``latest_slice`` raises :class:`UnknownHistogram` saying so).

Errors: :class:`UnknownRun`, :class:`UnknownSubsystem` and :class:`UnknownHistogram`
(all ``LookupError``) name what was not found; :class:`SliceRangeError`
(``ValueError``) says why an interval is refused; a cache file that was deleted
raises ``processing.ingest.cache.CacheError`` asking for ``overwatch db rebuild``.
A reader is safe to share between threads (each call opens its own ZODB
connection from the pool).

Histograms returned by ``cumulative``, ``latest_slice`` and ``slice`` own
their arrays; their ``Axis`` objects are shared with the layout: treat axes as
read-only (``Histogram.copy()`` gives independent ones).
"""

from __future__ import annotations

import bisect
import logging
from pathlib import Path

import numpy as np
import ZODB

from overwatch import timestamps
from overwatch.histogram import Histogram
from overwatch.store.db import read
from processing.ingest.cache import ArrayCache, CachedSnapshot, CacheError
from processing.ingest.chain import ChainStore
from processing.ingest.objects import ObjectRecord, is_part
from processing.ingest.resets import align, reset_paths

log = logging.getLogger(__name__)


class UnknownRun(LookupError):
    """No run with that number has been processed."""


class UnknownSubsystem(LookupError):
    """The run has no processed snapshot of that subsystem."""


class UnknownHistogram(LookupError):
    """The snapshot holds no histogram at that path (or it cannot be sliced)."""


class SliceRangeError(ValueError):
    """The requested interval is empty, inverted or outside the run."""


def _when(ts: float) -> str:
    return timestamps.from_unix(ts).format("YYYY-MM-DD HH:mm:ss [UTC]")


def snap_interval(
    times: list[float], start: float | None, end: float
) -> tuple[float | None, float]:
    """(base snapshot or None for the run start, end snapshot) for a requested interval."""
    if not times:
        raise SliceRangeError("no processed snapshot")
    if start is not None and start >= end:
        raise SliceRangeError(f"start ({_when(start)}) must be before end ({_when(end)})")
    position = bisect.bisect_right(times, end) - 1
    if position < 0:
        raise SliceRangeError(
            f"end ({_when(end)}) is before the first snapshot ({_when(times[0])})"
        )
    end_ts = times[position]
    if start is None or start <= times[0]:
        return None, end_ts
    base = times[bisect.bisect_right(times, start) - 1]
    if base >= end_ts:
        raise SliceRangeError(
            f"no snapshot between {_when(start)} and {_when(end)} "
            f"(snapshots from {_when(times[0])} to {_when(times[-1])})"
        )
    return base, end_ts


class SliceReader:
    """Reads cumulative histograms and time slices of processed snapshots."""

    def __init__(self, data_dir: str | Path, db: ZODB.DB) -> None:
        self.cache = ArrayCache(data_dir)
        self.db = db

    # -- look-ups --------------------------------------------------------------
    def _records(self, run: int, subsystem: str, pick=None):
        """(times, {timestamp: cache file} for the times ``pick(times)`` chooses, version)."""

        def work(ow):
            run_object = ow.runs.get(run)
            if run_object is None:
                raise UnknownRun(f"run {run} is unknown (not processed yet?)")
            sub = run_object.subsystems.get(subsystem)
            if sub is None or not len(sub.snapshots):
                known = ", ".join(run_object.subsystems.keys()) or "none"
                raise UnknownSubsystem(
                    f"run {run} has no processed snapshot of subsystem {subsystem!r} "
                    f"(subsystems: {known})"
                )
            times = list(sub.snapshots.keys())
            chosen = pick(times) if pick is not None else ()
            files = {t: sub.snapshots[t].cache_file for t in chosen if t is not None}
            latest = sub.snapshots[times[-1]]
            version = f"{len(times)}-{times[-1]:.0f}-{latest.processed_at:.6f}"
            return times, files, version

        return read(self.db, work)

    def _chain(self, run: int, subsystem: str, times: list[float]) -> ChainStore:
        """A read-only chain store, knowing each snapshot's file name (archived names are
        not the UTC form of their time, so the records say them)."""

        def work(ow) -> dict[float, str]:
            sub = ow.runs[run].subsystems[subsystem]
            return {t: record.filename.rpartition("/")[2] for t, record in sub.snapshots.items()}

        return ChainStore.open(run, subsystem, times, self.cache, file_names=read(self.db, work))

    def _load(self, run: int, subsystem: str, files: dict[float, str], ts: float):
        try:
            return self.cache.load(run, subsystem, files[ts], ts)
        except CacheError as error:
            raise CacheError(
                f"{error} (run `overwatch db rebuild` to recreate the cache)"
            ) from error

    def snapshot_times(self, run: int, subsystem: str) -> list[float]:
        """Processed snapshots of a run's subsystem, ascending (unix seconds)."""
        return self._records(run, subsystem)[0]

    def version(self, run: int, subsystem: str) -> str:
        """Changes whenever a snapshot of this run's subsystem is processed (for ETags)."""
        return self._records(run, subsystem)[2]

    def times_and_version(self, run: int, subsystem: str) -> tuple[list[float], str]:
        """:meth:`snapshot_times` and :meth:`version` from one database read."""
        times, _files, version = self._records(run, subsystem)
        return times, version

    def histogram_paths(self, run: int, subsystem: str) -> list[tuple[str, str]]:
        """(path, class name) of every histogram in the latest snapshot, in file order."""
        latest = self._latest(run, subsystem)
        return [(e.path, e.class_name) for e in latest.layout.entries]

    def _latest(self, run: int, subsystem: str) -> CachedSnapshot:
        times, files, _ = self._records(run, subsystem, lambda times: times[-1:])
        return self._load(run, subsystem, files, times[-1])

    def cumulative(self, run: int, subsystem: str, path: str) -> Histogram:
        """The latest snapshot's effective cumulative content of one histogram."""
        latest = self._latest(run, subsystem)
        i = latest.layout.index.get(path)
        if i is None:
            raise UnknownHistogram(self._missing(run, subsystem, path, latest.timestamp))
        block = np.array(latest.layout.block(latest.eff, i))
        return latest.layout.entries[i].unpack(block)

    def latest_slice(self, run: int, subsystem: str, path: str) -> Histogram:
        """Latest snapshot minus the previous one (the snapshot itself if it is the first)."""
        times, files, _ = self._records(run, subsystem, lambda times: times[-2:])
        base = times[-2] if len(times) > 1 else None
        result = self._compute(run, subsystem, times, files, base, times[-1], [path])
        if path not in result:
            raise UnknownHistogram(
                f"{path!r} in run {run} {subsystem}: its binning changed at the latest "
                "snapshot, so it has no slice there"
            )
        return result[path]

    def slice(
        self,
        run: int,
        subsystem: str,
        start: float | None,
        end: float,
        paths: list[str] | None = None,
    ) -> dict[str, Histogram]:
        """Content between two times (unix seconds, snapped to snapshots; see module doc)."""
        snapped: list = []

        def pick(times: list[float]) -> list:
            snapped[:] = snap_interval(times, start, end)
            return snapped

        times, files, _ = self._records(run, subsystem, pick)
        return self._compute(run, subsystem, times, files, snapped[0], snapped[1], paths)

    def slice_between(
        self,
        run: int,
        subsystem: str,
        base: float | None,
        end: float,
        paths: list[str] | None = None,
    ) -> dict[str, Histogram]:
        """``eff(end) - eff(base)`` for two processed snapshot times exactly (no snapping).

        ``base`` None means the run start. Raises SliceRangeError if either time
        is not a processed snapshot or ``base >= end``.
        """

        def pick(times: list[float]) -> list:
            for ts in (base, end):
                if ts is not None and ts not in times:
                    raise SliceRangeError(f"{_when(ts)} is not a processed snapshot")
            if base is not None and base >= end:
                raise SliceRangeError(f"start ({_when(base)}) must be before end ({_when(end)})")
            return [base, end]

        times, files, _ = self._records(run, subsystem, pick)
        return self._compute(run, subsystem, times, files, base, end, paths)

    def resets_between(self, run: int, subsystem: str, base: float | None, end: float) -> list[str]:
        """Paths whose sender's counter restarted after ``base`` (the run start: None) up to ``end``.

        Both must be processed snapshot times, as for :meth:`slice_between`.
        """
        times, files, _ = self._records(run, subsystem, lambda times: [base, end])
        last = self._load(run, subsystem, files, end)
        if base is None:
            return reset_paths(last.layout, last.off, None)
        first = self._load(run, subsystem, files, base)
        if first.layout.hash == last.layout.hash:
            return reset_paths(last.layout, last.off, first.off)
        chain = self._chain(run, subsystem, times)
        aligned = align(last.layout, first, chain.earlier(bisect.bisect_left(times, base)))
        return reset_paths(last.layout, last.off, aligned.off)

    def paths_at(self, run: int, subsystem: str, ts: float) -> list[tuple[str, str]]:
        """(path, class name) of the histograms of one processed snapshot."""

        def pick(times: list[float]) -> list:
            if ts not in times:
                raise SliceRangeError(f"{_when(ts)} is not a processed snapshot")
            return [ts]

        times, files, _ = self._records(run, subsystem, pick)
        return [
            (e.path, e.class_name)
            for e in self._load(run, subsystem, files, ts).layout.entries
            if not is_part(e.path)  # parts of objects: listed with their objects
        ]

    def objects_at(self, run: int, subsystem: str, ts: float) -> list[ObjectRecord]:
        """The non-histogram objects of one processed snapshot (graphs, functions, stacks...)."""

        def pick(times: list[float]) -> list:
            if ts not in times:
                raise SliceRangeError(f"{_when(ts)} is not a processed snapshot")
            return [ts]

        _, files, _ = self._records(run, subsystem, pick)
        return self.cache.objects(run, subsystem, files[ts])

    # -- arithmetic -------------------------------------------------------------
    def _compute(self, run, subsystem, times, files, base_ts, end_ts, paths):
        end = self._load(run, subsystem, files, end_ts)
        layout = end.layout
        wanted = list(layout.index) if paths is None else list(paths)
        for path in wanted:
            if path not in layout.index:
                raise UnknownHistogram(self._missing(run, subsystem, path, end_ts))
        if base_ts is None:
            if paths is None:
                content = np.array(end.eff)
                return {p: layout.histogram(content, p) for p in wanted}
            return {
                p: self._unpack(end, p, np.array(layout.block(end.eff, layout.index[p])))
                for p in wanted
            }
        base = self._load(run, subsystem, files, base_ts)
        if base.layout.hash == layout.hash:  # the common case: one vectorised subtraction
            if paths is None:
                content = layout.subtract(end.eff, base.eff)
                return {p: layout.histogram(content, p) for p in wanted}
            result = {}
            for p in wanted:
                i = layout.index[p]
                block = layout.entries[i].subtract(
                    layout.block(end.eff, i), layout.block(base.eff, i)
                )
                result[p] = self._unpack(end, p, block)
            return result
        # Histograms the base lacks: the chain's one walk over earlier states (read-only).
        chain = self._chain(run, subsystem, times)
        aligned = align(layout, base, chain.earlier(bisect.bisect_left(times, base_ts)))
        content = layout.subtract(end.eff, aligned.eff)
        result = {}
        for p in wanted:
            if p in aligned.incompatible:
                log.info("run %d %s: %s left out of the slice: %s", run, subsystem, p,
                         aligned.incompatible[p])  # fmt: skip
                continue
            result[p] = layout.histogram(content, p)
        return result

    @staticmethod
    def _unpack(snapshot: CachedSnapshot, path: str, block: np.ndarray) -> Histogram:
        return snapshot.layout.entries[snapshot.layout.index[path]].unpack(block)

    def _missing(self, run: int, subsystem: str, path: str, ts: float) -> str:
        return (
            f"no histogram {path!r} in run {run} {subsystem} at {_when(ts)} "
            "(see histogram_paths for what the snapshot holds)"
        )


__all__ = [
    "SliceRangeError",
    "SliceReader",
    "UnknownHistogram",
    "UnknownRun",
    "UnknownSubsystem",
    "snap_interval",
]
