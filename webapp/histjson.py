"""Histogram JSON for JSROOT, cached per process.

The request path never reads a ROOT file: contents come from the processing
package's ``SliceReader`` (in-memory or array-cache numpy arrays), and the
encoded JSON (plain and gzip) is kept in a small LRU keyed by
``(run, subsystem, path, slice, version)``. The version changes whenever
processing adds a snapshot, so a cached entry is never stale; the ETag is
derived from the same key, so an unchanged histogram answers 304 without
being looked at.

A path that is not in the snapshot may be a detector plugin's derived
histogram or stack (``webapp.plugin_view.plugin_object``), served alike.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from overwatch.jsroot import to_json_bytes, to_jsroot
from processing.slices.reader import UnknownHistogram

if TYPE_CHECKING:
    from webapp.context import Resources

SLICES = ("cumulative", "latest")
#: Bodies smaller than this are not worth compressing (headers dominate).
GZIP_MIN_BYTES = 512
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Encoded:
    """A response body in both encodings, with its validator."""

    body: bytes
    gzipped: bytes | None
    etag: str


class ByteLRU:
    """Least-recently-used mapping bounded by the total size of its values."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Encoded] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @staticmethod
    def _cost(value: Encoded) -> int:
        return len(value.body) + len(value.gzipped or b"") + 200

    def get(self, key: tuple) -> Encoded | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: Encoded) -> None:
        cost = self._cost(value)
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self._cost(old)
            self._items[key] = value
            self._size += cost
            while self._size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= self._cost(evicted)

    def __len__(self) -> int:
        return len(self._items)


def encode(body: bytes, etag: str) -> Encoded:
    gzipped = gzip.compress(body, GZIP_LEVEL, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
    return Encoded(body, gzipped, etag)


def make_etag(*parts: object) -> str:
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class HistogramJSON:
    """Serves one histogram (cumulative or latest slice) as TBufferJSON bytes.

    The subsystem's version is itself remembered for ``version_ttl`` seconds
    (one second by default), so a burst of requests costs one database read
    per process and second; a new snapshot shows at most that much later.
    """

    def __init__(
        self,
        resources: Resources,
        max_bytes: int = 64 * 1024 * 1024,
        version_ttl: float = 1.0,
    ) -> None:
        self._resources = resources
        self.cache = ByteLRU(max_bytes)
        self.version_ttl = version_ttl
        self._versions: dict[tuple[int, str], tuple[float, str]] = {}

    def version(self, run: int, subsystem: str) -> str:
        key = (run, subsystem)
        now = time.monotonic()
        known = self._versions.get(key)
        if known is not None and now - known[0] < self.version_ttl:
            return known[1]
        version = self._resources.reader.version(run, subsystem)
        if len(self._versions) > 10_000:  # many runs browsed: start afresh
            self._versions.clear()
        self._versions[key] = (now, version)
        return version

    def get(self, run: int, subsystem: str, path: str, view: str) -> Encoded:
        """The encoded JSON; raises the reader's Unknown* (LookupError) errors."""
        if view not in SLICES:
            raise ValueError(f"slice must be one of {', '.join(SLICES)}, got {view!r}")
        version = self.version(run, subsystem)
        key = (run, subsystem, path, view, version)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        reader = self._resources.reader
        try:
            if view == "latest":
                histogram = reader.latest_slice(run, subsystem, path)
            else:
                histogram = reader.cumulative(run, subsystem, path)
            obj = to_jsroot(histogram)
        except UnknownHistogram as missing:  # a detector plugin's derived histogram or stack?
            from webapp.plugin_view import plugin_object

            try:
                obj = plugin_object(run, subsystem, path, view)
            except UnknownHistogram:
                raise missing from None
        encoded = encode(to_json_bytes(obj), make_etag(*key))
        self.cache.put(key, encoded)
        return encoded
