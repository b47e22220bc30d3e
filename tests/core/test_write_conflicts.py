"""Concurrent writers on PostgreSQL: overlapping batches never deadlock into an error."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy.exc import OperationalError

from recsdk.storage.retry import is_conflict
from recsdk.storage.store import Store

pytestmark = pytest.mark.postgres


def test_overlapping_batches_in_different_orders_store_each_event_once(postgres_url):
    store = Store(postgres_url)
    store.upgrade()
    events = [{"user_id": f"u{n % 7}", "item_id": f"i{n % 11}", "type": "view",
               "event_id": f"e{n}"} for n in range(300)]
    errors: list[BaseException] = []
    offered: set[str] = set()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(6):
            batch = rng.sample(events, 200)  # overlapping, each in its own order
            offered.update(e["event_id"] for e in batch)
            try:
                store.add_events(batch)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count_events() == len(offered)
    with store.engine.connect() as conn:
        dupes = conn.exec_driver_sql(
            "SELECT count(*) FROM (SELECT event_id FROM events GROUP BY event_id "
            "HAVING count(*) > 1) d").scalar()
    assert dupes == 0
    store.close()


def test_only_deadlocks_and_serialisation_failures_are_retried():
    class Orig(Exception):
        def __init__(self, sqlstate):
            self.sqlstate = sqlstate

    assert is_conflict(OperationalError("x", {}, Orig("40P01")))
    assert is_conflict(OperationalError("x", {}, Orig("40001")))
    assert not is_conflict(OperationalError("x", {}, Orig("08006")))  # connection lost
    assert not is_conflict(ValueError("x"))
