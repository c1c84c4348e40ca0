"""The processing pass: new snapshot files -> array cache + ZODB records + latest slices.

For each run and subsystem, new snapshots are processed in time order (the
order between subsystems does not matter; each has its own chain). For one
snapshot:

1. its previous state is the cache of the latest earlier processed snapshot
   (kept in memory between snapshots, read from the cache after a restart;
   a ROOT file is never read twice);
2. the file is read with uproot once (``processing.ingest.read``) - or, when a cache
   file for it already exists (a crash after writing it, ``db rebuild``), the
   raw content is taken from that file instead;
3. its effective cumulative is computed (``processing.ingest.resets``) and written
   atomically to the cache;
4. its latest slice (this cumulative minus the previous) goes through the
   detector plugin, trending and checks (``processing.analysis.live``); the slice's
   trend point is stored before step 5;
5. record, latest slice, run metadata, the slice's results (quality, check
   results, annotations, plugin errors on the Subsystem) and the alarms they
   raise are committed in one idempotent transaction (``processing.ingest.records``).
   Notifications leave only after that commit.

Each step's time is added to :attr:`Pipeline.times` (:mod:`processing.timings`;
``overwatch process`` logs the averages per snapshot when it stops).

``Pipeline(..., analysis=False)`` skips step 4 (plugins, trends, checks and
alarms): the plain pipeline, for benchmarks and for tests of the data path.

Run metadata: ``Subsystem.start``/``end`` are its first and last snapshot
(``Run.start``/``end`` span the subsystems; a run is ongoing while
``Run.is_ongoing(now, processing.ongoing_minutes * 60)``, see
:func:`processing.ingest.records.run_status`). ``Subsystem.n_events`` is the entries
count (ROOT's ``fEntries``) of the histogram ``processing.events_histogram[SYS]``
in the latest effective cumulative: ROOT adds one entry per ``Fill``, so a
histogram filled once per event counts events whatever its binning, weights or
overflow, and the effective content keeps counting across counter resets.

Late snapshots: a file whose timestamp is older than one already processed for
the same subsystem is inserted where it belongs. The snapshots after it are
recomputed from the cache (their raw content is ``eff - offsets``) so counter
resets stay right, and the slice of the next one now starts at the late one.
Nothing is re-read from ROOT. The trend store is rewound to the late time and
the points of the late and every later slice are appended again; the checks
(and alarms) run once, on the subsystem's newest slice.

Clocks: the time in a name is UTC unless the run folder, the data directory
or ``timezone`` (``data.timezone``, ``--timezone``/``--archived``) says another
zone; archived names are read in file order so that the repeated autumn hour
comes out right (:mod:`overwatch.store.archive`, the one reader of names that
``overwatch replay`` uses too).

Bad input: a corrupt, truncated or empty snapshot, or a ``.root`` file whose name
holds no valid time (or another subsystem's or run's), is recorded in ``Subsystem.bad_snapshots`` with the reason and
skipped; the pass goes on. A folder named like a run directory whose number is
no run (``Run2147483648``: beyond what the database's run index takes, see
:func:`overwatch.names.check_run`) holds nothing processing can store: it is
reported once in the log and on the status page with the reason
(``ProcessingStatus.bad_run_dirs``), and never read.

Failing chains: any other failure (database away, disk full, a bug a chain's
data triggers) aborts that chain (run, subsystem) for this pass; its in-memory
state is dropped and its next try starts again from what was committed. A
chain that keeps failing is isolated: it is retried after ``retry_seconds``,
then after twice as long each time, at most every ``retry_max_seconds`` (so
retries are bounded in rate but never given up: a database that comes back is
caught up), with one log line per failure saying when the next try is. The
other chains go on meanwhile, each pass as usual. Failing chains are listed on
the status page with their error and next retry
(``ProcessingStatus.failing_chains``) until they succeed again.

Workers: ``owns`` (a worker's :class:`processing.workers.Ownership`, None: every
subsystem) limits the pipeline to the chains of its subsystems; the scanner
never lists the others, and the failing chains of other workers are left as
they recorded them.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ZODB

from overwatch import names
from overwatch.config import ProcessingSettings
from overwatch.events import EventPublisher
from overwatch.plugins import events_path, load_plugin
from overwatch.store import archive
from overwatch.store.db import overwatch_root, transact
from overwatch.store.layout import DataDir
from processing.analysis.alarms import AlarmManager
from processing.analysis.checks import CheckEngine
from processing.analysis.live import LatestResults, LiveAnalysis, slice_histograms
from processing.ingest import records
from processing.ingest.cache import ArrayCache, CachedSnapshot
from processing.ingest.chain import ChainStore, Writer
from processing.ingest.objects import is_part
from processing.ingest.read import SnapshotEncoder
from processing.ingest.resets import advance, align, reset_paths
from processing.ingest.scan import Scanner
from processing.timings import StageTimes

__all__ = ["ChainFailure", "ChainStore", "Key", "PassReport", "Pipeline", "Scanner"]

log = logging.getLogger(__name__)

Key = tuple[int, str]


@dataclass
class ChainFailure:
    """A chain that failed in a row ``failures`` times; not tried before ``next_retry``."""

    failures: int
    error: str
    since: float
    next_retry: float

    def record(self) -> dict:
        """Plain data for ``ProcessingStatus.failing_chains`` (the status page)."""
        return {
            "failures": self.failures,
            "error": self.error[:500],
            "since": self.since,
            "next_retry": self.next_retry,
        }


@dataclass
class PassReport:
    processed: int = 0
    bad: int = 0
    failed: list[str] = field(default_factory=list)  # "Run<N>/<SYS>: error"


class Pipeline:
    """Processes snapshot files of one data directory into the cache and the database.

    ``checks`` (loaded once, see :func:`processing.analysis.live.load_engine`) judge every
    new latest slice; without them qualities stay Null. ``alarms`` turns those
    qualities into alarms in the snapshot's transaction (None: no alarms, as
    for ``db rebuild``). ``analysis=False`` is the plain pipeline (no plugins,
    trends, checks or alarms). ``rebuild_trends`` starts every trend store
    afresh (``db rebuild``). Each chain's times and states are owned by its
    :class:`~processing.ingest.chain.ChainStore`; the pipeline decides what to
    process and commits it.
    """

    def __init__(
        self,
        data_dir: str | Path,
        db: ZODB.DB,
        settings: ProcessingSettings | None = None,
        *,
        checks: CheckEngine | None = None,
        alarms: AlarmManager | None = None,
        analysis: bool = True,
        rebuild_trends: bool = False,
        retry_seconds: float | None = None,
        retry_max_seconds: float | None = None,
        timezone: str = archive.UTC,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings or ProcessingSettings()
        #: Whether this worker processes a subsystem (None: every one; ``processing.workers``).
        self.owns = owns
        #: Zone of Overwatch-form names in runs whose folders do not declare one.
        self.timezone = timezone
        self.data = DataDir(data_dir)
        self.db = db
        self.cache = ArrayCache(data_dir, fsync=self.settings.cache_fsync)
        self.encoder = SnapshotEncoder()
        self.scanner = Scanner(data_dir, owns)
        self.chains: dict[Key, ChainStore] = {}
        self.alarms = alarms if analysis else None
        self.live = (
            LiveAnalysis(data_dir, self.settings, checks, rebuild_trends=rebuild_trends)
            if analysis
            else None
        )
        # Waits before a failing chain is tried again (settings unless a test says otherwise).
        self.retry_seconds = retry_seconds or self.settings.retry_seconds
        self.retry_max_seconds = max(
            retry_max_seconds or self.settings.retry_max_seconds, self.retry_seconds
        )
        #: Chains that failed their last try, with when to try again.
        self.failing: dict[Key, ChainFailure] = {}
        #: Folders named like run directories that hold no valid run -> why.
        self.bad_run_dirs: dict[str, str] = {}
        self._health_recorded: tuple | None = None  # what the status record last said
        self._last_status = 0.0
        #: Where committed changes are announced (``overwatch.events.EventPublisher``).
        self.events: EventPublisher | None = None
        #: Called after each snapshot handled, processed or bad (``db rebuild``'s progress).
        self.on_snapshot: Callable[[], None] | None = None
        #: For this worker's heartbeat: when its last pass finished, snapshots processed.
        self.last_pass_finished = 0.0
        self.processed_total = 0
        #: Seconds per stage over every snapshot processed (logged at stop, :mod:`processing.timings`).
        self.times = StageTimes()

    # -- passes -----------------------------------------------------------------
    def run_pass(self, hints: set[Key] | None = None) -> PassReport:
        """Process every new snapshot on disk; ``hints`` are directories to list for sure."""
        started = time.time()
        clock, staged = time.perf_counter(), self.times.staged
        report = PassReport()
        due = {key for key, failure in self.failing.items() if failure.next_retry <= started}
        waiting = set(self.failing) - due
        changed = self.scanner.scan((set(hints or ()) | due) - waiting)
        self._find_bad_run_dirs()
        for key, listed in sorted(changed.items()):
            if key in waiting:
                continue  # isolated: its files wait for its next try (forced then)
            try:
                self._process_directory(key, listed, report)
            except Exception as error:  # one chain's failure must not stop the others
                report.failed.append(f"Run{key[0]}/{key[1]}: {error}")
                self._drop(key)
                self._failed(key, error)
            else:
                self._recovered(key)
        self._record_health()
        for key, chain in self.chains.items():
            if key not in changed:
                chain.last = None  # idle: free its arrays; the cache has them (mmap on demand)
        finished = time.time()
        # What the stages of its snapshots did not take: scanning, bad files, status records.
        self.times.dropped()
        self.times.add("other", time.perf_counter() - clock - (self.times.staged - staged))
        self.last_pass_finished = finished
        self.processed_total += report.processed
        if report.processed or report.failed or finished - self._last_status > 60:
            try:
                records.commit_pass(self.db, started, finished, "; ".join(report.failed)[:1000])
                self._last_status = finished
            except Exception:  # the status is informative; a pass is not lost without it
                log.warning("could not record the pass status", exc_info=True)
        return report

    def run_until_idle(self, max_passes: int = 1000) -> PassReport:
        """Pass after pass until nothing new is found (``overwatch process --once``).

        A failing chain does not stop the others: passes go on while they find
        work; the failing one is not tried again before its backoff is over.
        """
        total = PassReport()
        for _ in range(max_passes):
            report = self.run_pass()
            total.processed += report.processed
            total.bad += report.bad
            total.failed.extend(report.failed)
            if not (report.processed or report.bad):
                break
        return total

    # -- failing chains and bad run folders -----------------------------------------
    def _failed(self, key: Key, error: Exception) -> None:
        now = time.time()
        previous = self.failing.get(key)
        failures = previous.failures + 1 if previous else 1
        wait = min(self.retry_seconds * 2 ** (failures - 1), self.retry_max_seconds)
        text = f"{type(error).__name__}: {error}"
        self.failing[key] = ChainFailure(
            failures, text, previous.since if previous else now, now + wait
        )
        # The traceback once; later failures of the same chain in one line each.
        log.error(
            "Run%d/%s failed (%d time(s) in a row): %s; isolated, the other chains go on; "
            "next try in %.0f s",
            *key, failures, text, wait, exc_info=previous is None,
        )  # fmt: skip

    def _recovered(self, key: Key) -> None:
        failure = self.failing.pop(key, None)
        if failure is not None:
            log.info("Run%d/%s processed again after %d failure(s)", *key, failure.failures)

    def _find_bad_run_dirs(self) -> None:
        """Folders named ``Run...`` that are no run directory: reported, never read."""
        try:
            entries = [e.name for e in os.scandir(self.data.root) if e.is_dir()]
        except OSError:  # no data directory yet: nothing to report
            return
        found: dict[str, str] = {}
        for name in entries:
            if not name.startswith("Run") or names.parse_run_dir(name) is not None:
                continue
            try:
                run = names.parse_run(name[3:])
                reason = f"not a run directory: its name should be {names.run_dir(run)!r}"
            except names.InvalidName as error:
                reason = str(error)
            found[name] = reason
            if name not in self.bad_run_dirs:
                log.warning("%s/%s: bad run directory, not processed: %s",
                            self.data.root, name, reason)  # fmt: skip
        self.bad_run_dirs = found

    def _record_health(self) -> None:
        """Failing chains and bad run folders for the status page, when they change."""
        failing = {f"Run{run}/{sys_}": f.record() for (run, sys_), f in self.failing.items()}
        health = (failing, dict(self.bad_run_dirs))
        if health == self._health_recorded:
            return

        def work(root) -> None:
            status = overwatch_root(root).processing
            # Other workers' chains stay as they recorded them (replaced whole: plain data).
            others = {
                chain: entry
                for chain, entry in status.failing_chains.items()
                if self.owns is not None and not self.owns(chain.rpartition("/")[2])
            }
            status.failing_chains = {**others, **failing}
            status.bad_run_dirs = health[1]

        try:
            transact(self.db, work, note="processing health")
            self._health_recorded = health
        except Exception:  # informative only; tried again after the next pass
            log.warning("could not record the failing chains", exc_info=True)

    # -- one subsystem ------------------------------------------------------------
    def _chain(self, key: Key) -> ChainStore:
        chain = self.chains.get(key)
        if chain is None:
            known = records.load_chain(self.db, *key)
            run, subsystem = key
            writer = Writer(
                self.data,
                self.encoder,
                self.settings.reset_tolerance,
                events_path(load_plugin(subsystem), self.settings.events_histogram, subsystem),
            )
            chain = ChainStore.open(run, subsystem, known.times, self.cache, writer, known.bad)
            if self.live is not None:
                self.live.open(key, chain.times)
            if len(self.chains) > 32:  # keep memory bounded: old runs are rarely touched
                self._drop(next(iter(self.chains)))
            self.chains[key] = chain
        return chain

    def _drop(self, key: Key) -> None:
        """Forget a chain's memory (after a failure: the next pass resumes from what is committed)."""
        self.chains.pop(key, None)
        if self.live is not None:
            self.live.forget(key)

    def _process_directory(self, key: Key, listed: list[str], report: PassReport) -> None:
        chain = self._chain(key)
        self._read_names(chain, listed, report)
        processed = set(chain.times)
        todo: list[tuple[float, str]] = []
        for name in listed:
            ts = chain.parsed.get(name)
            if ts is None or name in chain.bad:
                continue
            chain.names[ts] = name
            if ts not in processed:
                todo.append((ts, name))
        for ts, name in sorted(todo):
            self._process(chain, ts, name, report)

    def _read_names(self, chain: ChainStore, listed: list[str], report: PassReport) -> None:
        """Instants of the names not read before; bad names recorded with their reason."""
        new = [n for n in listed if n not in chain.parsed and n not in chain.bad]
        if not new:
            return
        zone = archive.zone_of(self.data, chain.run, self.timezone)
        ambiguous = zone != archive.UTC or any(
            names.RECEIVER_FILE_PATTERN.fullmatch(n) for n in new
        )
        # Local times need their neighbours (the repeated autumn hour): read them all again.
        batch = [n for n in listed if n not in chain.bad] if ambiguous else new
        paths = {n: self.data.snapshot_path(chain.run, chain.subsystem, n) for n in batch}
        good, bad = archive.read_names(paths, zone, run=chain.run, subsystem=chain.subsystem)
        for name in new:
            if name in good:
                chain.parsed[name] = good[name]
            else:
                chain.parsed[name] = None
                self._bad(chain, name, bad[name], report)

    def _bad(self, chain: ChainStore, name: str, reason: str, report: PassReport) -> None:
        log.warning(
            "Run%d/%s/%s: bad snapshot, skipped: %s", chain.run, chain.subsystem, name, reason
        )
        records.commit_bad(self.db, chain.run, chain.subsystem, name, reason)
        chain.bad.add(name)
        report.bad += 1
        if self.on_snapshot is not None:
            self.on_snapshot()

    def _process(self, chain: ChainStore, ts: float, name: str, report: PassReport) -> None:
        path = self.data.snapshot_path(chain.run, chain.subsystem, name)
        stem = name[: -len(".root")]
        index = bisect.bisect_left(chain.times, ts)
        previous_ts = chain.times[index - 1] if index else None
        later = chain.times[index:]
        previous = chain.state(previous_ts) if previous_ts is not None else None

        self.times.dropped()  # an earlier snapshot that ended early: its time is "other"
        clock = time.perf_counter()
        existing = chain.load(stem, ts)
        errors: list[tuple[str, str]] = []
        if existing is not None:
            layout, raw, encoded = existing.layout, existing.raw(), None
        else:
            try:
                encoded = self.encoder.read(path)
            except FileNotFoundError:
                log.info("%s vanished before it could be processed", path)
                return
            except Exception as error:  # damaged file: uproot raises many kinds of errors
                if _transient(error):
                    raise  # the machine's trouble, not the file's: retried next pass
                self._bad(chain, name, f"unreadable ROOT file: {error}", report)
                return
            if encoded.empty:
                reasons = "; ".join(f"{s.path}: {s.reason}" for s in encoded.skipped[:5])
                self._bad(chain, name, f"nothing readable ({reasons or 'empty file'})", report)
                return
            layout, raw = encoded.layout, encoded.raw
            self.cache.write_objects(chain.run, chain.subsystem, stem, encoded.objects)
            errors += [(s.path, s.reason) for s in encoded.unreadable]

        clock = self._timed("read", clock)
        aligned = align(layout, previous, chain.earlier(index - 1))
        state = advance(layout, raw, aligned, self.settings.reset_tolerance)
        clock = self._timed("resets", clock)
        errors += sorted(aligned.incompatible.items())
        if state.resets:
            log.warning(
                "Run%d/%s %s: counter reset of %d histogram(s) (e.g. %s): new cumulative segment",
                chain.run, chain.subsystem, name, len(state.resets), state.resets[0],
            )  # fmt: skip
        for path_name, message in aligned.incompatible.items():
            log.warning("Run%d/%s %s: %s: %s", chain.run, chain.subsystem, name, path_name, message)
        cache_file, _ = chain.store(stem, existing, layout, state)
        self._timed("cache", clock)
        current = CachedSnapshot(ts, layout, state.eff, state.off)

        outcome = records.Outcome(
            run=chain.run,
            subsystem=chain.subsystem,
            timestamp=ts,
            filename=self.data.relative(path) if path.exists() else str(path),
            cache_file=cache_file,
            size=path.stat().st_size if path.exists() else 0,
            n_histograms=len(layout),
            previous=previous_ts,
            resets=state.resets,
            errors=errors,
            n_events=chain.events(current),
        )
        listed = self._listed(chain, stem, layout, encoded if existing is None else None)
        if previous is not None and not chain.listed:  # after a restart: what it showed
            chain.listed = self._listed(chain, chain.stem_of(previous_ts), previous.layout, None)
        if previous is None or chain.listed != listed:
            outcome.histograms = list(listed)
            if chain.listed:
                now = {path for path, _ in listed}
                outcome.gone = [path for path, _ in chain.listed if path not in now]
        chain.listed = listed
        chain.times.insert(index, ts)  # before recomputing: later ones now follow this one
        try:
            if later:
                log.info("Run%d/%s %s arrived late: recomputing %d later snapshot(s)",
                         chain.run, chain.subsystem, name, len(later))  # fmt: skip
                outcome.later = chain.recompute(current, later)
            if self.live is not None:
                with self.times.stage("analysis"):
                    outcome.latest = self._analyse(chain, previous_ts, current, aligned, later)
            with self.times.stage("commit"):
                records.commit_outcome(self.db, outcome, self.alarms)
        except BaseException:
            self._drop((chain.run, chain.subsystem))
            raise
        if self.events is not None:
            latest = outcome.latest
            self.events.publish(
                "snapshot",
                run=chain.run,
                subsystem=chain.subsystem,
                timestamp=ts,
                quality=latest.quality if latest is not None else "Null",
                group_qualities=latest.group_qualities if latest is not None else {},
            )
        chain.last = current if not later else None
        report.processed += 1
        self.times.done()
        if self.on_snapshot is not None:
            self.on_snapshot()

    def _timed(self, stage: str, since: float) -> float:
        """Add the time since ``since`` to ``stage``; returns now (the next stage's start)."""
        now = time.perf_counter()
        self.times.add(stage, now - since)
        return now

    def _listed(self, chain: ChainStore, stem: str, layout, encoded) -> tuple:
        """(path, class) of what a snapshot shows: its histograms, then its other objects
        (their parts are no histograms of their own)."""
        if encoded is not None:
            found = encoded.objects
        else:  # taken from the cache (db rebuild): the objects it kept
            found = self.cache.objects(chain.run, chain.subsystem, chain.cached.get(stem, ""))
        shown = [(e.path, e.class_name) for e in layout.entries if not is_part(e.path)]
        return tuple(shown + [(record.path, record.class_name) for record in found])

    # -- analysis ------------------------------------------------------------------
    def _analyse(self, chain: ChainStore, previous_ts, current, aligned, later) -> LatestResults:
        """Trend points (stored) and results of the new slice; after a late one, of all later.

        Returns the results of the subsystem's newest slice, the one its
        latest-slice fields and alarms describe.
        """
        live, key = self.live, (chain.run, chain.subsystem)
        histograms = slice_histograms(
            current.layout, current.eff, aligned.eff, aligned.incompatible
        )
        resets = len(reset_paths(current.layout, current.off, aligned.off))
        if not later:
            return live.analyse(
                *key, previous_ts, current.timestamp, histograms, counter_resets=resets
            )
        chain.last = None  # the states after the late one were recomputed: read them anew
        live.rewind(key, current.timestamp)
        live.analyse(
            *key, previous_ts, current.timestamp, histograms, evaluate=False,
            counter_resets=resets,
        )  # fmt: skip
        previous = current
        for position, ts in enumerate(later):
            state = chain.state(ts)
            before = align(state.layout, previous, chain.earlier(chain.times.index(ts) - 1))
            histograms = slice_histograms(state.layout, state.eff, before.eff, before.incompatible)
            newest = position == len(later) - 1
            resets = len(reset_paths(state.layout, state.off, before.off))
            results = live.analyse(
                *key, previous.timestamp, ts, histograms, evaluate=newest, counter_resets=resets
            )
            previous = state
        return results


def _transient(error: BaseException) -> bool:
    """A system error (no memory, too many open files, I/O) rather than a damaged file."""
    return isinstance(error, MemoryError) or (
        isinstance(error, OSError) and error.errno is not None
    )
