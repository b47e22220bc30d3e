"""The capture endpoints' rate limits (the ``limits`` library): a burst then a wait,
per client and scope, shared by processes through Redis, and this process's own counts
when Redis is down."""

from __future__ import annotations

import uuid

import pytest

from recsdk.capture.ratelimit import RateLimits, window_item


def test_the_window_matches_rate_and_burst() -> None:
    item = window_item(rate_per_s=2.0, burst=30)
    assert (item.amount, item.get_expiry()) == (30, 15)
    assert window_item(rate_per_s=100.0, burst=3).get_expiry() == 1  # at least a second


def test_a_burst_then_a_wait_per_client_and_scope() -> None:
    limits = RateLimits({"beacon": (1.0, 3), "widget": (1.0, 1)})
    assert [limits.wait_s("beacon", "a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limits.wait_s("beacon", "a")
    assert 0 < wait <= 3.0
    assert limits.wait_s("beacon", "b") == 0.0  # another client
    assert limits.wait_s("widget", "a") == 0.0  # another scope
    assert limits.wait_s("widget", "a") > 0


@pytest.mark.redis
def test_processes_share_the_count_through_redis(redis_url: str) -> None:
    client = f"shared-{uuid.uuid4().hex}"
    one = RateLimits({"beacon": (1.0, 2)}, redis_url)
    two = RateLimits({"beacon": (1.0, 2)}, redis_url)
    assert one.wait_s("beacon", client) == 0.0
    assert two.wait_s("beacon", client) == 0.0
    assert one.wait_s("beacon", client) > 0 and two.wait_s("beacon", client) > 0


def test_redis_down_falls_back_to_this_process() -> None:
    limits = RateLimits({"beacon": (1.0, 2)}, "redis://127.0.0.1:1/0")
    assert [limits.wait_s("beacon", "c") for _ in range(2)] == [0.0, 0.0]
    assert limits.wait_s("beacon", "c") > 0  # still limited, by the local window
