"""What processing writes to ZODB: one small transaction per snapshot.

Why one transaction per snapshot, keyed by its timestamp: the cache file is
written (atomically) first, then the snapshot record, its latest slice and the
run metadata are committed together. A crash between the two leaves a cache
file without a record, and the restart simply processes that snapshot again;
committing the same outcome twice changes nothing (idempotent), so no record or
slice is ever missing or duplicated.

The transaction touches a handful of objects (the record, the slice, the
subsystem and its BTree buckets, the status): histogram descriptions
(``HistogramInfo``) are written only when the set of paths changes. So
``HistogramInfo.last_seen`` is the last snapshot before a path disappeared;
for a path in the latest snapshot (``present``) it is older, and the path is
current up to ``Subsystem.end``: :func:`seen_until` says which.

The results of the newest slice (quality, group qualities, check results,
non-empty annotations, plugin errors, ``evaluated_at``) are plain attributes of
the Subsystem, replaced (never mutated in place) in the same transaction, and
only when they changed; the alarm manager runs in it too, so an alarm exists
exactly when the snapshot that raised it is recorded, and its notification is
sent only once that transaction commits. Check states change only on a quality
transition, so a steady detector adds nothing but the Subsystem to the write.
Trend points are not in ZODB at all (``processing.analysis.trending``).

``overwatch db prune`` forgets snapshots that repeat their predecessor in one
transaction per chain (:func:`remove_snapshots`), moving whatever referred to
them to the kept snapshot of the same content.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import ZODB

from overwatch.store.db import overwatch_root, read, transact
from overwatch.store.models import (
    HistogramError,
    HistogramInfo,
    Run,
    SnapshotRecord,
    Subsystem,
    TimeSlice,
)

if TYPE_CHECKING:
    from processing.analysis.alarms import AlarmManager
    from processing.analysis.live import LatestResults

log = logging.getLogger(__name__)

#: Subsystem attributes holding the newest slice's results (see overwatch.store.models).
RESULT_FIELDS = (
    "quality",
    "group_qualities",
    "check_results",
    "annotations",
    "plugin_errors",
    "evaluated_at",
)


@dataclass
class LaterUpdate:
    """A snapshot already recorded whose state changed because an older one arrived late."""

    timestamp: float
    resets: int
    start: float | None = None  # new start of its latest slice (the late snapshot)
    n_events: float | None = None


@dataclass
class Outcome:
    """Everything one processed snapshot adds to the database."""

    run: int
    subsystem: str
    timestamp: float
    filename: str  # relative to the data directory
    cache_file: str  # relative to the data directory
    size: int
    n_histograms: int
    previous: float | None  # timestamp of the snapshot its latest slice starts at
    resets: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    n_events: float | None = None
    histograms: list[tuple[str, str]] | None = None  # (path, class) when the path set changed
    gone: list[str] = field(default_factory=list)  # paths absent since this snapshot
    later: list[LaterUpdate] = field(default_factory=list)
    latest: LatestResults | None = None  # results of the subsystem's newest slice


def _subsystem(root, run_number: int, name: str) -> Subsystem:
    ow = overwatch_root(root)
    run = ow.runs.get(run_number)
    if run is None:
        run = Run(run_number)
        ow.runs[run_number] = run
    subsystem = run.subsystems.get(name)
    if subsystem is None:
        subsystem = Subsystem(run_number, name)
        run.subsystems[name] = subsystem
    return subsystem


def commit_outcome(db: ZODB.DB, o: Outcome, alarms: AlarmManager | None = None) -> bool:
    """Record a processed snapshot; True if it was new (False: already there, nothing doubled).

    With ``o.latest`` the slice's results replace the Subsystem's, and
    ``alarms`` (if given) updates the alarms from its check evaluation, in the
    same transaction.
    """

    def work(root) -> bool:
        sub = _subsystem(root, o.run, o.subsystem)
        ts = o.timestamp
        new = ts not in sub.snapshots
        if new:
            record = SnapshotRecord(ts, o.filename, o.n_histograms, o.cache_file, o.size)
            record.resets = len(o.resets)
            sub.snapshots[ts] = record
            for path, message in o.errors:
                sub.add_error(HistogramError(path, ts, message))
            if o.resets and not o.later:
                sub.segments += 1
        else:
            record = sub.snapshots[ts]
            if record.cache_file != o.cache_file:
                record.cache_file = o.cache_file
        _set_slice(sub, o.run, o.subsystem, o.previous, ts, o.n_histograms)
        for update in o.later:
            _apply_later(sub, o, update)
        if o.later:
            resets = sum(1 for r in sub.snapshots.values() if getattr(r, "resets", 0))
            if sub.segments != 1 + resets:
                sub.segments = 1 + resets
        if not sub.start or ts < sub.start:
            sub.start = ts
        if ts >= sub.end:
            sub.end = ts
            if o.n_events is not None and sub.n_events != o.n_events:
                sub.n_events = o.n_events
        if o.histograms is not None and (new or not len(sub.histograms)):
            _update_histograms(sub, o, ts)
        latest = o.latest
        if latest is not None and latest.timestamp >= sub.end:
            _set_results(sub, latest)
            if alarms is not None and latest.evaluation is not None:
                alarms.update(
                    overwatch_root(root),
                    latest.evaluation,
                    time.time(),
                    slice_end=float(latest.timestamp),
                )
        status = overwatch_root(root).processing
        if new:
            status.snapshots_processed += 1
        if ts > status.last_snapshot_processed:
            status.last_snapshot_processed = ts
        return new

    return transact(db, work, note=f"process Run{o.run}/{o.subsystem} {o.timestamp:.0f}")


def _set_slice(sub: Subsystem, run: int, name: str, start, end: float, n: int) -> None:
    start = 0.0 if start is None else float(start)
    current = sub.slices.get(end)
    if current is None or current.start != start or current.n_histograms != n:
        sub.slices[end] = TimeSlice(run, name, start, end, n)


def _set_results(sub: Subsystem, latest: LatestResults) -> None:
    values = {
        "quality": latest.quality,
        "group_qualities": dict(latest.group_qualities),
        "check_results": tuple(latest.check_results),
        "annotations": dict(latest.annotations),
        "plugin_errors": tuple(latest.plugin_errors),
        "evaluated_at": float(latest.timestamp),
    }
    for name in RESULT_FIELDS:
        if getattr(sub, name) != values[name]:
            setattr(sub, name, values[name])


def _apply_later(sub: Subsystem, o: Outcome, update: LaterUpdate) -> None:
    record = sub.snapshots.get(update.timestamp)
    if record is None:
        return
    if getattr(record, "resets", 0) != update.resets:
        record.resets = update.resets
    if update.start is not None:
        _set_slice(sub, o.run, o.subsystem, update.start, update.timestamp, record.n_histograms)
    if update.n_events is not None and update.timestamp >= sub.end:
        sub.n_events = update.n_events


def _update_histograms(sub: Subsystem, o: Outcome, ts: float) -> None:
    for path, class_name in o.histograms:
        info = sub.histograms.get(path)
        if info is None:
            sub.histograms[path] = HistogramInfo(path, class_name, ts)
            continue
        if info.class_name != class_name:
            info.class_name = class_name
        if ts < info.first_seen:
            info.first_seen = ts
        if ts > info.last_seen:
            info.last_seen = ts
        if not is_present(info):
            info.present = True
    if o.previous is not None:
        for path in o.gone:
            info = sub.histograms.get(path)
            if info is None:
                continue
            if info.last_seen < o.previous:
                info.last_seen = o.previous
            info.present = False


def is_present(info: HistogramInfo) -> bool:
    """Whether a path is in the subsystem's newest listing (then it is current up to
    ``Subsystem.end``); records written before this was kept say present."""
    return getattr(info, "present", True)


def seen_until(sub: Subsystem, info: HistogramInfo) -> float:
    """The last snapshot a path was seen in: the subsystem's end while it is still there."""
    return sub.end if is_present(info) else info.last_seen


def commit_bad(db: ZODB.DB, run: int, subsystem: str, filename: str, reason: str) -> None:
    """Remember a snapshot that cannot be read, with why (it is skipped from then on)."""

    def work(root) -> None:
        sub = _subsystem(root, run, subsystem)
        if sub.bad_snapshots.get(filename) != reason:
            sub.bad_snapshots[filename] = reason

    transact(db, work, note=f"bad snapshot Run{run}/{subsystem}/{filename}")


def commit_pass(db: ZODB.DB, started: float, finished: float, error: str) -> None:
    """The pass times shown on the status page."""

    def work(root) -> None:
        status = overwatch_root(root).processing
        status.last_pass_started = started
        status.last_pass_finished = finished
        if status.last_error != error:
            status.last_error = error

    transact(db, work, note="processing pass")


@dataclass
class ChainRecords:
    """What the database knows of one run's subsystem, for processing to resume from."""

    times: list[float]
    bad: set[str]


@dataclass
class RunStatus:
    """A run at a glance (plain data, for pages and commands)."""

    run: int
    start: float
    end: float
    ongoing: bool
    subsystems: dict[str, dict[str, float]]  # name -> start, end, n_events, snapshots


def run_status(
    db: ZODB.DB, run: int, ongoing_minutes: float, now: float | None = None
) -> RunStatus | None:
    """Start, end and "ongoing" (a snapshot within the last ``ongoing_minutes``) of a run."""
    now = time.time() if now is None else now

    def work(ow) -> RunStatus | None:
        run_object = ow.runs.get(run)
        if run_object is None:
            return None
        subsystems = {
            name: {
                "start": s.start,
                "end": s.end,
                "n_events": s.n_events,
                "snapshots": float(len(s.snapshots)),
            }
            for name, s in run_object.subsystems.items()
        }
        ongoing = run_object.is_ongoing(now, ongoing_minutes * 60.0)
        return RunStatus(run, run_object.start, run_object.end, ongoing, subsystems)

    return read(db, work)


def load_chain(db: ZODB.DB, run: int, subsystem: str) -> ChainRecords:
    def work(ow) -> ChainRecords:
        run_object = ow.runs.get(run)
        sub = run_object.subsystems.get(subsystem) if run_object is not None else None
        if sub is None:
            return ChainRecords([], set())
        return ChainRecords(list(sub.snapshots.keys()), set(sub.bad_snapshots.keys()))

    return read(db, work)


def clear_runs(db: ZODB.DB) -> None:
    """Forget every run (``db rebuild``) and reset the processing status; users and alarms stay."""
    from BTrees.IOBTree import IOBTree

    def work(root) -> None:
        ow = overwatch_root(root)
        ow.runs = IOBTree()
        status = ow.processing
        status.snapshots_processed = 0
        status.last_snapshot_processed = 0.0
        status.last_error = ""
        status.last_pass_started = status.last_pass_finished = time.time()

    transact(db, work, note="db rebuild: clear runs")


@dataclass(frozen=True)
class StoredSnapshot:
    """Where a processed snapshot's files are (plain data, paths relative to the data dir)."""

    timestamp: float
    filename: str
    cache_file: str
    size: int


def run_numbers(db: ZODB.DB) -> list[int]:
    """Every run the database knows, ascending."""
    return read(db, lambda ow: list(ow.runs.keys()))


def stored_snapshots(db: ZODB.DB, run: int, subsystem: str) -> list[StoredSnapshot]:
    """The processed snapshots of a run's subsystem, ascending (empty if unknown)."""

    def work(ow) -> list[StoredSnapshot]:
        run_object = ow.runs.get(run)
        sub = run_object.subsystems.get(subsystem) if run_object is not None else None
        if sub is None:
            return []
        return [
            StoredSnapshot(ts, r.filename, r.cache_file, int(getattr(r, "size", 0) or 0))
            for ts, r in sub.snapshots.items()
        ]

    return read(db, work)


def remove_snapshots(
    db: ZODB.DB,
    run: int,
    subsystem: str,
    heads: dict[float, float],
    latest: LatestResults | None = None,
) -> int:
    """Forget snapshots whose content equals a kept one (``db prune``); returns how many.

    ``heads`` maps each removed timestamp to the kept snapshot of identical
    content it duplicates (the first of its stretch, always earlier). In one
    transaction: the records and the latest slices ending at them go; a slice
    starting at one starts at its head instead (same content); the
    subsystem's end, a histogram's ``last_seen`` and on-demand slice
    descriptions of this chain move to the head (a description whose interval
    becomes empty is dropped); errors noted at removed snapshots go. With
    ``latest`` (the results of the newest remaining slice) the subsystem's
    results are replaced when they described a removed snapshot. Alarms keep
    what shifters were told. Idempotent: removed timestamps no longer there
    change nothing.
    """

    def work(root) -> int:
        ow = overwatch_root(root)
        run_object = ow.runs.get(run)
        sub = run_object.subsystems.get(subsystem) if run_object is not None else None
        if sub is None:
            return 0
        gone = [ts for ts in heads if ts in sub.snapshots]
        for ts in gone:
            del sub.snapshots[ts]
        for ts in heads:
            if ts in sub.slices:
                del sub.slices[ts]
        for end, time_slice in list(sub.slices.items()):
            if time_slice.start in heads:
                _set_slice(sub, run, subsystem, heads[time_slice.start], end,
                           time_slice.n_histograms)  # fmt: skip
        if len(sub.snapshots):
            if sub.end != sub.snapshots.maxKey():
                sub.end = sub.snapshots.maxKey()
            if sub.start != sub.snapshots.minKey():
                sub.start = sub.snapshots.minKey()
        for info in sub.histograms.values():
            if info.last_seen in heads:
                info.last_seen = heads[info.last_seen]
            if info.first_seen in heads:  # never: a removed snapshot repeats an earlier one
                info.first_seen = heads[info.first_seen]
        if any(error.timestamp in heads for error in sub.errors):
            sub.errors[:] = [e for e in sub.errors if e.timestamp not in heads]
        if latest is not None and sub.evaluated_at in heads:
            _set_results(sub, latest)
        _move_slice_requests(ow, run, subsystem, heads)
        return len(gone)

    return transact(db, work, note=f"db prune Run{run}/{subsystem}: {len(heads)} snapshot(s)")


def _move_slice_requests(ow, run: int, subsystem: str, heads: dict[float, float]) -> None:
    """On-demand slices bounded by a removed snapshot: bounded by its head (same content)."""
    requests = getattr(ow, "slice_requests", None)
    if requests is None:
        return
    for slice_id, request in list(requests.items()):
        if request.run != run or request.subsystem != subsystem:
            continue
        start = heads.get(request.start, request.start) if request.start is not None else None
        end = heads.get(request.end, request.end)
        if start is not None and start >= end:
            del requests[slice_id]  # an interval of repeated content only: empty now
            continue
        if start != request.start:
            request.start = start
        if end != request.end:
            request.end = end
