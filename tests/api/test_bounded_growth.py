"""Anonymous traffic with made-up placements grows neither the metrics nor the log."""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from recsdk import RecSDK
from recsdk.api import create_app


def metric_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_a_thousand_random_placements_add_no_series_and_no_rows(
        make_sdk: Callable[..., RecSDK]) -> None:
    sdk = make_sdk(placements={"cart": {"k": 2}})
    client = create_app(sdk).test_client()
    for placement in ("default", "cart"):
        assert client.get(f"/api/v1/recommendations?session_id=s0&placement={placement}"
                          ).status_code == 200
    sdk.request_log.flush()
    rows = sdk.store.count_served()
    series = metric_lines(client.get("/metrics").get_data(as_text=True))
    rng = random.Random(3)
    for n in range(1000):
        placement = "".join(rng.choices(string.ascii_lowercase + "-_", k=10))
        answer = client.get(f"/api/v1/recommendations?session_id=anon-{n}"
                            f"&placement={placement}")
        assert answer.status_code == 422
    sdk.request_log.flush()
    assert metric_lines(client.get("/metrics").get_data(as_text=True)) == series
    assert sdk.store.count_served() == rows
