"""``overwatch db prune``: after a run ended, remove snapshots that repeat their predecessor.

Why: senders keep publishing after the end of a run, and a receiver that
restarts may store the same content again. A receiver drops a payload
identical to the previous one, but two ROOT files of the same content differ
in their key dates, so such copies reach the disk. They add nothing: the
slice ending at each of them is empty.

Identical means identical in content, never in bytes: the content processing
cached for the two snapshots (:class:`processing.ingest.chain.ChainStore`
over :class:`processing.ingest.cache.ArrayCache`) has the same layout (its
hash names every histogram, binning and title) and every array equal,
exactly: effective content and carried offsets (NaN equals NaN). No ROOT
file is read. A snapshot whose cache file is missing or damaged is not
compared: it is kept and counted as not compared (``overwatch db rebuild``
recreates the cache). Equal effective content with equal offsets is equal
raw content, so a counter reset is never a copy.

What goes: in each (run, subsystem) chain, the earliest snapshot of every
stretch of identical ones stays, the later ones go: their snapshot file,
their cache file, their trend points and their record with what refers to it
(:func:`processing.ingest.records.remove_snapshots`: latest slices, the
subsystem's end, slices starting at them, on-demand slice descriptions).

What stays the same: the whole-run content; every slice between two kept
snapshots (from the head of a stretch to the next kept snapshot is exactly
what the slice after the last copy held); the cached state of every kept
snapshot; and the trend values at kept snapshots, which are not recomputed.
So a rate trended after a stretch of copies keeps the interval it was
measured over (after the last copy); an on-demand slice, or a ``db rebuild``
later, measures it from the head of the stretch. When the newest snapshot
goes, the subsystem's latest-slice results (quality, check results,
annotations) are computed again for the new newest slice by the view service,
as the web shows that slice. Alarms are left as they are: they record what
shifters were told.

Only runs that ended: an ongoing run (``Run.is_ongoing`` with
``processing.ongoing_minutes``) is skipped, and refused when named in ``runs``
(:class:`PruneError`, before anything changes).

Order of the writes, so an interruption loses nothing and a second apply
finishes the work: snapshot files first (from then on a rebuild gives the
pruned state), trend points, the database transaction, and cache files last
(readers use them until the records are gone). A cache file that an
interruption left with neither record nor snapshot file is deleted by the
next apply.

Stop ``overwatch process`` first: it keeps each chain's snapshot times in
memory. :func:`processing_active` tells whether its status says it may still
run; the command refuses to apply then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ZODB

from overwatch import names
from overwatch.config import ProcessingSettings
from overwatch.plugins import load_errors, load_plugin, validate_options
from overwatch.store.db import read
from overwatch.store.layout import DataDir
from processing.analysis.checks import CheckEngine
from processing.analysis.live import LatestResults
from processing.analysis.trending import TrendStore, trend_dir
from processing.ingest import records
from processing.ingest.cache import ArrayCache, CachedSnapshot
from processing.ingest.chain import ChainStore
from processing.slices.service import SliceService
from processing.slices.spec import SliceSpec

log = logging.getLogger(__name__)


class PruneError(ValueError):
    """A prune that cannot be done as asked (a run unknown or still ongoing); nothing changed."""


@dataclass
class ChainPrune:
    """What pruning one (run, subsystem) removes, or removed."""

    run: int
    subsystem: str
    snapshots: int  # processed snapshots before pruning
    heads: dict[float, float] = field(default_factory=dict)  # removed -> kept, same content
    files: list[Path] = field(default_factory=list)  # snapshot files of the removed
    cache_files: list[Path] = field(default_factory=list)  # their cache files
    orphans: list[Path] = field(default_factory=list)  # cache files with no record, no snapshot
    bytes: int = 0
    not_compared: int = 0  # snapshots without a readable cache file (kept)
    last: float = 0.0  # the newest snapshot before pruning

    @property
    def removable(self) -> int:
        return len(self.heads)

    @property
    def kept(self) -> int:
        return self.snapshots - self.removable


@dataclass
class PruneReport:
    """Every chain looked at, the runs skipped as ongoing, and whether it was applied."""

    chains: list[ChainPrune] = field(default_factory=list)
    ongoing: dict[int, float] = field(default_factory=dict)  # run -> s since its last snapshot
    applied: bool = False

    @property
    def removable(self) -> int:
        return sum(c.removable for c in self.chains)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.chains)

    def lines(self) -> list[str]:
        """The command's output: one line per (run, subsystem), then the summary."""
        verb = "removed" if self.applied else "removable"
        out = [f"{'run':>8}  {'subsystem':<9}  {'snapshots':>9}  {'kept':>6}  {verb:>9}  freed"]
        for c in self.chains:
            out.append(
                f"{c.run:>8}  {c.subsystem:<9}  {c.snapshots:>9}  {c.kept:>6}  {c.removable:>9}  "
                + human_bytes(c.bytes)
                + (f"  ({c.not_compared} not compared: cache missing)" if c.not_compared else "")
                + (f"  ({len(c.orphans)} cache file(s) of no snapshot)" if c.orphans else "")
            )
        for run, seconds in sorted(self.ongoing.items()):
            out.append(f"{run:>8}  ongoing (last snapshot {seconds / 60:.1f} min ago): skipped")
        total = sum(c.snapshots for c in self.chains)
        runs = len({c.run for c in self.chains if c.removable})
        summary = (
            f"{self.removable} of {total} snapshot(s) in {runs} run(s), {human_bytes(self.bytes)}"
        )
        if self.applied:
            out.append(f"removed {summary} freed")
        else:
            out.append(f"dry run: {summary} to free; nothing changed (--apply removes them)")
        return out


def human_bytes(size: int) -> str:
    """``389.0 kB``: decimal units, as disk tools print them."""
    value = float(size)
    if value < 1000:
        return f"{value:.0f} B"
    units = ["kB", "MB", "GB"]
    value /= 1000
    while value >= 1000 and len(units) > 1:
        value /= 1000
        units.pop(0)
    return f"{value:.1f} {units[0]}"


def same_content(a: CachedSnapshot, b: CachedSnapshot) -> bool:
    """The same layout and every cached array equal (no offset counts as zero offsets)."""
    if a.layout.hash != b.layout.hash or a.eff.shape != b.eff.shape:
        return False
    if not np.array_equal(a.eff, b.eff, equal_nan=True):
        return False
    if a.off is None and b.off is None:
        return True
    a_off = a.off if a.off is not None else np.zeros_like(b.off)
    b_off = b.off if b.off is not None else np.zeros_like(a.off)
    return np.array_equal(a_off, b_off, equal_nan=True)


def processing_active(
    db: ZODB.DB, settings: ProcessingSettings, now: float | None = None
) -> float | None:
    """Seconds since processing's last pass, if recent enough that it may be running, else None.

    A running service records a pass at least every minute plus an interval
    (``processing.pipeline``); ``process --once`` and ``db rebuild`` record
    theirs too, so right after one of them this says "active" for a while.
    """
    now = time.time() if now is None else now
    finished = read(db, lambda ow: ow.processing.last_pass_finished)
    age = now - finished
    return age if finished and age < active_seconds(settings) else None


def active_seconds(settings: ProcessingSettings) -> float:
    return 90.0 + 2.0 * settings.interval


def plan(
    data_dir: str | Path,
    db: ZODB.DB,
    settings: ProcessingSettings | None = None,
    *,
    runs: Iterable[int] | None = None,
    now: float | None = None,
) -> PruneReport:
    """What pruning would remove (reads the database and the cache; changes nothing).

    ``runs`` restricts to those runs; an unknown or ongoing one among them
    raises :class:`PruneError`. Without ``runs`` ongoing runs are skipped.
    """
    settings = settings or ProcessingSettings()
    data = DataDir(data_dir)
    if not data.root.is_dir():
        raise FileNotFoundError(f"data directory {data.root} does not exist")
    known = records.run_numbers(db)
    selected = known if runs is None else sorted(set(runs))
    unknown = sorted(set(selected) - set(known))
    if unknown:
        raise PruneError(f"run(s) {_listed(unknown)} unknown to the database (not processed?)")
    now = time.time() if now is None else now
    report = PruneReport()
    cache = ArrayCache(data.root)
    statuses = [records.run_status(db, run, settings.ongoing_minutes, now) for run in selected]
    ongoing = {s.run: now - s.end for s in statuses if s is not None and s.ongoing}
    if ongoing and runs is not None:
        raise PruneError(
            f"run(s) {_listed(ongoing)} ongoing (a snapshot within the last "
            f"{settings.ongoing_minutes:g} min, processing.ongoing_minutes): "
            "prune a run after it ended"
        )
    report.ongoing = ongoing
    for status in statuses:
        if status is None or status.ongoing:
            continue
        for subsystem in status.subsystems:
            report.chains.append(plan_chain(data, cache, db, status.run, subsystem))
    return report


def plan_chain(
    data: DataDir, cache: ArrayCache, db: ZODB.DB, run: int, subsystem: str
) -> ChainPrune:
    """The snapshots of one chain equal in content to their predecessor, and their files."""
    stored = records.stored_snapshots(db, run, subsystem)
    chain = ChainStore.open(run, subsystem, [s.timestamp for s in stored], cache)
    chain.names.update({s.timestamp: Path(s.filename).name for s in stored})
    result = ChainPrune(run, subsystem, len(stored), last=stored[-1].timestamp if stored else 0.0)
    previous: CachedSnapshot | None = None
    head = 0.0
    for snapshot in stored:
        stem = chain.stem_of(snapshot.timestamp)
        state = chain.load(stem, snapshot.timestamp)
        if state is None:  # nothing to compare with: kept, and neither neighbour is judged by it
            result.not_compared += 1
            previous = None
            continue
        if previous is not None and same_content(previous, state):
            result.heads[snapshot.timestamp] = head
            result.bytes += _add(result.files, data.root / snapshot.filename)
            result.bytes += _add(
                result.cache_files, cache.directory(run, subsystem) / chain.cached[stem]
            )
        else:
            head = snapshot.timestamp
        previous = state
    recorded = {chain.stem_of(s.timestamp) for s in stored}
    for stem, name in sorted(chain.cached.items()):
        if stem in recorded:
            continue
        snapshot = f"{stem}.root"
        if (data.subsystem_dir(run, subsystem) / snapshot).exists() or (
            data.root / snapshot
        ).exists():
            continue  # not processed yet (or a crash before its commit): processing will
        result.bytes += _add(result.orphans, cache.directory(run, subsystem) / name)
    return result


def _add(paths: list[Path], path: Path) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    paths.append(path)
    return size


def parse_runs(text: str) -> list[int]:
    """``--runs 1,2``: run numbers separated by commas (InvalidName names a bad one)."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise names.InvalidName("--runs needs run numbers, e.g. --runs 12,13")
    return sorted({names.parse_run(part) for part in parts if part})


def _listed(runs: Iterable[int]) -> str:
    return ", ".join(str(run) for run in sorted(runs))


def apply(
    data_dir: str | Path,
    db: ZODB.DB,
    report: PruneReport,
    settings: ProcessingSettings | None = None,
    *,
    checks: CheckEngine | None = None,
) -> PruneReport:
    """Remove what :func:`plan` found (see the module docs for the order); returns the report.

    ``checks`` judge a subsystem's new newest slice when its newest snapshot goes.
    """
    settings = settings or ProcessingSettings()
    service = SliceService(data_dir, db, settings=settings, engine=checks)
    for chain in report.chains:
        if chain.heads:
            _apply_chain(data_dir, db, chain, settings, service)
        for path in chain.orphans:
            path.unlink(missing_ok=True)
    report.applied = True
    return report


def _apply_chain(
    data_dir: str | Path,
    db: ZODB.DB,
    chain: ChainPrune,
    settings: ProcessingSettings,
    service: SliceService,
) -> None:
    key = f"Run{chain.run}/{chain.subsystem}"
    for path in chain.files:
        path.unlink(missing_ok=True)
    directory = trend_dir(data_dir, chain.run, chain.subsystem)
    if directory.is_dir():
        TrendStore(directory, fsync=settings.cache_fsync).drop(chain.heads)
    latest = None
    if chain.last in chain.heads:
        kept = [
            s.timestamp
            for s in records.stored_snapshots(db, chain.run, chain.subsystem)
            if s.timestamp not in chain.heads
        ]
        try:
            latest = latest_results(service, chain.run, chain.subsystem, kept)
        except Exception as error:  # noqa: BLE001 - the copies still go; the results wait
            log.warning(
                "%s: results of the new newest slice not computed (they describe the "
                "removed last copy until processing judges a new one): %s",
                key,
                error,
            )
    removed = records.remove_snapshots(db, chain.run, chain.subsystem, chain.heads, latest)
    for path in chain.cache_files:
        path.unlink(missing_ok=True)
    log.info("%s: %d snapshot(s) identical to their predecessor removed", key, removed)


def latest_results(
    service: SliceService, run: int, subsystem: str, kept: list[float]
) -> LatestResults:
    """The results of the slice between the last two kept snapshots, as the live stage keeps them.

    The slice goes through the view service (the analysis every caller uses)
    with the plugin's default options, as live processing runs it.
    """
    end = kept[-1]
    start = kept[-2] if len(kept) > 1 else None
    options, _problems = validate_options(load_plugin(subsystem).options, {})
    view = service.compute(SliceSpec.create(run, subsystem, start, end, options))
    analysis = view.analysis
    if subsystem in load_errors:
        analysis.errors.insert(0, load_errors[subsystem])
    return LatestResults.of(end, analysis)


def prune(
    data_dir: str | Path,
    db: ZODB.DB,
    settings: ProcessingSettings | None = None,
    *,
    runs: Iterable[int] | None = None,
    apply_changes: bool = False,
    checks: CheckEngine | None = None,
    now: float | None = None,
) -> PruneReport:
    """Plan, and with ``apply_changes`` remove, the repeated snapshots of every ended run."""
    report = plan(data_dir, db, settings, runs=runs, now=now)
    if apply_changes:
        apply(data_dir, db, report, settings, checks=checks)
    return report


__all__ = [
    "ChainPrune",
    "PruneError",
    "PruneReport",
    "active_seconds",
    "apply",
    "parse_runs",
    "plan",
    "processing_active",
    "prune",
    "same_content",
]
