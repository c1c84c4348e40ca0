"""The array cache: what processing read from each snapshot, kept as flat numpy buffers.

Why: a snapshot is deserialised with uproot exactly once. Every later question
(a time slice, the cumulative for the web page, an export) is answered from
these arrays, so a slice of 500 histograms costs two decompressions (none when
the states were decoded recently) and one numpy subtraction instead of two ROOT reads.

On disk, under ``DataDir.cache_dir(run, subsystem)``::

    layout-<hash>.json.zst                  shapes, axes, titles, flags of every histogram
    <SYS>hists.<time>.<hash>.owc            one float64 buffer per snapshot, compressed
    <SYS>hists.<time>.objects.json          its other objects (graphs, functions, stacks...)
    object-<digest>.json                    one object's ROOT JSON, shared by every snapshot
                                            holding it unchanged

The ``.owc`` holds the *effective* cumulative content: what the sender sent plus
the offsets carried over from earlier counter-reset segments (see
``processing.ingest.resets``), so ``eff(t1) - eff(t0)`` is a valid slice across any reset.
When some histogram carries a non-zero offset the array has shape ``(2, n)``:
row 0 the effective content, row 1 the offsets (needed to continue the chain
after a restart and to recover the raw content, ``eff - offsets``, without
re-reading ROOT). Otherwise its shape is ``(n,)``.

Within the buffer each histogram owns one contiguous block
``[values][sumw2?][bin_entries?][bin_sumw2?][entries][stats...]`` (arrays with
flow bins, in ROOT's ``fArray`` order). Blocks rather than one array per
quantity: a request for one histogram then touches one contiguous range of
the buffer, and building a :class:`Histogram` is a handful of views. Every
quantity is additive (ROOT's running sums ``fTsumw...`` included), so one
vectorised subtraction of two buffers of the same layout is the whole slice.

Compression (the ``.owc`` format): as float64 arrays the buffers were 1.4-6
times the snapshot files (ROOT stores F/I arrays compressed), too much for a
detector's worth of runs. The bytes of the float64 array are *shuffled* (byte 0
of every number, then byte 1, ...: counts are small integers, so most planes
are runs of equal bytes) and compressed with zstd at level 1 (``cramjam``,
which also reads ROOT's own ZS blocks). A file is::

    b"OWC1"                      format and version
    uint32 little-endian         length of the header
    header (JSON)                {"layout": <hash>, "shape": [n] or [2, n], "codec": "zstd-shuffle8"}
    body                         one zstd frame of the 8 byte planes, 8 * n * rows bytes decoded

The header's layout must be the one the file name says; anything that does not
add up (magic, header, codec, shape, a truncated or altered body) is a
:class:`CacheError` naming the file. Decoding is bit-exact (NaN, infinities, -0.0).

How it was chosen (medians on this project's 2-core machine; size as a fraction
of the snapshot's ROOT file; write / read of one snapshot): the simulator's
2,400-histogram EMC snapshot (1.6 MB ROOT, 2.3 MB float64) and the 500-histogram
mix of ``tests/bench/bench_processing.py`` (0.74 MB ROOT, 1.6 MB float64):

    codec                     simulator 2,400          bench mix 500
    zstd-1, shuffled (this)   0.33  3.8 / 1.7 ms       0.64  2.4 / 0.9 ms
    zstd-3, shuffled          0.32  5.4 / 2.1 ms       0.63  4.0 / 1.3 ms
    lz4, shuffled             0.41  2.3 / 1.6 ms       0.76  1.5 / 1.0 ms
    zlib-1, shuffled          0.34 15.5 / 5.2 ms       0.66 10.6 / 3.6 ms
    zstd-1, not shuffled      0.45  7.0 / 2.6 ms       0.74  3.6 / 1.3 ms

By kind (300 histograms of one class, as read back from their ROOT file):
weighted TH1D 0.80, weighted TH1F 0.76, TProfile 0.70, a TH2F of counts 0.39
(6.1 as float64: ROOT compresses the empty cells of a map, and so does this).

Left out: integer-valued numbers stored as int32 apart from the others (7 %
smaller, decoding twice as slow for the scatter) and a delta against the
previous snapshot (20 % smaller, but reading one state would need its
predecessors). A slice of 500 histograms whose two states are not decoded yet
takes about 9 ms, 5-6 ms when they are (``slice_ms_500_cold``, ``slice_ms_500``).

Decoded buffers are kept, read-only, in a bounded LRU (``DECODED_BYTES`` per
process) keyed by file, inode, size and times, so the live page and repeated
slices do not decompress again, and a rewritten file
(a late snapshot recomputing its successors) is decoded anew.

Layouts are zstd-compressed JSON (``layout-<hash>.json.zst``): the producer's
presentation of every histogram makes them about 2 kB a histogram as text, and
they compress 300-fold (5.5 MB to 18 kB for the simulator's 2,400). Files of
the earlier formats (``.npy`` buffers, memory-mapped, and plain
``layout-<hash>.json``) are still read, so a data directory needs no rebuild;
the next write of a snapshot replaces its ``.npy``, and ``overwatch db rebuild
--reread`` rewrites a whole data directory in this format.

The layout is named by a hash of its content, so snapshots with the same set of
histograms share one layout file, and a cache file's name says which layout it
uses. Writes are atomic (temporary file + rename); fsync is optional
(``processing.cache_fsync``, default off): the cache is derived data, rebuilt
from the snapshots by ``overwatch db rebuild`` when lost. Measured cost of the
fsync: about 2 ms per cache file of 500 histograms on a virtual disk,
against about 400 ms for the uproot read of the snapshot.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cramjam
import numpy as np

from overwatch.lru import LRU
from overwatch.store.layout import DataDir, atomic_write
from processing.ingest.cache_layout import Layout, LayoutError, known_layout, remember_layout
from processing.ingest.objects import ObjectRecord

log = logging.getLogger(__name__)

LAYOUT_PREFIX = "layout-"
#: A layout's JSON, zstd-compressed (the presentations make it about 2 kB a histogram).
LAYOUT_SUFFIX = ".json.zst"
#: Layouts of the earlier format, plain JSON: still read, never written.
LEGACY_LAYOUT_SUFFIX = ".json"
CACHE_SUFFIX = ".owc"
#: The earlier, uncompressed format: still read, never written.
LEGACY_SUFFIX = ".npy"
_SUFFIXES = (CACHE_SUFFIX, LEGACY_SUFFIX)
_MAGIC = b"OWC1"
_CODEC = "zstd-shuffle8"
_LEVEL = 1
#: Bytes of decoded buffers kept per process: the latest two states of 20
#: subsystems of 2,400 histograms (what live pages show) fit twice.
DECODED_BYTES = 192 * 1024 * 1024
_DECODED: LRU[tuple[Path, int, int, int, int], np.ndarray] = LRU(
    max_cost=DECODED_BYTES, cost=lambda array: array.nbytes
)
_SCRATCH = threading.local()
OBJECTS_SUFFIX = ".objects.json"
OBJECT_PREFIX = "object-"
#: Object lists read back, by file (they never change once written).
_OBJECT_LISTS: LRU[Path, list[ObjectRecord]] = LRU(512)


class CacheError(RuntimeError):
    """A cache file or layout is missing or does not match (rebuild it from the snapshot)."""


@dataclass
class CachedSnapshot:
    """The effective cumulative of one snapshot (``off`` None when all offsets are zero)."""

    timestamp: float
    layout: Layout
    eff: np.ndarray
    off: np.ndarray | None = None

    def raw(self) -> np.ndarray:
        """What the sender sent: the effective content minus the carried offsets."""
        return np.array(self.eff) if self.off is None else self.eff - self.off


def cache_name(stem: str, layout_hash: str) -> str:
    return f"{stem}.{layout_hash}{CACHE_SUFFIX}"


def split_cache_name(name: str) -> tuple[str, str] | None:
    """(snapshot stem, layout hash) of a cache file name (either format), None otherwise."""
    suffix = next((x for x in _SUFFIXES if name.endswith(x)), None)
    if suffix is None or name.startswith("."):
        return None
    stem, _, layout_hash = name[: -len(suffix)].rpartition(".")
    return (stem, layout_hash) if stem and layout_hash else None


def encode_array(array: np.ndarray, layout_hash: str) -> bytes:
    """The ``.owc`` bytes of a float64 array of one or two rows laid out by ``layout_hash``."""
    array = np.ascontiguousarray(array, dtype=np.float64)
    header = json.dumps({"layout": layout_hash, "shape": list(array.shape), "codec": _CODEC})
    numbers = array.reshape(-1).view(np.uint8).reshape(-1, 8)
    planes = _scratch(numbers.size).reshape(8, -1)
    for k in range(8):  # plane k: byte k of every number
        planes[k] = numbers[:, k]
    body = cramjam.zstd.compress(planes, level=_LEVEL)
    head = header.encode()
    return b"".join((_MAGIC, len(head).to_bytes(4, "little"), head, body))


def decode_array(data: bytes, label: str, layout: Layout | None = None) -> np.ndarray:
    """The array of ``.owc`` bytes (read-only); :class:`CacheError` names ``label`` and why.

    ``layout``, when given, must be the one the header names, and its size the
    header's (checked before anything is decompressed).
    """
    if data[:4] != _MAGIC or len(data) < 8:
        raise CacheError(f"cache file {label} is damaged: not an Overwatch cache file")
    size = int.from_bytes(data[4:8], "little")
    try:
        header = json.loads(data[8 : 8 + size])
        shape = tuple(int(n) for n in header["shape"])
        codec, name = header["codec"], header["layout"]
    except (ValueError, KeyError, TypeError) as error:
        raise CacheError(f"cache file {label} is damaged: bad header ({error})") from error
    if codec != _CODEC or not shape or shape[:-1] not in ((), (2,)) or shape[-1] < 0:
        raise CacheError(f"cache file {label} is damaged: unknown codec or shape {header}")
    if layout is not None and name != layout.hash:
        raise CacheError(f"cache file {label} holds layout {name}, its name says {layout.hash}")
    if layout is not None and shape[-1] != layout.size:
        raise CacheError(f"cache file {label} does not match layout {layout.hash}")
    count = int(np.prod(shape))
    planes = _scratch(8 * count).reshape(8, count)
    try:
        written = cramjam.zstd.decompress_into(data[8 + size :], planes)
    except cramjam.DecompressionError as error:
        raise CacheError(f"cache file {label} is damaged: {error}") from error
    if written != planes.nbytes:
        raise CacheError(f"cache file {label} is damaged: {written} bytes for shape {shape}")
    # Unshuffle plane by plane: 8 strided copies are about twice as fast as
    # numpy's copy of the transposed (8, n) view.
    numbers = np.empty((count, 8), dtype=np.uint8)
    for k in range(8):
        numbers[:, k] = planes[k]
    array = numbers.view(np.float64).reshape(shape)
    array.setflags(write=False)  # shared by every reader through the LRU
    return array


def _scratch(nbytes: int) -> np.ndarray:
    """This thread's buffer for byte planes, grown to the largest state seen.

    Why: a fresh 2 MB array per decode is paged in anew by the kernel each
    time (malloc gives large blocks back), which doubled the decode time of a
    2,400-histogram state (4.1 against 1.8 ms).
    """
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = _SCRATCH.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes]


def clear_decoded() -> None:
    """Forget every decoded buffer of this process (benchmarks of a cold read)."""
    _DECODED.clear()


def states_covering(
    wanted: Iterable[str],
    candidates: Iterable[tuple[Layout | None, Callable[[], CachedSnapshot | None]]],
) -> Iterator[CachedSnapshot]:
    """Cached snapshots, newest first, until every wanted path is covered.

    Used to find the earlier state of histograms missing from a slice's base.
    ``candidates`` gives, newest first, ``(layout, load)`` pairs: a known layout
    holding none of the still-wanted paths is passed over without loading the
    file (the layout comes from the file name); ``load()`` returns the snapshot,
    or None to pass it over.
    """
    wanted = set(wanted)
    for layout, load in candidates:
        if layout is not None and not wanted & layout.index.keys():
            continue
        state = load()
        if state is None:
            continue
        found = wanted & state.layout.index.keys()
        if found:
            yield state
            wanted -= found
            if not wanted:
                return


class ArrayCache:
    """Reads and writes the cache files of one data directory."""

    def __init__(self, data_dir: str | Path, *, fsync: bool = False) -> None:
        self.data = DataDir(data_dir)
        self.fsync = fsync
        self._layout_files: set[Path] = set()

    def directory(self, run: int, subsystem: str) -> Path:
        return self.data.cache_dir(run, subsystem)

    def relative(self, run: int, subsystem: str, name: str) -> str:
        """A cache file's path relative to the data directory (as records keep it)."""
        return self.data.relative(self.directory(run, subsystem) / name)

    # -- layouts -------------------------------------------------------------------
    def layout(self, run: int, subsystem: str, layout_hash: str) -> Layout:
        known = known_layout(layout_hash)
        if known is not None:
            return known
        path = self.directory(run, subsystem) / f"{LAYOUT_PREFIX}{layout_hash}{LAYOUT_SUFFIX}"
        legacy = path.with_name(f"{LAYOUT_PREFIX}{layout_hash}{LEGACY_LAYOUT_SUFFIX}")
        try:
            if path.exists() or not legacy.exists():
                text = bytes(cramjam.zstd.decompress(path.read_bytes())).decode("utf-8")
            else:
                path, text = legacy, legacy.read_text(encoding="utf-8")
            layout = Layout.from_json(text)
        except FileNotFoundError as error:
            raise CacheError(f"layout file {path} is missing") from error
        except (cramjam.DecompressionError, LayoutError, ValueError, KeyError, TypeError) as error:
            raise CacheError(f"layout file {path} is damaged: {error}") from error
        if layout.hash != layout_hash:
            raise CacheError(f"layout file {path} holds layout {layout.hash}")
        return remember_layout(layout)

    def _write_layout(self, directory: Path, layout: Layout) -> None:
        path = directory / f"{LAYOUT_PREFIX}{layout.hash}{LAYOUT_SUFFIX}"
        legacy = path.with_name(f"{LAYOUT_PREFIX}{layout.hash}{LEGACY_LAYOUT_SUFFIX}")
        if path in self._layout_files or path.exists() or legacy.exists():
            self._layout_files.add(path)
            return
        text = layout.to_json().encode()
        _atomic_save(path, bytes(cramjam.zstd.compress(text, level=3)), self.fsync)
        self._layout_files.add(path)

    # -- snapshots -------------------------------------------------------------------
    def write(
        self, run: int, subsystem: str, stem: str, layout: Layout, eff: np.ndarray, off=None
    ) -> str:
        """Store a snapshot's effective cumulative; returns its path relative to the data dir."""
        directory = self.directory(run, subsystem)
        directory.mkdir(parents=True, exist_ok=True)
        self._write_layout(directory, layout)
        remember_layout(layout)
        name = cache_name(stem, layout.hash)
        array = eff if off is None else np.stack([eff, off])
        _atomic_save(directory / name, encode_array(array, layout.hash), self.fsync)
        for suffix in _SUFFIXES:
            for other in directory.glob(f"{stem}.*{suffix}"):
                if other.name != name:  # an earlier layout or format of it: stale
                    other.unlink(missing_ok=True)
        return self.relative(run, subsystem, name)

    def load(self, run: int, subsystem: str, name: str, timestamp: float = 0.0) -> CachedSnapshot:
        """A cache file's state, read-only (by file name or data-dir-relative path).

        The name's suffix is a hint: records name the file as first written, and
        a later write of the same snapshot (a late predecessor) may have
        replaced an earlier-format file by an ``.owc``, so either is read.
        """
        name = Path(name).name
        split = split_cache_name(name)
        if split is None:
            raise CacheError(f"{name!r} is not a cache file name")
        layout = self.layout(run, subsystem, split[1])
        path = self.directory(run, subsystem) / name
        if not path.exists():
            stem = name[: -len(next(x for x in _SUFFIXES if name.endswith(x)))]
            other = (path.with_name(stem + suffix) for suffix in _SUFFIXES)
            path = next((p for p in other if p.exists()), path)
        array = _read_array(path, layout)
        if array.dtype != np.float64 or array.shape[-1] != layout.size or array.ndim > 2:
            raise CacheError(f"cache file {path} does not match layout {layout.hash}")
        if array.ndim == 2:
            return CachedSnapshot(timestamp, layout, array[0], array[1])
        return CachedSnapshot(timestamp, layout, array)

    def listing(self, run: int, subsystem: str) -> dict[str, str]:
        """Snapshot stem -> cache file name, for the files present on disk."""
        directory = self.directory(run, subsystem)
        result: dict[str, str] = {}
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return result
        for name in names:
            split = split_cache_name(name)
            if split is not None and not result.get(split[0], "").endswith(CACHE_SUFFIX):
                result[split[0]] = name  # a stem in both formats: the compressed one
        return result

    # -- other objects -------------------------------------------------------------
    def write_objects(
        self, run: int, subsystem: str, stem: str, records: list[ObjectRecord]
    ) -> None:
        """Keep a snapshot's non-histogram objects: one small list per snapshot, each
        object's JSON stored once under its digest (graphs that do not change cost nothing)."""
        directory = self.directory(run, subsystem)
        directory.mkdir(parents=True, exist_ok=True)
        listing = []
        for record in records:
            digest = hashlib.blake2b(record.json.encode(), digest_size=16).hexdigest()
            blob = directory / f"{OBJECT_PREFIX}{digest}.json"
            if not blob.exists():
                _atomic_save(blob, record.json.encode(), self.fsync)
            listing.append({**record.to_json(), "json": digest})
        target = directory / f"{stem}{OBJECTS_SUFFIX}"
        if records or target.exists():
            _atomic_save(target, json.dumps(listing).encode(), self.fsync)

    def objects(self, run: int, subsystem: str, cache_file: str) -> list[ObjectRecord]:
        """The non-histogram objects of the snapshot whose cache file is ``cache_file``."""
        split = split_cache_name(Path(cache_file).name)
        if split is None:
            return []
        directory = self.directory(run, subsystem)
        path = directory / f"{split[0]}{OBJECTS_SUFFIX}"
        found = _OBJECT_LISTS.get(path)
        if found is not None:
            return found
        try:
            listing = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise CacheError(f"object list {path} is damaged: {error}") from error
        records = []
        for item in listing:
            blob = directory / f"{OBJECT_PREFIX}{item['json']}.json"
            try:
                text = blob.read_text(encoding="utf-8")
            except OSError as error:
                raise CacheError(f"object file {blob} is missing: {error}") from error
            records.append(ObjectRecord.from_json({**item, "json": text}))
        _OBJECT_LISTS.put(path, records)
        return records

    def remove_temporary(self, run: int, subsystem: str) -> int:
        """Delete temporary files left by an interrupted write (only processing writes here)."""
        removed = 0
        for path in self.directory(run, subsystem).glob(".*.tmp"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _read_array(path: Path, layout: Layout) -> np.ndarray:
    """A cache file's array: decoded once and kept while the file stays the same."""
    try:
        stat = path.stat()
    except FileNotFoundError as error:
        raise CacheError(f"cache file {path} is missing") from error
    except OSError as error:
        raise CacheError(f"cache file {path} is unreadable: {error}") from error
    # Every write renames a new file into place: a new inode and change time.
    key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    found = _DECODED.get(key)
    if found is not None:
        return found
    try:
        if path.name.endswith(LEGACY_SUFFIX):
            return np.load(path, mmap_mode="r", allow_pickle=False)  # mapped, not kept
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise CacheError(f"cache file {path} is missing") from error
    except (ValueError, OSError) as error:
        raise CacheError(f"cache file {path} is damaged: {error}") from error
    array = decode_array(data, str(path), layout)
    _DECODED.put(key, array)
    return array


def _atomic_save(path: Path, data: bytes, fsync: bool) -> None:
    atomic_write(path, data, fsync=fsync)
