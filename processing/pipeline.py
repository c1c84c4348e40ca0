"""The processing pass: new snapshot files -> array cache + ZODB records + latest slices.

For each run and subsystem, new snapshots are processed in time order (the
order between subsystems does not matter; each has its own chain). For one
snapshot:

1. its previous state is the cache of the latest earlier processed snapshot
   (kept in memory between snapshots, read from the cache after a restart;
   a ROOT file is never read twice);
2. the file is read with uproot once (``processing.encode``) - or, when a cache
   file for it already exists (a crash after writing it, ``db rebuild``), the
   raw content is taken from that file instead;
3. its effective cumulative is computed (``processing.resets``) and written
   atomically to the cache;
4. record, latest slice (this cumulative minus the previous) and run metadata
   are committed in one idempotent transaction (``processing.records``).

Run metadata: ``Subsystem.start``/``end`` are its first and last snapshot
(``Run.start``/``end`` span the subsystems; a run is ongoing while
``Run.is_ongoing(now, processing.ongoing_minutes * 60)``, see
:func:`processing.records.run_status`). ``Subsystem.n_events`` is the entries
count (ROOT's ``fEntries``) of the histogram ``processing.events_histogram[SYS]``
in the latest effective cumulative: ROOT adds one entry per ``Fill``, so a
histogram filled once per event counts events whatever its binning, weights or
overflow, and the effective content keeps counting across counter resets.

Late snapshots: a file whose timestamp is older than one already processed for
the same subsystem is inserted where it belongs. The snapshots after it are
recomputed from the cache (their raw content is ``eff - offsets``) so counter
resets stay right, and the slice of the next one now starts at the late one.
Nothing is re-read from ROOT.

Bad input: a corrupt, truncated or empty snapshot, or one whose name holds no
valid time, is recorded in ``Subsystem.bad_snapshots`` with the reason and
skipped; the pass goes on. Any other failure (database away, disk full) aborts
that subsystem for this pass; its in-memory state is dropped and the next pass
starts again from what was committed.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ZODB

from overwatch import timestamps
from overwatch.config import ProcessingSettings
from overwatch.store.layout import SNAPSHOT_FILE, DataDir
from processing import records
from processing.cache import ArrayCache, CachedSnapshot, CacheError
from processing.encode import SnapshotEncoder
from processing.resets import advance, align

log = logging.getLogger(__name__)

Key = tuple[int, str]


@dataclass
class PassReport:
    processed: int = 0
    bad: int = 0
    failed: list[str] = field(default_factory=list)  # "Run<N>/<SYS>: error"


class Scanner:
    """Lists snapshot files, skipping subsystem directories unchanged since last time."""

    SETTLE = 2.0  # seconds: a directory modified this recently is listed again (mtime ticks)

    def __init__(self, data_dir: str | Path) -> None:
        self.data = DataDir(data_dir)
        self._seen: dict[Path, tuple[int, float]] = {}

    def scan(self, force: set[Key] | None = None) -> dict[Key, list[str]]:
        force = force or set()
        found: dict[Key, list[str]] = {}
        root = self.data.root
        if not root.is_dir():
            return found
        for run_entry in os.scandir(root):
            if not (run_entry.name.startswith("Run") and run_entry.name[3:].isdigit()):
                continue
            if not run_entry.is_dir():
                continue
            run = int(run_entry.name[3:])
            for sub_entry in os.scandir(run_entry.path):
                if not sub_entry.is_dir():
                    continue
                key = (run, sub_entry.name)
                path = Path(sub_entry.path)
                mtime = sub_entry.stat().st_mtime_ns
                seen = self._seen.get(path)
                if key not in force and seen and seen[0] == mtime:
                    if seen[1] - mtime / 1e9 > self.SETTLE:
                        continue
                listed_at = time.time()
                names = [
                    n
                    for n in os.listdir(path)
                    if SNAPSHOT_FILE.match(n) and n.startswith(f"{sub_entry.name}hists.")
                ]
                self._seen[path] = (mtime, listed_at)
                found[key] = names
        return found


@dataclass
class Chain:
    """In-memory view of one run's subsystem: what is processed, what is cached."""

    run: int
    subsystem: str
    times: list[float]  # processed, ascending
    bad: set[str]
    cached: dict[str, str]  # snapshot stem -> cache file name
    names: dict[float, str] = field(default_factory=dict)  # timestamp -> file name
    parsed: dict[str, float | None] = field(default_factory=dict)  # file name -> timestamp
    last: CachedSnapshot | None = None

    def name_of(self, ts: float) -> str:
        name = self.names.get(ts)
        return name or timestamps.snapshot_filename(self.subsystem, timestamps.from_unix(ts))


class Pipeline:
    """Processes snapshot files of one data directory into the cache and the database."""

    def __init__(
        self,
        data_dir: str | Path,
        db: ZODB.DB,
        settings: ProcessingSettings | None = None,
    ) -> None:
        self.settings = settings or ProcessingSettings()
        self.data = DataDir(data_dir)
        self.db = db
        self.cache = ArrayCache(data_dir, fsync=self.settings.cache_fsync)
        self.encoder = SnapshotEncoder()
        self.scanner = Scanner(data_dir)
        self.chains: dict[Key, Chain] = {}
        self._retry: set[Key] = set()
        self._last_status = 0.0

    # -- passes -----------------------------------------------------------------
    def run_pass(self, hints: set[Key] | None = None) -> PassReport:
        """Process every new snapshot on disk; ``hints`` are directories to list for sure."""
        started = time.time()
        report = PassReport()
        force = set(self._retry) | set(hints or ())
        self._retry.clear()
        changed = self.scanner.scan(force)
        for key, names in sorted(changed.items()):
            try:
                self._process_directory(key, names, report)
            except Exception as error:  # one subsystem's failure must not stop the others
                log.exception("processing Run%d/%s failed; will retry", *key)
                report.failed.append(f"Run{key[0]}/{key[1]}: {error}")
                self.chains.pop(key, None)
                self._retry.add(key)
        for key, chain in self.chains.items():
            if key not in changed:
                chain.last = None  # idle: free its arrays; the cache has them (mmap on demand)
        finished = time.time()
        if report.processed or report.failed or finished - self._last_status > 60:
            try:
                records.commit_pass(self.db, started, finished, "; ".join(report.failed)[:1000])
                self._last_status = finished
            except Exception:  # the status is informative; a pass is not lost without it
                log.warning("could not record the pass status", exc_info=True)
        return report

    def run_until_idle(self, max_passes: int = 1000) -> PassReport:
        """Pass after pass until nothing new is found (``overwatch process --once``)."""
        total = PassReport()
        for _ in range(max_passes):
            report = self.run_pass()
            total.processed += report.processed
            total.bad += report.bad
            total.failed.extend(report.failed)
            if report.failed or not (report.processed or report.bad):
                break
        return total

    # -- one subsystem ------------------------------------------------------------
    def _chain(self, key: Key) -> Chain:
        chain = self.chains.get(key)
        if chain is None:
            known = records.load_chain(self.db, *key)
            self.cache.remove_temporary(*key)
            cached = self.cache.listing(*key)
            chain = Chain(key[0], key[1], sorted(known.times), known.bad, cached)
            if len(self.chains) > 32:  # keep memory bounded: old runs are rarely touched
                self.chains.pop(next(iter(self.chains)))
            self.chains[key] = chain
        return chain

    def _process_directory(self, key: Key, names: list[str], report: PassReport) -> None:
        chain = self._chain(key)
        processed = set(chain.times)
        todo: list[tuple[float, str]] = []
        for name in names:
            if name in chain.bad:
                continue
            if name not in chain.parsed:
                try:
                    instant = timestamps.parse_snapshot_filename(name).instant
                    chain.parsed[name] = timestamps.to_unix(instant)
                except ValueError as error:
                    chain.parsed[name] = None
                    self._bad(chain, name, f"invalid snapshot name: {error}", report)
                    continue
            ts = chain.parsed[name]
            if ts is None:
                continue
            chain.names[ts] = name
            if ts not in processed:
                todo.append((ts, name))
        for ts, name in sorted(todo):
            self._process(chain, ts, name, report)

    def _bad(self, chain: Chain, name: str, reason: str, report: PassReport) -> None:
        log.warning(
            "Run%d/%s/%s: bad snapshot, skipped: %s", chain.run, chain.subsystem, name, reason
        )
        records.commit_bad(self.db, chain.run, chain.subsystem, name, reason)
        chain.bad.add(name)
        report.bad += 1

    def _process(self, chain: Chain, ts: float, name: str, report: PassReport) -> None:
        path = self.data.subsystem_dir(chain.run, chain.subsystem) / name
        stem = name[: -len(".root")]
        index = bisect.bisect_left(chain.times, ts)
        previous_ts = chain.times[index - 1] if index else None
        later = chain.times[index:]
        previous = self._state(chain, previous_ts) if previous_ts is not None else None

        existing = self._load(chain, stem, ts)
        errors: list[tuple[str, str]] = []
        if existing is not None:
            layout, raw = existing.layout, existing.raw()
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
            if not len(encoded.layout):
                reasons = "; ".join(f"{s.path}: {s.reason}" for s in encoded.skipped[:5])
                self._bad(chain, name, f"no readable histogram ({reasons or 'empty file'})", report)
                return
            layout, raw = encoded.layout, encoded.raw
            errors += [(s.path, s.reason) for s in encoded.unreadable]

        aligned = align(layout, previous, self._older(chain, index))
        state = advance(layout, raw, aligned, self.settings.reset_tolerance)
        errors += sorted(aligned.incompatible.items())
        if state.resets:
            log.warning(
                "Run%d/%s %s: counter reset of %d histogram(s) (e.g. %s): new cumulative segment",
                chain.run, chain.subsystem, name, len(state.resets), state.resets[0],
            )  # fmt: skip
        for path_name, message in aligned.incompatible.items():
            log.warning("Run%d/%s %s: %s: %s", chain.run, chain.subsystem, name, path_name, message)
        cache_file, _ = self._store(chain, stem, existing, layout, state)
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
            n_events=self._events(chain, current),
        )
        if previous is None or previous.layout.hash != layout.hash:
            outcome.histograms = [(e.path, e.class_name) for e in layout.entries]
            if previous is not None:
                outcome.gone = [p for p in previous.layout.index if p not in layout.index]
        chain.times.insert(index, ts)  # before recomputing: later ones now follow this one
        try:
            if later:
                log.info("Run%d/%s %s arrived late: recomputing %d later snapshot(s)",
                         chain.run, chain.subsystem, name, len(later))  # fmt: skip
                outcome.later = self._recompute(chain, current, later)
            records.commit_outcome(self.db, outcome)
        except BaseException:
            self.chains.pop((chain.run, chain.subsystem), None)
            raise
        chain.last = current if not later else None
        report.processed += 1

    # -- states --------------------------------------------------------------------
    def _load(self, chain: Chain, stem: str, ts: float) -> CachedSnapshot | None:
        name = chain.cached.get(stem)
        if name is None:
            return None
        try:
            return self.cache.load(chain.run, chain.subsystem, name, ts)
        except CacheError as error:
            log.warning("ignoring cache of %s: %s", stem, error)
            return None

    def _state(self, chain: Chain, ts: float) -> CachedSnapshot:
        """The cached state of a processed snapshot, regenerated from the files if lost."""
        if chain.last is not None and chain.last.timestamp == ts:
            return chain.last
        state = self._load(chain, chain.name_of(ts)[: -len(".root")], ts)
        if state is not None:
            return state
        # Walk back to the latest snapshot whose cache survived, then regenerate forward.
        index = chain.times.index(ts)
        first = index
        base = None
        while first > 0 and base is None:
            earlier = chain.times[first - 1]
            base = self._load(chain, chain.name_of(earlier)[: -len(".root")], earlier)
            if base is None:
                first -= 1
        for position in range(first, index + 1):
            base = self._regenerate(chain, position, base)
        return base

    def _regenerate(self, chain: Chain, position: int, previous) -> CachedSnapshot:
        ts = chain.times[position]
        path = self.data.subsystem_dir(chain.run, chain.subsystem) / chain.name_of(ts)
        log.warning("Run%d/%s: cache of %s missing: regenerating it from the snapshot",
                    chain.run, chain.subsystem, path.name)  # fmt: skip
        try:
            encoded = self.encoder.read(path)
        except Exception as error:
            raise CacheError(f"cannot regenerate the cache of {path}: {error}") from error
        aligned = align(encoded.layout, previous, self._older(chain, position))
        state = advance(encoded.layout, encoded.raw, aligned, self.settings.reset_tolerance)
        self._store(chain, path.name[: -len(".root")], None, encoded.layout, state)
        return CachedSnapshot(ts, encoded.layout, state.eff, state.off)

    def _older(self, chain: Chain, index: int):
        """Snapshots before position ``index - 1``, newest first, holding wanted paths."""

        def search(wanted: set[str]):
            wanted = set(wanted)
            for position in range(index - 2, -1, -1):
                ts = chain.times[position]
                name = chain.cached.get(chain.name_of(ts)[: -len(".root")])
                try:
                    layout = self.cache.layout(chain.run, chain.subsystem, name.rsplit(".", 2)[1])
                except (CacheError, AttributeError, IndexError):
                    layout = None
                if layout is not None and not (wanted & layout.index.keys()):
                    continue
                state = self._state(chain, ts)
                found = wanted & state.layout.index.keys()
                if found:
                    yield state
                    wanted -= found
                    if not wanted:
                        return

        return search

    def _store(self, chain: Chain, stem: str, existing, layout, state) -> tuple[str, bool]:
        """Write the cache file unless an equal one is there; (path, whether written).

        Equal: same layout and offsets, and contents equal up to the rounding of
        ``raw = eff - offsets`` (the existing file is then the exact answer, so a
        crash and a restart leave bit-identical files).
        """
        if existing is not None and _same(existing, layout, state):
            state.eff, state.off = existing.eff, existing.off
            return self.cache.relative(chain.run, chain.subsystem, chain.cached[stem]), False
        relative = self.cache.write(chain.run, chain.subsystem, stem, layout, state.eff, state.off)
        chain.cached[stem] = Path(relative).name
        return relative, True

    def _recompute(self, chain: Chain, inserted: CachedSnapshot, later: list[float]):
        """Carry a late snapshot's state forward through the ones recorded after it."""
        updates: list[records.LaterUpdate] = []
        previous = inserted
        for position, ts in enumerate(later):
            current = self._state(chain, ts)
            index = chain.times.index(ts)
            aligned = align(current.layout, previous, self._older(chain, index))
            state = advance(current.layout, current.raw(), aligned, self.settings.reset_tolerance)
            stem = chain.name_of(ts)[: -len(".root")]
            _, changed = self._store(chain, stem, current, current.layout, state)
            recomputed = CachedSnapshot(ts, current.layout, state.eff, state.off)
            updates.append(
                records.LaterUpdate(
                    ts,
                    resets=len(state.resets),
                    start=inserted.timestamp if position == 0 else None,
                    n_events=self._events(chain, recomputed) if ts == chain.times[-1] else None,
                )
            )
            nxt = later[position + 1] if position + 1 < len(later) else None
            if not changed and nxt is not None:
                following = self._load(chain, chain.name_of(nxt)[: -len(".root")], nxt)
                if following is not None and following.layout.hash == current.layout.hash:
                    break  # nothing downstream can change any more
            previous = recomputed
        return updates

    def _events(self, chain: Chain, state: CachedSnapshot) -> float | None:
        """Events of the run so far: entries of the configured histogram (effective)."""
        path = self.settings.events_histogram.get(chain.subsystem)
        if not path:
            return None
        return state.layout.entries_value(state.eff, path)


def _same(existing: CachedSnapshot, layout, state) -> bool:
    if existing.layout.hash != layout.hash:
        return False
    if existing.off is None or state.off is None:
        return (
            existing.off is None and state.off is None and np.array_equal(existing.eff, state.eff)
        )
    return np.array_equal(existing.off, state.off) and np.allclose(
        existing.eff, state.eff, rtol=1e-12, atol=0.0
    )


def _transient(error: BaseException) -> bool:
    """A system error (no memory, too many open files, I/O) rather than a damaged file."""
    return isinstance(error, MemoryError) or (
        isinstance(error, OSError) and error.errno is not None
    )
