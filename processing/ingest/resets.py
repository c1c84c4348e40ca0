"""Effective cumulative content: continuing each histogram across counter resets.

A sender's histograms are cumulative, but a sender may restart and begin again
from zero (a counter reset). Processing keeps, per histogram, an *offset* (the
effective content it had when its counter last reset) and the *effective*
cumulative ``eff = raw + offset``. Then ``eff`` never goes down, a slice is
always ``eff(t1) - eff(t0)``, and a reset starts a new cumulative segment
instead of producing negative bins.

Reset rule: a histogram's counter reset when one of its quantities that only
grow while filling (see ``Entry.monotone_parts``: counts, Σw², Σw for
profiles, entries) drops below the previous effective content by more than
``tolerance * max(|previous|, 1)`` in some bin. A drop within the tolerance is
rounding (e.g. a merger summing in another order): that bin keeps its previous
value so a slice never shows a negative count.

Alignment: the previous state is taken, per path, from the latest earlier
snapshot that has the path (a histogram missing for a while continues where it
was). A path whose binning (or profile-ness, or loss of Σw²) changed cannot be
continued: it is reported as incompatible and starts afresh from its raw
content; the caller records an error for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from processing.ingest.cache import CachedSnapshot
from processing.ingest.cache_layout import Entry, Layout

log = logging.getLogger(__name__)

#: Given the paths still missing, earlier snapshots holding some of them, newest first.
Older = Callable[[set[str]], Iterable[CachedSnapshot]]


@dataclass
class Aligned:
    """A previous state laid out like the current snapshot (zeros where there is none)."""

    eff: np.ndarray
    off: np.ndarray | None
    present: np.ndarray  # bool per histogram: a previous state exists and is compatible
    incompatible: dict[str, str] = field(default_factory=dict)  # path -> why

    @property
    def complete(self) -> bool:
        return bool(self.present.all())


@dataclass
class Advanced:
    """The effective state of a new snapshot."""

    eff: np.ndarray
    off: np.ndarray | None
    resets: list[str] = field(default_factory=list)  # paths whose counter reset here


def empty(layout: Layout) -> Aligned:
    return Aligned(np.zeros(layout.size), None, np.zeros(len(layout), dtype=bool))


def compatibility(entry: Entry, before: Entry) -> str:
    """Empty when ``before`` can be continued by ``entry``, else the reason."""
    if entry.binning_key != before.binning_key:
        if entry.is_profile != before.is_profile:
            return f"class changed from {before.class_name} to {entry.class_name}"
        return (
            "binning changed from "
            + " x ".join(f"{a.nbins}[{a.low:g},{a.high:g}]" for a in before.axes)
            + " to "
            + " x ".join(f"{a.nbins}[{a.low:g},{a.high:g}]" for a in entry.axes)
        )
    if before.has_sumw2 and not entry.has_sumw2:
        return "sum of squared weights disappeared"
    return ""


def copy_block(entry: Entry, target: np.ndarray, before: Entry, source: np.ndarray) -> None:
    """Write ``before``'s block into ``entry``'s block, converting what differs.

    Σw² of an unweighted histogram equals its contents; Σw² of an unweighted
    profile equals Σw; statistics are matched by name.
    """
    parts, old, n = entry.parts, before.parts, entry.ncells

    def part(name: str, fallback: str) -> np.ndarray:
        name = name if name in old else fallback
        array = source[old[name] : old[name] + n]
        return np.abs(array) if name == "values" else array

    target[:n] = source[:n]
    if "sumw2" in parts:
        target[parts["sumw2"] : parts["sumw2"] + n] = part("sumw2", "values")
    if "bin_entries" in parts:
        target[parts["bin_entries"] : parts["bin_entries"] + n] = part("bin_entries", "values")
    if "bin_sumw2" in parts:
        target[parts["bin_sumw2"] : parts["bin_sumw2"] + n] = part("bin_sumw2", "bin_entries")
    target[parts["entries"]] = source[old["entries"]]
    stats_at = {name: old["stats"] + i for i, name in enumerate(before.stat_names)}
    for i, name in enumerate(entry.stat_names):
        at = stats_at.get(name)
        target[parts["stats"] + i] = source[at] if at is not None else 0.0


def align(layout: Layout, previous: CachedSnapshot | None, older: Older | None = None) -> Aligned:
    """The state before a snapshot of ``layout``: ``previous``, then ``older`` for missing paths."""
    if previous is not None and previous.layout.hash == layout.hash:
        return Aligned(previous.eff, previous.off, np.ones(len(layout), dtype=bool))
    aligned = empty(layout)
    off = np.zeros(layout.size)
    any_offset = False
    missing = list(range(len(layout)))

    def sources() -> Iterable[CachedSnapshot]:
        if previous is not None:
            yield previous
        if older is not None and missing:
            yield from older({layout.entries[i].path for i in missing})

    for source in sources():
        still = []
        for i in missing:
            entry = layout.entries[i]
            j = source.layout.index.get(entry.path)
            if j is None:
                still.append(i)
                continue
            before = source.layout.entries[j]
            why = compatibility(entry, before)
            if why:  # the latest state cannot be continued: do not look further back
                aligned.incompatible[entry.path] = why
                continue
            copy_block(
                entry, layout.block(aligned.eff, i), before, source.layout.block(source.eff, j)
            )
            if source.off is not None:
                copy_block(entry, layout.block(off, i), before, source.layout.block(source.off, j))
                any_offset = True
            aligned.present[i] = True
        missing[:] = still
        if not missing:
            break
    aligned.off = off if any_offset else None
    return aligned


def advance(layout: Layout, raw: np.ndarray, before: Aligned, tolerance: float) -> Advanced:
    """Effective content of a snapshot whose raw content is ``raw``, given the state before."""
    previous = before.eff
    candidate = raw + before.off if before.off is not None else np.array(raw)
    monotone = layout.monotone
    if not before.complete:
        monotone = monotone & np.repeat(before.present, layout.sizes)
    drop = previous - candidate
    suspects = np.flatnonzero((drop > 0) & monotone)
    if suspects.size == 0:
        return Advanced(candidate, before.off)
    scale = np.maximum(np.abs(previous[suspects]), 1.0)
    beyond = drop[suspects] > tolerance * scale
    reset = np.zeros(len(layout), dtype=bool)
    if beyond.any():
        owners = np.searchsorted(layout.starts, suspects[beyond], side="right") - 1
        reset[owners] = True
    rounding = suspects[~beyond]
    rounding = rounding[~reset[np.searchsorted(layout.starts, rounding, side="right") - 1]]
    candidate[rounding] = previous[rounding]  # rounding: keep the previous value
    if not reset.any():
        return Advanced(candidate, before.off)
    offsets = np.zeros(layout.size) if before.off is None else np.array(before.off)
    paths = []
    for i in np.flatnonzero(reset).tolist():
        start, stop = int(layout.starts[i]), int(layout.starts[i] + layout.sizes[i])
        offsets[start:stop] = previous[start:stop]
        candidate[start:stop] = raw[start:stop] + previous[start:stop]
        paths.append(layout.entries[i].path)
    return Advanced(candidate, offsets, paths)


def reset_paths(layout: Layout, off: np.ndarray | None, before: np.ndarray | None) -> list[str]:
    """Paths of ``layout`` whose counter restarted between two states (their offsets differ).

    ``off`` is the later state's offsets, ``before`` the earlier one's laid out
    like it (``Aligned.off``); None means no offset (zeros). A reset always
    moves a histogram's offset to its content before the reset, and nothing
    else moves it.
    """
    if off is None:
        return []
    changed = off != 0 if before is None else off != before
    if not changed.any():
        return []
    owners = np.unique(np.searchsorted(layout.starts, np.flatnonzero(changed), side="right") - 1)
    return [layout.entries[i].path for i in owners.tolist()]
