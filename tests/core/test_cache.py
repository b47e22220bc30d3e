"""Result and activity caching: in-process, real Redis, and Redis going away."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest
import redis

from recsdk.cache import MemoryCache, RedisCache
from tests.core.shop import fill

POP = {"popularity": {}}


def test_memory_cache_ttl_and_recent_lists():
    cache = MemoryCache(max_entries=10)
    cache.set("a", b"1", ttl_s=0.05)
    assert cache.get("a") == b"1"
    time.sleep(0.06)
    assert cache.get("a") is None
    cache.push_recent({"r": ["x"]}, cap=3)  # no list yet: stays a miss
    assert cache.get_recent("r") is None
    cache.set_recent("r", ["a", "b"], cap=3, ttl_s=60)
    cache.push_recent({"r": ["c", "d"]}, cap=3)
    assert cache.get_recent("r") == ["b", "c", "d"]


def test_results_are_cached_until_the_user_acts(make_sdk):
    sdk = make_sdk({"plugins": POP})
    fill(sdk)
    sdk.fit()
    first = sdk.recommend("u1", k=4)
    second = sdk.recommend("u1", k=4)
    assert second.item_ids == first.item_ids and second.request_id != first.request_id
    assert sdk.telemetry.value("recsdk_recommendations", placement="default",
                               variant="default", outcome="cached") == 1
    sdk.track({"user_id": "u1", "item_id": first.item_ids[0], "type": "purchase"})
    third = sdk.recommend("u1", k=4)
    assert first.item_ids[0] not in third.item_ids


@pytest.mark.redis
def test_redis_holds_results_and_recent_activity(make_sdk, redis_url):
    sdk = make_sdk({"plugins": POP, "redis_url": redis_url})
    assert isinstance(sdk.cache, RedisCache)
    fill(sdk)
    sdk.fit()
    sdk.recommend("u1", k=3)
    client = redis.Redis.from_url(redis_url)
    keys = {k.decode() for k in client.keys("recsdk:*")}
    assert any(k.startswith("recsdk:rec:") for k in keys)
    assert "recsdk:recent:u:u1" in keys
    sdk.track({"user_id": "u1", "item_id": "i9", "type": "view"})
    last = client.lrange("recsdk:recent:u:u1", -1, -1)[0].decode()
    assert json.loads(last)[:2] == ["i9", "view"]  # JSON: ids may hold any character
    assert sdk.history("u1").item_ids[-1] == "i9"
    # a second SDK process sharing Redis is served the first one's cached list
    other = make_sdk({"plugins": POP, "redis_url": redis_url})
    other.recommend("u2", k=3)
    sdk.recommend("u2", k=3)
    assert sdk.telemetry.value("recsdk_recommendations", placement="default",
                               variant="default", outcome="cached") == 1
    client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_requests_are_answered_when_redis_goes_down(make_sdk):
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        sdk = make_sdk({"plugins": POP, "redis_url": f"redis://127.0.0.1:{port}/0"})
        fill(sdk)
        sdk.fit()
        healthy = sdk.recommend("u1", k=4)
        errors_before = sdk.telemetry.value("recsdk_cache_errors", backend="redis",
                                            operation="get_recent")
        assert errors_before == 0
    finally:
        server.terminate()
        server.wait(10)
    down = sdk.recommend("u1", k=4)
    assert down.item_ids == healthy.item_ids
    sdk.track({"user_id": "u1", "item_id": "i5", "type": "purchase"})  # still stored
    assert "i5" not in sdk.recommend("u1", k=4).item_ids
    errors = sum(
        sdk.telemetry.value("recsdk_cache_errors", backend="redis", operation=op)
        for op in ("get", "set", "get_recent", "set_recent", "push_recent")
    )
    assert errors >= 3


@pytest.mark.redis
def test_purchases_made_while_redis_stalls_are_never_recommended(make_sdk, redis_url):
    cache = RedisCache(redis_url, socket_timeout_s=0.1, retry_after_s=0.2)
    sdk = make_sdk({"plugins": POP, "redis_url": redis_url, "cache": {"result_ttl_s": 0}},
                   cache=cache)
    fill(sdk)
    sdk.fit()
    bought = sdk.recommend("u1", k=2).item_ids  # u1's history is now cached in Redis
    redis.Redis.from_url(redis_url).execute_command("CLIENT", "PAUSE", 700, "ALL")
    sdk.track_many([{"user_id": "u1", "item_id": i, "type": "purchase"} for i in bought])
    assert cache.is_suspect("recent:u:u1")  # the push timed out: the list is stale
    assert not set(bought) & set(sdk.recommend("u1", k=5).item_ids)  # Redis still paused
    time.sleep(0.9)  # Redis answers again: the stale list is deleted, then refilled
    after = sdk.recommend("u1", k=5)
    assert not set(bought) & set(after.item_ids) and not after.degraded
    assert not cache.is_suspect("recent:u:u1")
    cached = redis.Redis.from_url(redis_url).lrange("recsdk:recent:u:u1", 0, -1)
    assert {json.loads(e)[0] for e in cached} >= set(bought)
