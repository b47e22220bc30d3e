"""Concurrent ingestion checks, run on SQLite and on PostgreSQL by their own modules."""

from __future__ import annotations

from recsdk import RecSDK
from recsdk.api import create_app
from tests.api.helpers import live_server, post_concurrently

THREADS = 8
REQUESTS = 50


def check_nothing_lost_or_doubled(sdk: RecSDK) -> None:
    """THREADS x REQUESTS single-event posts: exactly that many stored, each once."""
    bodies = [[{"user_id": f"t{t}", "item_id": f"t{t}-n{n}", "type": "view"}
               for n in range(REQUESTS)] for t in range(THREADS)]
    with live_server(create_app(sdk), threads=THREADS) as address:
        answers = post_concurrently(address, bodies)
    assert len(answers) == THREADS * REQUESTS
    assert {status for status, _ in answers} == {201}
    assert all(a == {"received": 1, "stored": 1, "duplicates": 0} for _, a in answers)
    frame = sdk.store.events_frame()
    assert len(frame) == THREADS * REQUESTS
    assert set(zip(frame["user_id"], frame["item_id"], strict=True)) == {
        (b["user_id"], b["item_id"]) for per_thread in bodies for b in per_thread}


def check_same_event_id_stored_once(sdk: RecSDK, rounds: int = 10) -> None:
    """Every thread posts the same event_ids at the same time: each is stored once."""
    bodies = [[{"user_id": "u", "item_id": f"i{r}", "type": "purchase", "event_id": f"e-{r}",
                "session_id": f"thread-{t}"} for r in range(rounds)] for t in range(THREADS)]
    with live_server(create_app(sdk), threads=THREADS) as address:
        answers = post_concurrently(address, bodies)
    assert {status for status, _ in answers} <= {200, 201}
    assert sum(a["stored"] for _, a in answers) == rounds
    assert sum(a["duplicates"] for _, a in answers) == rounds * (THREADS - 1)
    frame = sdk.store.events_frame()
    assert sorted(frame["item_id"]) == sorted(f"i{r}" for r in range(rounds))
