"""The states of a processed chain (one run's subsystem): cache look-ups and recomputation.

A mixin of :class:`processing.pipeline.Pipeline` (it uses the pipeline's
``cache``, ``encoder``, ``data`` and ``settings``): the cached effective
cumulative of any processed snapshot, regenerated from the snapshot files if
its cache file was lost, and the carrying forward of states after a late
snapshot. See the pipeline's documentation for the whole data path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from overwatch import timestamps
from processing.ingest import records
from processing.ingest.cache import CachedSnapshot, CacheError, split_cache_name, states_covering
from processing.ingest.resets import advance, align

log = logging.getLogger("processing.pipeline")


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


class ChainStates:
    """Cached states of chains; mixed into the pipeline."""

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

        def candidates():
            for position in range(index - 2, -1, -1):
                ts = chain.times[position]
                name = chain.cached.get(chain.name_of(ts)[: -len(".root")])
                parts = split_cache_name(name) if name else None
                try:
                    layout = (
                        self.cache.layout(chain.run, chain.subsystem, parts[1]) if parts else None
                    )
                except CacheError:
                    layout = None
                yield layout, lambda ts=ts: self._state(chain, ts)

        return lambda wanted: states_covering(wanted, candidates())

    def _store(self, chain: Chain, stem: str, existing, layout, state) -> tuple[str, bool]:
        """Write the cache file unless an equal one is there; (path, whether written).

        Equal: same layout and offsets, and contents equal up to the rounding of
        ``raw = eff - offsets`` (the existing file is then the exact answer, so a
        crash and a restart leave bit-identical files).
        """
        if existing is not None and same_state(existing, layout, state):
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


def same_state(existing: CachedSnapshot, layout, state) -> bool:
    if existing.layout.hash != layout.hash:
        return False
    if existing.off is None or state.off is None:
        return (
            existing.off is None and state.off is None and np.array_equal(existing.eff, state.eff)
        )
    return np.array_equal(existing.off, state.off) and np.allclose(
        existing.eff, state.eff, rtol=1e-12, atol=0.0
    )
