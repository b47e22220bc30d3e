"""The cache's two atomic steps, set-if-absent and token buckets, in memory and in Redis,
and what they answer when Redis is down (None: the caller decides)."""

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


def test_a_token_bucket_spends_its_burst_then_refills_at_the_rate(cache: Cache) -> None:
    spent = [cache.take("rl:a", rate_per_s=10.0, burst=3) for _ in range(4)]
    assert spent[:3] == [0.0, 0.0, 0.0]
    assert 0.05 < spent[3] <= 0.1  # one token comes back in 0.1 s
    assert cache.take("rl:b", rate_per_s=10.0, burst=3) == 0.0  # buckets are per key
    time.sleep(0.12)
    assert cache.take("rl:a", rate_per_s=10.0, burst=3) == 0.0
    assert cache.take("rl:a", rate_per_s=10.0, burst=3) > 0


def test_a_cost_above_the_tokens_left_spends_nothing(cache: Cache) -> None:
    assert cache.take("rl:c", rate_per_s=1.0, burst=5, cost=4) == 0.0
    assert cache.take("rl:c", rate_per_s=1.0, burst=5, cost=2) > 0
    assert cache.take("rl:c", rate_per_s=1.0, burst=5, cost=1) == 0.0


def test_redis_down_answers_none_for_both() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", socket_timeout_s=0.05)
    assert cache.add("seen:x", b"1", ttl_s=5) is None
    assert cache.take("rl:x", rate_per_s=1.0, burst=1) is None
    cache.close()
