"""overwatch.lru: the one LRU cache (bounded by count, by cost, or both; thread-safe)."""

from __future__ import annotations

import threading

import pytest

from overwatch.lru import LRU


def test_eviction_by_count_forgets_the_least_recently_used() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert len(cache) == 2 and cache.evictions == 1
    assert cache.keys() == ["a", "c"]


def test_get_misses_return_none_or_the_default() -> None:
    cache: LRU[str, int] = LRU(3)
    assert cache.get("x") is None
    assert cache.get("x", 5) == 5


def test_putting_a_key_again_replaces_and_refreshes_it() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.keys() == ["a", "c"] and cache.get("a") == 10


def test_eviction_by_cost_keeps_the_total_under_the_bound() -> None:
    cache: LRU[str, bytes] = LRU(max_cost=10, cost=len)
    cache.put("a", b"xxxx")
    cache.put("b", b"yyyy")
    assert cache.total_cost == 8
    cache.put("c", b"zzzz")  # 12 > 10: "a" goes
    assert cache.keys() == ["b", "c"] and cache.total_cost == 8
    cache.put("b", b"y")  # a smaller replacement counts only its own cost
    assert cache.total_cost == 5


def test_a_value_costlier_than_the_bound_is_not_kept_and_supersedes_the_old_one() -> None:
    cache: LRU[str, bytes] = LRU(max_cost=10, cost=len)
    cache.put("a", b"small")
    assert cache.put("a", b"far too large") is False
    assert cache.get("a") is None and cache.total_cost == 0 and len(cache) == 0


def test_both_bounds_apply() -> None:
    cache: LRU[int, bytes] = LRU(3, max_cost=100, cost=len)
    for i in range(5):
        cache.put(i, b"x")
    assert cache.keys() == [2, 3, 4]
    cache.put(9, b"x" * 99)  # 102 > 100: the two oldest go, the total is exactly the bound
    assert cache.keys() == [4, 9] and cache.total_cost == 100


def test_the_cost_is_computed_once_per_put() -> None:
    calls = []

    def cost(value: str) -> int:
        calls.append(value)
        return 1

    cache: LRU[str, str] = LRU(max_cost=2, cost=cost)
    for key in "abcd":
        cache.put(key, key)
    assert calls == list("abcd")  # evictions use the remembered cost


def test_pop_clear_contains_and_setdefault() -> None:
    cache: LRU[str, bytes] = LRU(4, max_cost=100, cost=len)
    cache.put("a", b"12")
    assert "a" in cache and "b" not in cache
    assert cache.pop("a") == b"12" and cache.pop("a") is None and cache.pop("a", b"d") == b"d"
    assert cache.total_cost == 0
    assert cache.setdefault("k", b"first") == b"first"
    assert cache.setdefault("k", b"second") == b"first"
    cache.clear()
    assert len(cache) == 0 and cache.total_cost == 0


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"max_entries": 0},
        {"max_cost": 10},
        {"max_entries": 3, "cost": len},
        {"max_cost": -1, "cost": len},
    ],
)
def test_bad_bounds_are_refused(arguments: dict) -> None:
    with pytest.raises(ValueError):
        LRU(**arguments)


def test_threads_sharing_one_cache_keep_it_consistent() -> None:
    cache: LRU[int, bytes] = LRU(50, max_cost=400, cost=len)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(seed: int) -> None:
        try:
            barrier.wait()
            for i in range(2000):
                key = (seed * 7919 + i) % 97
                if cache.get(key) is None:
                    cache.put(key, b"x" * (key % 13 + 1))
                if i % 50 == 0:
                    cache.pop(key)
                assert len(cache) <= 50 and cache.total_cost <= 400
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    held = cache.keys()
    assert len(held) == len(cache) <= 50
    assert cache.total_cost == sum(len(cache.get(k) or b"") for k in held)


def test_setdefault_gives_every_thread_the_same_object() -> None:
    cache: LRU[str, object] = LRU(4)
    seen: list[object] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        seen.append(cache.setdefault("layout", object()))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(value) for value in seen}) == 1
