"""The API with Redis as its cache: health reports it, served lists are cached in it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest
import redis

from recsdk import RecSDK
from recsdk.api import create_app
from tests.api.helpers import train_over_http

REDIS_URL = os.environ.get("RECSDK_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.mark.redis
def test_lists_are_served_from_redis(make_sdk: Callable[..., RecSDK]) -> None:
    sdk = make_sdk(redis_url=REDIS_URL)
    client = create_app(sdk).test_client()
    user = f"api-test-{uuid.uuid4().hex}"  # keys of its own: the server is shared
    events = [{"user_id": user, "item_id": f"i{n}", "type": "view"} for n in range(3)]
    assert client.post("/api/v1/events", json=events).status_code == 201
    assert train_over_http(client)["status"] == "succeeded"
    query = f"/api/v1/recommendations?user_id={user}&k=2"
    first, second = client.get(query).get_json(), client.get(query).get_json()
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k.decode() for k in raw.scan_iter(f"recsdk:rec:*:{sdk.model_run}:*")]
        assert len(keys) == 1
        assert user in keys[0]
        assert second["items"] == first["items"]
        assert second["request_id"] != first["request_id"]
        assert sdk.telemetry.value("recsdk_recommendations", placement="default",
                                   variant="default", outcome="cached") == 1
        health = client.get("/healthz").get_json()
        assert health["cache"] == {"backend": "redis", "available": True}
    finally:
        raw.delete(*keys, f"recsdk:recent:u:{user}")
        raw.close()
        sdk.cache.client.close()


def test_an_unreachable_redis_degrades_to_no_cache(make_sdk: Callable[..., RecSDK]) -> None:
    """Port 1 refuses connections: the cache is optional, so the API stays healthy."""
    sdk = make_sdk(redis_url="redis://127.0.0.1:1/0")
    client = create_app(sdk).test_client()
    assert client.post("/api/v1/events", json={"user_id": "u", "item_id": "i",
                                               "type": "view"}).status_code == 201
    assert client.get("/api/v1/recommendations?user_id=u").status_code == 200
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json()["cache"] == {"backend": "redis", "available": False}
    sdk.cache.client.close()
