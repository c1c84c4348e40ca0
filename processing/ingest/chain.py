"""The chain store of one run's subsystem: its times, its states, the walk over earlier states.

A chain is the sequence of processed snapshots of one (run, subsystem). Its
:class:`ChainStore` is the one owner of:

- its **times** (processed snapshots, ascending), their file names, and the
  files found bad;
- its **states** (:meth:`ChainStore.state`): the effective cumulative of any
  processed snapshot, from memory (the newest one, kept between snapshots),
  then the array cache, then, for a writable store, regenerated from the
  snapshot files if its cache file was lost;
- the one **walk over earlier states** (:meth:`ChainStore.earlier`): the
  newest earlier snapshots holding histograms a slice's base lacks, which
  ``processing.ingest.resets.align`` needs. The pipeline and the slice reader
  both walk through it;
- **writing** (:meth:`ChainStore.store`, :meth:`ChainStore.recompute`): cache
  files, written unless an equal one is there, and the carrying forward of
  states after a late snapshot.

The pipeline (``processing.pipeline``) holds one writable store per chain it
processes; the slice reader (``processing.slices.reader``) opens read-only ones,
which never regenerate or write anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from overwatch import timestamps
from overwatch.store.layout import DataDir
from processing.ingest import records
from processing.ingest.cache import (
    ArrayCache,
    CachedSnapshot,
    CacheError,
    split_cache_name,
    states_covering,
)
from processing.ingest.cache_layout import Layout
from processing.ingest.read import SnapshotEncoder
from processing.ingest.resets import advance, align

log = logging.getLogger("processing.pipeline")


@dataclass
class Writer:
    """What a writable chain store needs beyond the cache: the files and the reset rule."""

    data: DataDir
    encoder: SnapshotEncoder
    reset_tolerance: float
    events_path: str | None = None  # the events histogram (Subsystem.n_events), if any


@dataclass
class ChainStore:
    """One run's subsystem: processed times, states in memory and cache, earlier-state walk."""

    run: int
    subsystem: str
    times: list[float]  # processed, ascending
    cache: ArrayCache
    writer: Writer | None = None  # None: read-only (a reader's view of the chain)
    bad: set[str] = field(default_factory=set)
    names: dict[float, str] = field(default_factory=dict)  # timestamp -> file name
    parsed: dict[str, float | None] = field(default_factory=dict)  # file name -> timestamp
    last: CachedSnapshot | None = None  # the newest state, kept between snapshots
    listed: tuple = ()  # (path, class) of what the newest snapshot shows, as last recorded
    cached: dict[str, str] = field(default_factory=dict)  # snapshot stem -> cache file name

    @classmethod
    def open(
        cls,
        run: int,
        subsystem: str,
        times: Iterable[float],
        cache: ArrayCache,
        writer: Writer | None = None,
        bad: Iterable[str] = (),
        file_names: dict[float, str] | None = None,
    ) -> ChainStore:
        """The store of a chain as the cache holds it now (a writable one tidies first).

        ``file_names`` (timestamp -> snapshot file name) is needed where names are
        not the UTC form of their time (archived runs), e.g. from the records.
        """
        if writer is not None:
            cache.remove_temporary(run, subsystem)
        chain = cls(run, subsystem, sorted(times), cache, writer, set(bad))
        chain.names.update(file_names or {})
        chain.cached = cache.listing(run, subsystem)
        return chain

    # -- names -------------------------------------------------------------------------
    def name_of(self, ts: float) -> str:
        name = self.names.get(ts)
        return name or timestamps.snapshot_filename(self.subsystem, timestamps.from_unix(ts))

    def stem_of(self, ts: float) -> str:
        return self.name_of(ts)[: -len(".root")]

    # -- states ------------------------------------------------------------------------
    def load(self, stem: str, ts: float) -> CachedSnapshot | None:
        """The cached state of a snapshot, or None if its cache file is missing or damaged."""
        name = self.cached.get(stem)
        if name is None:
            return None
        try:
            return self.cache.load(self.run, self.subsystem, name, ts)
        except CacheError as error:
            log.warning("ignoring cache of %s: %s", stem, error)
            return None

    def state(self, ts: float) -> CachedSnapshot:
        """The state of a processed snapshot: memory, cache, else regenerated from the files.

        A read-only store raises CacheError (asking for ``overwatch db rebuild``)
        instead of regenerating.
        """
        if self.last is not None and self.last.timestamp == ts:
            return self.last
        state = self.load(self.stem_of(ts), ts)
        if state is not None:
            return state
        if self.writer is None:
            raise CacheError(
                f"cache of Run{self.run}/{self.subsystem}/{self.name_of(ts)} is missing "
                "(run `overwatch db rebuild` to recreate the cache)"
            )
        # Walk back to the latest snapshot whose cache survived, then regenerate forward.
        index = self.times.index(ts)
        first = index
        base = None
        while first > 0 and base is None:
            earlier = self.times[first - 1]
            base = self.load(self.stem_of(earlier), earlier)
            if base is None:
                first -= 1
        for position in range(first, index + 1):
            base = self._regenerate(position, base)
        return base

    def earlier(self, base: int) -> Callable[[Iterable[str]], Iterator[CachedSnapshot]]:
        """The walk over snapshots before position ``base``, newest first, holding wanted paths.

        What ``align`` takes to find the earlier state of histograms missing from
        the base snapshot. A snapshot's layout comes from its cache file name, so
        files holding none of the wanted paths are never opened.
        """

        def candidates() -> Iterator[tuple[Layout | None, Callable[[], CachedSnapshot | None]]]:
            for position in range(base - 1, -1, -1):
                ts = self.times[position]
                name = self.cached.get(self.stem_of(ts))
                parts = split_cache_name(name) if name else None
                try:
                    layout = (
                        self.cache.layout(self.run, self.subsystem, parts[1]) if parts else None
                    )
                except CacheError:
                    layout = None
                yield layout, lambda ts=ts: self._earlier_state(ts)

        return lambda wanted: states_covering(wanted, candidates())

    def _earlier_state(self, ts: float) -> CachedSnapshot | None:
        if self.writer is not None:
            return self.state(ts)
        return self.load(self.stem_of(ts), ts)  # a reader passes over a lost file

    def _regenerate(self, position: int, previous: CachedSnapshot | None) -> CachedSnapshot:
        writer = self._writer()
        ts = self.times[position]
        path = writer.data.snapshot_path(self.run, self.subsystem, self.name_of(ts))
        log.warning("Run%d/%s: cache of %s missing: regenerating it from the snapshot",
                    self.run, self.subsystem, path.name)  # fmt: skip
        try:
            encoded = writer.encoder.read(path)
        except Exception as error:
            raise CacheError(f"cannot regenerate the cache of {path}: {error}") from error
        aligned = align(encoded.layout, previous, self.earlier(position - 1))
        state = advance(encoded.layout, encoded.raw, aligned, writer.reset_tolerance)
        self.store(self.stem_of(ts), None, encoded.layout, state)
        self.cache.write_objects(self.run, self.subsystem, self.stem_of(ts), encoded.objects)
        return CachedSnapshot(ts, encoded.layout, state.eff, state.off)

    # -- writing -----------------------------------------------------------------------
    def _writer(self) -> Writer:
        if self.writer is None:
            raise RuntimeError(f"the chain store of Run{self.run}/{self.subsystem} is read-only")
        return self.writer

    def store(self, stem: str, existing, layout: Layout, state) -> tuple[str, bool]:
        """Write the cache file unless an equal one is there; (path, whether written).

        Equal: same layout and offsets, and contents equal up to the rounding of
        ``raw = eff - offsets`` (the existing file is then the exact answer, so a
        crash and a restart leave bit-identical files).
        """
        self._writer()
        if existing is not None and same_state(existing, layout, state):
            state.eff, state.off = existing.eff, existing.off
            return self.cache.relative(self.run, self.subsystem, self.cached[stem]), False
        relative = self.cache.write(self.run, self.subsystem, stem, layout, state.eff, state.off)
        self.cached[stem] = Path(relative).name
        return relative, True

    def recompute(self, inserted: CachedSnapshot, later: list[float]) -> list[records.LaterUpdate]:
        """Carry a late snapshot's state forward through the ones recorded after it."""
        writer = self._writer()
        updates: list[records.LaterUpdate] = []
        previous = inserted
        for position, ts in enumerate(later):
            current = self.state(ts)
            index = self.times.index(ts)
            aligned = align(current.layout, previous, self.earlier(index - 1))
            state = advance(current.layout, current.raw(), aligned, writer.reset_tolerance)
            _, changed = self.store(self.stem_of(ts), current, current.layout, state)
            recomputed = CachedSnapshot(ts, current.layout, state.eff, state.off)
            updates.append(
                records.LaterUpdate(
                    ts,
                    resets=len(state.resets),
                    start=inserted.timestamp if position == 0 else None,
                    n_events=self.events(recomputed) if ts == self.times[-1] else None,
                )
            )
            nxt = later[position + 1] if position + 1 < len(later) else None
            if not changed and nxt is not None:
                following = self.load(self.stem_of(nxt), nxt)
                if following is not None and following.layout.hash == current.layout.hash:
                    break  # nothing downstream can change any more
            previous = recomputed
        return updates

    def events(self, state: CachedSnapshot) -> float | None:
        """Events of the run so far: entries of the events histogram (effective content)."""
        path = self.writer.events_path if self.writer is not None else None
        if not path:
            return None
        return state.layout.entries_value(state.eff, path)


def same_state(existing: CachedSnapshot, layout: Layout, state) -> bool:
    if existing.layout.hash != layout.hash:
        return False
    if existing.off is None or state.off is None:
        return (
            existing.off is None and state.off is None and np.array_equal(existing.eff, state.eff)
        )
    return np.array_equal(existing.off, state.off) and np.allclose(
        existing.eff, state.eff, rtol=1e-12, atol=0.0
    )
