"""Hot and dead cells of a hit map (one EMCal supermodule's ``cellHits`` in a time slice).

The statistical rules, and why:

* **Reference level**: the median count of the *live* (non-zero) cells. A median
  ignores the few hot cells it is meant to find, and leaving out silent cells
  keeps a large dead region from dragging it to zero (the rest of the map can
  still be searched). At low statistics, where empty cells are common, this
  median is a little higher than the plain one, which only makes the search
  more cautious.
* **Enough statistics**: below ``min_median`` counts per cell the map says so
  instead of judging: a Poisson count of a few is too noisy to call anything.
* **Hot**: the count is incompatible with a rate of ``multiple * median``:
  ``count > t`` with ``P(X > t | Poisson(multiple * median)) <= 2.9e-7`` (5 sigma).
  The multiple is the user's threshold: a hot cell is an order of magnitude
  above its neighbours, far beyond the cell-to-cell gain spread (tens of per cent).
  Testing the *multiple*, not the median, makes the false-alarm rate a bound
  that holds at any statistics: a healthy cell has a true rate below
  ``multiple * median`` whenever the multiple exceeds the gain spread, so it
  passes the test with probability < 2.9e-7 per slice (less than one false
  cell in 3,000 supermodule maps, and far less in practice). A plain
  ``count > multiple * median`` would flag Poisson fluctuations of bright
  cells at low statistics; ``median + 5 sqrt(median)`` ignores the gain spread.
* **Dead**: a cell with *no* count where the expected count is at least
  ``min_median_dead``. Then a live cell, even at half the typical gain, is empty
  with probability ``exp(-min_median_dead / 2)``, below 4e-6 at the default 25. Expected count: the map's own
  live median, or, when most of the map is silent (a whole supermodule off),
  ``reference_median``, the typical median of the other maps in the same
  slice: a dead region is zero content while its neighbours have counts.
* **A silent map** (no count at all) among maps with counts is wholly dead
  when the other maps' median *total* (``reference_total``) is at least
  ``min_median_dead``: a live supermodule is then empty with probability below
  ``exp(-min_median_dead / 2)`` even in a slice far too short to judge single
  cells, so a switched-off supermodule is caught on every slice.
* **No decision** is a finding of its own: a map with too few counts to judge
  says so (``enough_statistics``, ``dead_judged``) and its plugin reports no
  trend value for it, so the checks say Null, never Good.

Cells are 0-based ``(column, row)`` indices into the in-range bins, the
convention of the EMCal cell numbering (ROOT bin = index + 1).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, stats

#: One-sided p-value a hot cell must reach against ``multiple * median`` (5 sigma).
P_VALUE = float(stats.norm.sf(5.0))


@dataclass(frozen=True)
class HotCell:
    column: int
    row: int
    count: float
    ratio: float  # count / median


@dataclass
class CellMapReport:
    """Everything the finder concluded about one map."""

    median: float  # median count of the live cells
    enough_statistics: bool  # for the hot-cell search
    threshold: float  # hot above this count (inf when not judged)
    hot: list[HotCell] = field(default_factory=list)
    dead: list[tuple[int, int]] = field(default_factory=list)
    dead_expected: float = 0.0  # expected count the dead cells were judged against (0: not judged)
    dead_judged: bool = True  # False: too few counts to tell dead cells from chance

    @property
    def dead_regions(self) -> list[tuple[int, int, int, int]]:
        return dead_regions(self.dead)


def live_median(counts: np.ndarray) -> float:
    """Median of the cells with counts (0 for a silent map)."""
    live = counts[counts > 0]
    return float(np.median(live)) if live.size else 0.0


@functools.lru_cache(maxsize=4096)  # scipy's isf costs ~0.2 ms; medians repeat (counts)
def hot_threshold(median: float, multiple: float, p_value: float = P_VALUE) -> float:
    """The count above which a cell is hot: P(X > threshold | multiple * median) <= p_value."""
    return float(stats.poisson.isf(p_value, multiple * median))


def find_hot_cells(
    counts: np.ndarray, multiple: float, min_median: float, p_value: float = P_VALUE
) -> tuple[list[HotCell], float, bool]:
    """(hot cells by decreasing count, live median, whether there were enough statistics)."""
    counts = np.asarray(counts, dtype=np.float64)
    median = live_median(counts)
    if median < min_median:
        return [], median, False
    threshold = hot_threshold(median, multiple, p_value)
    columns, rows = np.nonzero(counts > threshold)
    cells = [
        HotCell(int(c), int(r), float(counts[c, r]), float(counts[c, r] / median))
        for c, r in zip(columns, rows, strict=True)
    ]
    cells.sort(key=lambda cell: (-cell.count, cell.column, cell.row))
    return cells, median, True


def find_dead_cells(
    counts: np.ndarray,
    min_median: float,
    reference_median: float | None = None,
    reference_total: float | None = None,
) -> tuple[list[tuple[int, int]], float]:
    """(empty cells judged dead, expected count they were judged against; 0 if not judged)."""
    counts = np.asarray(counts, dtype=np.float64)
    empty = counts <= 0
    if not empty.any():
        return [], 0.0
    if empty.all() and reference_total is not None and reference_total >= min_median:
        columns, rows = np.nonzero(empty)  # a whole map silent while the others count
        cells = [(int(c), int(r)) for c, r in zip(columns, rows, strict=True)]
        return cells, float(reference_total) / counts.size
    expected = live_median(counts)
    if expected < min_median:
        # Own median too low: judge against the other maps only if most of this one is silent
        # (a switched-off supermodule), never a sparsely filled map against a busy one.
        mostly_silent = empty.mean() > 0.5
        if not (mostly_silent and reference_median and reference_median >= min_median):
            return [], 0.0
        expected = float(reference_median)
    columns, rows = np.nonzero(empty)
    return [(int(c), int(r)) for c, r in zip(columns, rows, strict=True)], expected


def dead_regions(cells: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """Bounding boxes ``(col_lo, col_hi, row_lo, row_hi)`` (hi exclusive) of touching dead cells."""
    if not cells:
        return []
    array = np.asarray(cells)
    mask = np.zeros(tuple(array.max(axis=0) + 1), dtype=bool)
    mask[array[:, 0], array[:, 1]] = True
    labels, _count = ndimage.label(mask)
    return [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(labels)]


def inspect_cell_map(
    counts: np.ndarray,
    *,
    multiple: float,
    min_median_hot: float,
    min_median_dead: float,
    reference_median: float | None = None,
    reference_total: float | None = None,
) -> CellMapReport:
    """Hot and dead cells of one in-range hit map (see the module docs for the rules)."""
    hot, median, enough = find_hot_cells(counts, multiple, min_median_hot)
    dead, expected = find_dead_cells(counts, min_median_dead, reference_median, reference_total)
    threshold = hot_threshold(median, multiple) if enough else math.inf
    judged = expected > 0 or not (np.asarray(counts) <= 0).any()
    return CellMapReport(median, enough, threshold, hot, dead, expected, judged)
