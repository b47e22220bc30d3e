"""The cache's atomic set-if-absent, in memory and in Redis, and what it answers when
Redis is down (None: the caller decides)."""

from __future__ import annotations

import threading
import time

import pytest

from recsdk.cache import Cache, MemoryCache, RedisCache


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache(request: pytest.FixtureRequest) -> Cache:
    if request.param == "memory":
        return MemoryCache(max_entries=100)
    made = RedisCache(request.getfixturevalue("redis_url"))
    request.addfinalizer(made.close)
    return made


def test_add_stores_only_when_absent_until_the_ttl_passes(cache: Cache) -> None:
    assert cache.add("seen:a", b"1", ttl_s=0.3) is True
    assert cache.add("seen:a", b"2", ttl_s=0.3) is False
    assert cache.get("seen:a") == b"1"
    time.sleep(0.35)
    assert cache.add("seen:a", b"3", ttl_s=0.3) is True


def test_add_is_atomic_under_threads(cache: Cache) -> None:
    won: list[bool | None] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        won.append(cache.add("seen:race", b"1", ttl_s=10))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 7 + [True]


def test_redis_down_answers_none() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", socket_timeout_s=0.05)
    assert cache.add("seen:x", b"1", ttl_s=5) is None
    cache.close()
