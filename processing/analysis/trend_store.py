"""Trend points of one run's subsystem on disk: append-only rows of float64 in chunk files.

Why not ZODB: a subsystem trends about 5,000 series (1,000 histograms × 5
values) and gains one point in each every snapshot, every second; persistent
objects of that size rewritten per snapshot would bloat the database. The
points are derived data (processing recomputes them from the snapshots), so
they live beside the array cache, in ``<data>/cache/Run<run>/<SYS>/trends/``::

    <layout-id>.json             the columns of a layout: [[path, value name], ...]
    <layout-id>.<chunk>.f64      rows [timestamp, v_1 ... v_N], little-endian float64

A layout id is ``<sequence>-<hash of the columns>``: sequence numbers give the
order of the layouts, so reading every chunk of every layout in name order
yields the rows in time order without sorting. A chunk holds at most
``chunk_rows`` rows; then the next chunk starts. Reading one series maps each
chunk and reads one strided column.

Layouts (which columns a row is written under): see :mod:`processing.analysis.trend_format`.

Time rules for :meth:`TrendStore.append` (timestamps are unix seconds; a point
is placed at the END of its slice, the snapshot's instant):

- later than the last row: appended;
- equal to the last row: replaces it (the snapshot was processed again after a
  crash or a restart; appending twice never duplicates a point);
- earlier than the last row: refused with a logged warning (``append`` returns
  False). A late snapshot is handled by :meth:`TrendStore.rewind` to its time
  followed by appending it and the later points again; a full reprocessing opens
  the store with ``rebuild=True``, which starts from an empty directory.

Crashes. A writable store repairs the tail of the last chunk when opened: a
partial row (file size not a multiple of the row width, a kill during a
write) and rows whose timestamp is not finite or not increasing (a file
extended but not yet written when power was lost) are dropped. NaN/inf
values are stored as NaN (a value that could not be computed, e.g. the mean of
an empty histogram) and returned as such. Writes are ``pwrite`` of whole
rows, flushed to disk only with ``fsync=True``.

One writer per directory (the processing service); any number of read-only
stores (web workers, other processes) may read at the same time, and see new
rows on their next call. Files are only ever appended to, rewritten in place
row by row (a replaced point), or replaced whole by rename (rows dropped at a
repair, a rewind, the points of snapshots ``db prune`` removed, or a replaced
point whose layout changed): never truncated, so a reader's memory map stays
valid. A store object is not thread-safe; use
one per thread.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from overwatch.store.layout import atomic_write, fsync_directory
from processing.analysis.trend_format import (
    ABSENT,
    ABSENT_BITS,
    CHUNK_FILE,
    COPY_BLOCK,
    DEFAULT_CHUNK_ROWS,
    EMPTY,
    FORMAT,
    ITEM,
    LAYOUT_FILE,
    MAX_ABSENT_FRACTION,
    ROW_DTYPE,
    Chunk,
    Layout,
    Series,
    TrendKey,
    TrendWindow,
    digest,
    read_columns,
)

log = logging.getLogger(__name__)


class TrendStoreError(RuntimeError):
    """A trend store cannot do what was asked (read-only store, bad values)."""


class TrendStore:
    """The trend points of one (run, subsystem): see the module documentation.

    ``readonly`` stores never modify files (use them outside the processing
    service); a writable one repairs a crashed tail when opened, and with
    ``rebuild`` first deletes every trend file of the directory.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        fsync: bool = False,
        readonly: bool = False,
        rebuild: bool = False,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        if readonly and rebuild:
            raise ValueError("a read-only trend store cannot be rebuilt")
        self.directory = Path(directory)
        self.fsync = fsync
        self.readonly = readonly
        self.chunk_rows = chunk_rows
        #: Points refused because older than the last row (see ``append``).
        self.refused = 0
        self._listing: frozenset[str] | None = None
        self._layouts: list[Layout] = []
        self._chunks: list[Chunk] = []
        self._max_seq = 0
        self._warned: set[str] = set()
        if rebuild:
            self._delete_all()
        self._refresh()
        if not readonly:
            self._repair()

    # -- reading ---------------------------------------------------------------------
    def names(self) -> list[TrendKey]:
        """Every (path, value name) with at least one row, in order of first appearance."""
        self._refresh()
        seen: dict[TrendKey, None] = {}
        for layout in self._layouts:
            if any(chunk.rows for chunk in layout.chunks):
                seen.update(dict.fromkeys(layout.columns))
        return list(seen)

    def __len__(self) -> int:
        """Number of rows (snapshots trended)."""
        self._refresh()
        return sum(chunk.rows for chunk in self._chunks)

    def times(self) -> np.ndarray:
        """The timestamp of every row, ascending."""
        self._refresh()
        parts = [np.array(self._map(c)[:, 0]) for c in self._chunks if c.rows]
        return np.concatenate(parts) if parts else EMPTY.copy()

    def last_time(self) -> float | None:
        """Timestamp of the last row, None when empty."""
        self._refresh()
        return self._tail_time()

    def series(
        self, path: str, name: str, *, start: float | None = None, end: float | None = None
    ) -> Series:
        """(times, values) of one value, ascending; empty arrays if unknown.

        ``start``/``end`` (unix s, inclusive) restrict the time range.
        """
        self._refresh()
        key = (path, name)
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for chunk in self._chunks:
            column = chunk.layout.index.get(key)
            if column is None or not chunk.rows:
                continue
            mapped = self._map(chunk)
            t = mapped[:, 0]
            lo = 0 if start is None else int(np.searchsorted(t, start, side="left"))
            hi = chunk.rows if end is None else int(np.searchsorted(t, end, side="right"))
            if lo >= hi:
                continue
            t = np.array(t[lo:hi])
            v = np.array(mapped[lo:hi, column + 1])
            present = v.view(np.uint64) != ABSENT_BITS
            if not present.all():
                t, v = t[present], v[present]
            times.append(t)
            values.append(v)
        if not times:
            return EMPTY.copy(), EMPTY.copy()
        return np.concatenate(times), np.concatenate(values)

    def last(self, path: str, name: str, n: int) -> Series:
        """The newest ``n`` points of one value (fewer if there are fewer), oldest first."""
        self._refresh()
        return self._last((path, name), n, {})

    def window(self, n: int) -> TrendWindow:
        """A read-only mapping {(path, name): last n points}, read lazily, for the checks."""
        self._refresh()
        return TrendWindow(self, n)

    def _last(self, key: TrendKey, n: int, maps: dict[tuple, np.ndarray]) -> Series:
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        need = n
        for chunk in reversed(self._chunks):
            if need <= 0:
                break
            column = chunk.layout.index.get(key)
            if column is None or not chunk.rows:
                continue
            mapped = maps.get((chunk.path, chunk.rows))
            if mapped is None:
                mapped = maps[(chunk.path, chunk.rows)] = self._map(chunk)
            lo = max(chunk.rows - need, 0)
            v = mapped[lo:, column + 1]
            present = v.view(np.uint64) != ABSENT_BITS
            if present.all():
                t, v = np.array(mapped[lo:, 0]), np.array(v)
            else:  # gaps in this layout: look at the whole column of the chunk
                rows = np.flatnonzero(mapped[:, column + 1].view(np.uint64) != ABSENT_BITS)
                rows = rows[-need:]
                t, v = mapped[rows, 0], mapped[rows, column + 1]
            times.append(t)
            values.append(v)
            need -= len(t)
        if not times:
            return EMPTY.copy(), EMPTY.copy()
        return np.concatenate(times[::-1]), np.concatenate(values[::-1])

    # -- writing ---------------------------------------------------------------------
    def append(self, timestamp: float, values: Mapping[TrendKey, float]) -> bool:
        """Store one row: the values of one slice ending at ``timestamp`` (unix s).

        Returns True when stored (appended, or replacing the row of the same
        time), False when refused (older than the last row) or empty.
        """
        if self.readonly:
            raise TrendStoreError(f"trend store {self.directory} is read-only")
        timestamp = float(timestamp)
        if not math.isfinite(timestamp):
            raise ValueError(f"trend timestamp must be finite, got {timestamp!r}")
        if not values:
            log.debug("%s: no trend values at %s: nothing to store", self.directory, timestamp)
            return False
        self._refresh()
        last = self._tail_time()
        replace = last is not None and timestamp == last
        if last is not None and timestamp < last:
            self.refused += 1
            level = logging.WARNING if self.refused == 1 else logging.DEBUG
            log.log(
                level,
                "%s: trend point at %.3f refused: older than the last one (%.3f); "
                "rewind the store to insert it (%d refused so far)",
                self.directory, timestamp, last, self.refused,
            )  # fmt: skip
            return False
        if replace:
            tail = self._chunks[-1]
            # In place when dropping the old row would not change the layout chosen for the
            # new one; otherwise drop it first, exactly as if it had never been appended.
            keeps_rows = tail.rows > 1 or len(tail.layout.chunks) > 1
            if keeps_rows and self._choose_layout(values) is tail.layout:
                self._write(tail, tail.rows - 1, self._row(tail.layout, timestamp, values))
                return True
            self._drop_rows(tail, tail.rows - 1)
            self._remove_empty_layouts()
        layout = self._choose_layout(values) or self._new_layout(tuple(values))
        row = self._row(layout, timestamp, values)
        tail = layout.chunks[-1] if layout.chunks else None
        if tail is None or tail.rows >= self.chunk_rows:
            tail = self._new_chunk(layout)
        self._write(tail, tail.rows, row)
        tail.rows += 1
        return True

    def rewind(self, timestamp: float) -> int:
        """Delete every row at or after ``timestamp``; returns how many were deleted.

        For a late snapshot: rewind to its time, then append its point and the
        (recomputed) later ones again.
        """
        if self.readonly:
            raise TrendStoreError(f"trend store {self.directory} is read-only")
        self._refresh()
        dropped = 0
        for chunk in reversed(list(self._chunks)):
            if not chunk.rows:
                self._drop_rows(chunk, 0)
                continue
            times = self._map(chunk)[:, 0]
            keep = int(np.searchsorted(times, timestamp, side="left"))
            if keep == chunk.rows:
                break
            dropped += chunk.rows - keep
            self._drop_rows(chunk, keep)
            if keep:
                break
        self._remove_empty_layouts()
        if dropped:
            log.info("%s: rewound to %.3f: %d row(s) deleted", self.directory, timestamp, dropped)
        return dropped

    def drop(self, timestamps: Iterable[float]) -> int:
        """Delete the rows at exactly these times, keeping every other row as it is.

        For ``overwatch db prune``: the points of removed snapshots go, those of
        the snapshots kept stay bit for bit (they are not recomputed). A chunk
        that loses rows is replaced whole by rename, as in :meth:`rewind`.
        Returns how many rows were deleted (0 for times that have no row).
        """
        if self.readonly:
            raise TrendStoreError(f"trend store {self.directory} is read-only")
        wanted = np.unique(np.fromiter(timestamps, dtype=np.float64))
        self._refresh()
        dropped = 0
        for chunk in list(self._chunks):
            if not chunk.rows or not wanted.size:
                continue
            hit = np.isin(self._map(chunk)[:, 0], wanted)
            count = int(hit.sum())
            if not count:
                continue
            dropped += count
            if count == chunk.rows:
                self._drop_rows(chunk, 0)
            else:
                self._keep_rows(chunk, np.flatnonzero(~hit))
        self._remove_empty_layouts()
        if dropped:
            log.info("%s: %d trend row(s) deleted", self.directory, dropped)
        return dropped

    def _keep_rows(self, chunk: Chunk, rows: np.ndarray) -> None:
        """Replace a chunk by the given rows of it (ascending), atomically."""
        width = chunk.layout.width
        per_block = max(1, COPY_BLOCK // (width * ITEM))

        def blocks() -> Iterator[bytes]:
            mapped = self._map(chunk)
            for begin in range(0, len(rows), per_block):
                yield mapped[rows[begin : begin + per_block]].tobytes()

        atomic_write(chunk.path, blocks(), fsync=self.fsync)
        chunk.rows = len(rows)

    def _choose_layout(self, values: Mapping[TrendKey, float]) -> Layout | None:
        """The current layout if it can hold this row, None when a new one is needed."""
        current = self._layouts[-1] if self._layouts else None
        if current is None or len(values) > len(current.columns):
            return None
        absent = len(current.columns) - len(values)
        if absent > MAX_ABSENT_FRACTION * len(current.columns):
            return None
        index = current.index
        return current if all(key in index for key in values) else None

    def _row(self, layout: Layout, timestamp: float, values: Mapping[TrendKey, float]) -> bytes:
        try:
            numbers = np.fromiter(values.values(), dtype=np.float64, count=len(values))
        except (TypeError, ValueError) as error:
            bad = next(
                (k for k, v in values.items() if not _is_number(v)), "?"
            )  # name the culprit for the caller's log
            raise TypeError(f"trend value {bad!r} is not a number: {values.get(bad)!r}") from error
        bad = ~np.isfinite(numbers)
        if bad.any():
            # Canonical NaN for NaN and ±inf: a value that could not be computed. (A caller's
            # NaN must never carry the "absent" payload.)
            numbers[bad] = np.nan
        row = np.empty(layout.width, dtype=ROW_DTYPE)
        row[0] = timestamp
        if len(values) == len(layout.columns) and tuple(values) == layout.columns:
            row[1:] = numbers
        else:
            row[1:] = ABSENT
            positions = np.fromiter((layout.index[k] for k in values), np.intp, len(values))
            row[positions + 1] = numbers
        return row.tobytes()

    def _new_layout(self, keys: tuple) -> Layout:
        for key in keys:
            if not (
                isinstance(key, tuple)
                and len(key) == 2
                and isinstance(key[0], str)
                and isinstance(key[1], str)
            ):
                raise TypeError(f"trend keys must be (histogram path, value name), got {key!r}")
        columns: tuple[TrendKey, ...] = keys
        seq = self._max_seq + 1
        column_hash = digest(columns)
        layout_id = f"{seq:06d}-{column_hash}"
        text = json.dumps(
            {"format": FORMAT, "columns": [list(c) for c in columns]}, ensure_ascii=False
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.directory / f"{layout_id}.json", text.encode("utf-8"), fsync=self.fsync)
        layout = Layout(seq, layout_id, columns, {c: i for i, c in enumerate(columns)})
        self._layouts.append(layout)
        self._max_seq = seq
        self._remember(f"{layout_id}.json")
        log.info("%s: trend layout %s with %d columns", self.directory, layout_id, len(columns))
        return layout

    def _new_chunk(self, layout: Layout) -> Chunk:
        number = layout.chunks[-1].number + 1 if layout.chunks else 0
        name = f"{layout.id}.{number:06d}.f64"
        chunk = Chunk(layout, number, self.directory / name, 0)
        descriptor = os.open(chunk.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.close(descriptor)
        if self.fsync:
            fsync_directory(self.directory)
        layout.chunks.append(chunk)
        self._chunks.append(chunk)
        self._remember(name)
        return chunk

    def _write(self, chunk: Chunk, row: int, data: bytes) -> None:
        offset = row * len(data)
        descriptor = os.open(chunk.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            appending = offset >= os.fstat(descriptor).st_size
            try:
                written = os.pwrite(descriptor, data, offset)
                if written != len(data):
                    raise OSError(f"short write to {chunk.path}: {written} of {len(data)} bytes")
                if self.fsync:
                    os.fsync(descriptor)
            except BaseException:
                if appending:  # no partial row left behind (disk full); earlier rows stay valid
                    os.ftruncate(descriptor, offset)
                raise
        finally:
            os.close(descriptor)

    def _drop_rows(self, chunk: Chunk, keep: int) -> None:
        """Keep the first ``keep`` rows of a chunk (deleting the file when none remain).

        Never truncated in place: the kept rows go to a new file renamed over
        the old one, so a reader that mapped the old file keeps valid pages
        (touching a mapped page beyond a truncated end would kill it with SIGBUS).
        """
        if keep:
            self._copy_rows(chunk.path, keep * chunk.layout.width * ITEM)
            chunk.rows = keep
            return
        chunk.path.unlink(missing_ok=True)
        chunk.layout.chunks.remove(chunk)
        self._chunks.remove(chunk)
        self._listing = None  # file set changed: rescan next time

    def _copy_rows(self, path: Path, size: int) -> None:
        """Replace ``path`` by a copy of its first ``size`` bytes (atomically)."""

        def blocks() -> Iterator[bytes]:
            with open(path, "rb") as source:
                remaining = size
                while remaining:
                    block = source.read(min(remaining, COPY_BLOCK))
                    if not block:
                        raise OSError(f"{path} ended before byte {size}")
                    yield block
                    remaining -= len(block)

        atomic_write(path, blocks(), fsync=self.fsync)

    def _remove_empty_layouts(self) -> None:
        """Delete trailing layouts without rows, so a rebuild numbers layouts the same way."""
        while self._layouts and not any(c.rows for c in self._layouts[-1].chunks):
            layout = self._layouts.pop()
            for chunk in list(layout.chunks):
                self._drop_rows(chunk, 0)
            (self.directory / f"{layout.id}.json").unlink(missing_ok=True)
            self._listing = None
        self._max_seq = max([self._max_seq_on_disk()] + [lay.seq for lay in self._layouts])

    # -- state -----------------------------------------------------------------------
    def _refresh(self) -> None:
        """Catch up with the directory: new files rescanned, the chunk sizes re-read."""
        try:
            names = frozenset(os.listdir(self.directory))
        except FileNotFoundError:
            names = frozenset()
        if names != self._listing:
            self._scan(names)
        else:  # every chunk: a prune may have replaced an earlier one by a shorter copy
            for position, chunk in enumerate(self._chunks):
                self._stat(chunk, last=position == len(self._chunks) - 1)

    def _scan(self, names: frozenset[str]) -> None:
        known = {layout.id: layout for layout in self._layouts}
        layouts: dict[str, Layout] = {}
        self._max_seq = 0
        for name in sorted(names):
            match = LAYOUT_FILE.match(name)
            if not match:
                continue
            seq, digest = int(match.group(1)), match.group(2)
            self._max_seq = max(self._max_seq, seq)
            layout_id = name[: -len(".json")]
            previous = known.get(layout_id)
            if previous is not None:
                layouts[layout_id] = Layout(seq, layout_id, previous.columns, previous.index)
                continue
            try:
                columns, index = read_columns(self.directory / name, digest)
            except (OSError, ValueError) as error:
                self._warn(name, f"unreadable trend layout {self.directory / name}: {error}")
                continue
            layouts[layout_id] = Layout(seq, layout_id, columns, index)
        chunks: list[Chunk] = []
        for name in names:
            match = CHUNK_FILE.match(name)
            if not match:
                continue
            layout = layouts.get(f"{match.group(1)}-{match.group(2)}")
            if layout is None:
                self._warn(name, f"trend chunk {self.directory / name} has no readable layout")
                continue
            chunks.append(Chunk(layout, int(match.group(3)), self.directory / name, 0))
        chunks.sort(key=lambda c: (c.layout.seq, c.layout.id, c.number))
        for chunk in chunks:
            chunk.layout.chunks.append(chunk)
        self._layouts = sorted(layouts.values(), key=lambda lay: (lay.seq, lay.id))
        self._chunks = chunks
        for position, chunk in enumerate(chunks):
            self._stat(chunk, last=position == len(chunks) - 1)
        self._listing = names

    def _stat(self, chunk: Chunk, *, last: bool) -> None:
        try:
            size = chunk.path.stat().st_size
        except FileNotFoundError:
            size = 0
        width = chunk.layout.width * ITEM
        chunk.rows = size // width
        if size % width and not last:
            self._warn(chunk.path.name, f"{chunk.path}: size {size} is not a whole number of rows")

    def _map(self, chunk: Chunk) -> np.ndarray:
        return np.memmap(
            chunk.path, dtype=ROW_DTYPE, mode="r", shape=(chunk.rows, chunk.layout.width)
        )

    def _tail_time(self) -> float | None:
        for chunk in reversed(self._chunks):
            if chunk.rows:
                width = chunk.layout.width * ITEM
                with open(chunk.path, "rb") as stream:
                    stream.seek((chunk.rows - 1) * width)
                    return float(np.frombuffer(stream.read(ITEM), dtype=ROW_DTYPE)[0])
        return None

    def _repair(self) -> None:
        """Drop what a crash may have left at the end of the last chunk(s)."""
        for name in self._listing or ():
            if name.startswith(".") and name.endswith(".tmp"):
                (self.directory / name).unlink(missing_ok=True)
        while self._chunks:
            chunk = self._chunks[-1]
            width = chunk.layout.width * ITEM
            size = chunk.path.stat().st_size
            if size % width:
                log.warning("%s: dropping a partial trend row (crash during a write)", chunk.path)
                self._drop_rows(chunk, chunk.rows)
                continue
            before = None
            for other in reversed(self._chunks[:-1]):
                if other.rows:
                    before = float(self._map(other)[other.rows - 1, 0])
                    break
            times = np.array(self._map(chunk)[:, 0]) if chunk.rows else EMPTY
            previous = np.concatenate([[before if before is not None else -np.inf], times[:-1]])
            bad = np.flatnonzero(~(np.isfinite(times) & (times > previous)))
            if not bad.size:
                if chunk.rows:
                    break
                self._drop_rows(chunk, 0)
                continue
            log.warning(
                "%s: dropping %d trend row(s) left invalid by a crash",
                chunk.path, chunk.rows - int(bad[0]),
            )  # fmt: skip
            self._drop_rows(chunk, int(bad[0]))
            if bad[0]:
                break
        self._remove_empty_layouts()
        self._listing = None

    def _delete_all(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        removed = 0
        for name in names:
            if LAYOUT_FILE.match(name) or CHUNK_FILE.match(name) or name.endswith(".tmp"):
                (self.directory / name).unlink(missing_ok=True)
                removed += 1
        log.info("%s: rebuild: %d trend file(s) deleted", self.directory, removed)

    def _max_seq_on_disk(self) -> int:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        return max((int(m.group(1)) for m in map(LAYOUT_FILE.match, names) if m), default=0)

    def _remember(self, name: str) -> None:
        if self._listing is not None:
            self._listing = self._listing | {name}

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
