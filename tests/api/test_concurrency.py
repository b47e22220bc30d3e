"""Many clients posting at once to waitress on the embedded SQLite database."""

from __future__ import annotations

from recsdk import RecSDK
from tests.api.concurrency import check_nothing_lost_or_doubled, check_same_event_id_stored_once


def test_concurrent_posts_lose_and_double_nothing(sdk: RecSDK) -> None:
    check_nothing_lost_or_doubled(sdk)


def test_concurrent_posts_of_one_event_id_store_it_once(sdk: RecSDK) -> None:
    check_same_event_id_stored_once(sdk)
