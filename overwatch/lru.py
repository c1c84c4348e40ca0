"""The one least-recently-used cache of the project.

Why one: every process keeps a few caches of things that are expensive to
build and cheap to keep for a while (parsed layouts, comparisons, encoded
JSON bodies, plugin results). They need the same few properties, and a
hand-written ``OrderedDict`` + ``move_to_end`` in each place got them subtly
different (one re-computed sizes on eviction, one kept a stale entry when the
new value did not fit). So there is this class, and nothing else.

* Bounded by the number of entries (``max_entries``), by a total cost
  (``max_cost`` with a ``cost`` function, e.g. the bytes of a body), or both.
  The cost of a value is computed once, when it is put.
* A value costing more than ``max_cost`` on its own is not kept (and an older
  entry under the same key is dropped, since it was just superseded).
* Thread-safe: every method takes one lock; the cost function runs outside it.
  Building a value is the caller's business (two threads may build the same
  value at once; the later ``put`` wins), so no lock is held while computing.
* ``get`` returns ``default`` (None) on a miss, so values should not be None.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

__all__ = ["LRU"]


class LRU(Generic[K, V]):
    """A thread-safe mapping that forgets the least recently used entries first."""

    def __init__(
        self,
        max_entries: int | None = None,
        *,
        max_cost: float | None = None,
        cost: Callable[[V], float] | None = None,
    ) -> None:
        if max_entries is None and max_cost is None:
            raise ValueError("an LRU needs a bound: max_entries, max_cost, or both")
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if (max_cost is None) != (cost is None):
            raise ValueError("max_cost and cost go together: a total needs a cost per value")
        if max_cost is not None and max_cost < 0:
            raise ValueError(f"max_cost must not be negative, got {max_cost}")
        self.max_entries = max_entries
        self.max_cost = max_cost
        self._cost = cost
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._total: float = 0
        self._lock = threading.Lock()
        self.evictions = 0  # entries forgotten to respect a bound (not pops or clears)

    # -- reading -------------------------------------------------------------------
    def get(self, key: K, default: V | None = None) -> V | None:
        """The value under ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return default
            self._items.move_to_end(key)
            return entry[0]

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is held; does not count as a use."""
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[K]:
        """The keys held, least recently used first (a copy)."""
        with self._lock:
            return list(self._items)

    @property
    def total_cost(self) -> float:
        """Sum of the costs of the values held (0 without a cost function)."""
        with self._lock:
            return self._total

    # -- writing -------------------------------------------------------------------
    def put(self, key: K, value: V) -> bool:
        """Keep ``value`` under ``key`` as the most recently used; False if it is too costly."""
        cost = self._cost(value) if self._cost is not None else 0
        with self._lock:
            return self._put(key, value, cost)

    def setdefault(self, key: K, value: V) -> V:
        """The value already under ``key`` if any (now most recently used), else ``value`` put.

        Atomic: of two threads putting different values for one key, both get the same one.
        """
        cost = self._cost(value) if self._cost is not None else 0
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                return entry[0]
            self._put(key, value, cost)
            return value

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Remove ``key`` and return its value, or ``default`` if it was not held."""
        with self._lock:
            entry = self._items.pop(key, None)
            if entry is None:
                return default
            self._total -= entry[1]
            return entry[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0

    def _put(self, key: K, value: V, cost: float) -> bool:
        old = self._items.pop(key, None)
        if old is not None:
            self._total -= old[1]
        if self.max_cost is not None and cost > self.max_cost:
            return False
        self._items[key] = (value, cost)
        self._total += cost
        while (self.max_entries is not None and len(self._items) > self.max_entries) or (
            self.max_cost is not None and self._total > self.max_cost
        ):
            _, (_, evicted_cost) = self._items.popitem(last=False)
            self._total -= evicted_cost
            self.evictions += 1
        return True

    def __repr__(self) -> str:
        bounds = []
        if self.max_entries is not None:
            bounds.append(f"max_entries={self.max_entries}")
        if self.max_cost is not None:
            bounds.append(f"max_cost={self.max_cost}")
        return f"LRU({', '.join(bounds)}; {len(self)} entries)"
