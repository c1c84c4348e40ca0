"""The on-disk format of trend stores: layouts, chunk files, the absent marker.

See :mod:`processing.analysis.trend_store` for how rows are appended, replaced, repaired
and read. This module holds what both reading and writing need to agree on:
file names, row layout, the column list of a layout and its hash, and a small
process-wide cache of parsed layouts, and the lazy window of last points the
checks read.

Layouts. A row whose keys are all columns of the current layout reuses it: a
column without a value in that row holds the *absent* marker (a NaN with a
private payload, never produced by arithmetic), which readers skip, so a
histogram that disappears simply stops, and a plugin value missing once does
not create a layout. A key the current layout lacks (a histogram appears),
or more than half the columns absent, starts a new layout with exactly the
row's keys, in the row's order. Everything depends only on the sequence of
appended rows, so appending the same rows in time order into an empty
directory (``db rebuild``) reproduces the same series and the same files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from overwatch.lru import LRU

if TYPE_CHECKING:
    from processing.analysis.trend_store import TrendStore

TrendKey = tuple[str, str]
Series = tuple[np.ndarray, np.ndarray]

FORMAT = 1
DEFAULT_CHUNK_ROWS = 4096
ROW_DTYPE = np.dtype("<f8")
ITEM = ROW_DTYPE.itemsize
#: Bits of the "no value in this row" marker: a quiet NaN with a payload arithmetic never makes.
ABSENT_BITS = 0x7FF8_0000_0BAD_0001
ABSENT = np.array([ABSENT_BITS], dtype=np.uint64).view(np.float64)[0]
#: Reuse the current layout for a row only while at most this fraction of its columns is absent.
MAX_ABSENT_FRACTION = 0.5

LAYOUT_FILE = re.compile(r"^(\d{6,})-([0-9a-f]{12})\.json$")
CHUNK_FILE = re.compile(r"^(\d{6,})-([0-9a-f]{12})\.(\d{6,})\.f64$")

EMPTY = np.empty(0, dtype=np.float64)
COPY_BLOCK = 8 << 20


@dataclass(eq=False)
class Layout:
    seq: int
    id: str
    columns: tuple[TrendKey, ...]
    index: dict[TrendKey, int]
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.columns) + 1


@dataclass(eq=False)
class Chunk:
    layout: Layout
    number: int
    path: Path
    rows: int


def digest(columns: tuple[TrendKey, ...]) -> str:
    text = json.dumps([list(c) for c in columns], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# Parsed layouts by (file, mtime, size): immutable once written, and a 5,000-column
# layout costs milliseconds to parse, which web requests should pay once.
_LAYOUT_CACHE_SIZE = 128
_layout_cache: LRU[tuple[str, int, int], tuple[tuple[TrendKey, ...], dict]] = LRU(
    _LAYOUT_CACHE_SIZE
)


def read_columns(
    path: Path, expected_hash: str
) -> tuple[tuple[TrendKey, ...], dict[TrendKey, int]]:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    found = _layout_cache.get(key)
    if found is not None:
        return found
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a trend layout of format {FORMAT}")
    raw = data.get("columns")
    if not isinstance(raw, list) or not all(
        isinstance(c, list) and len(c) == 2 and all(isinstance(s, str) for s in c) for c in raw
    ):
        raise ValueError("'columns' must be a list of [path, value name] pairs")
    columns = tuple((c[0], c[1]) for c in raw)
    if digest(columns) != expected_hash:
        raise ValueError("its columns do not match the hash in its name")
    index = {column: i for i, column in enumerate(columns)}
    if len(index) != len(columns):
        raise ValueError("a column is listed twice")
    _layout_cache.put(key, (columns, index))
    return columns, index


class TrendWindow(Mapping[TrendKey, Series]):
    """{(path, name): (times, values)} of the newest ``n`` points, each read on first use.

    Made by :meth:`TrendStore.window` for ``CheckEngine.evaluate(trends=...)``:
    iterating or testing membership reads no points, and the chunk files are
    mapped once for all the series a check pass reads.
    """

    def __init__(self, store: TrendStore, n: int) -> None:
        self._store = store
        self._n = n
        self._keys = dict.fromkeys(store.names())
        self._maps: dict[tuple, np.ndarray] = {}  # chunk file and rows -> its map
        self._read: dict[TrendKey, Series] = {}

    def __getitem__(self, key: TrendKey) -> Series:
        found = self._read.get(key)
        if found is None:
            if key not in self._keys:
                raise KeyError(key)
            found = self._read[key] = self._store._last(key, self._n, self._maps)
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[TrendKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
