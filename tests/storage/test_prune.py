"""Served lists past their retention are pruned in batches; lists with feedback stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recsdk import maintenance
from recsdk.config import load_settings
from recsdk.errors import ConfigurationError
from recsdk.storage.store import Store

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
K = 4


def served(request_id: str, age_days: float) -> dict[str, Any]:
    return {"request_id": request_id, "user_id": None, "session_id": f"s-{request_id}",
            "placement": "default", "variant": "default", "config_hash": "h",
            "plugins": ["popularity"], "degraded": False,
            "created_at": NOW - timedelta(days=age_days),
            "items": [(f"i{n}", n + 1, 1.0) for n in range(K)]}


@pytest.fixture
def store(empty_database_url: str) -> Iterator[Store]:
    """Seven old lists (two clicked), five recent ones (one clicked)."""
    store = Store(empty_database_url)
    store.create_all()
    old = [served(f"old{n}", 40 + n) for n in range(7)]
    recent = [served(f"new{n}", n) for n in range(5)]
    store.record_requests(old + recent)
    store.add_feedback([
        {"request_id": rid, "user_id": None, "item_id": "i1", "type": "click",
         "position": 2, "value": None, "variant": "default", "timestamp": NOW}
        for rid in ("old1", "old5", "new2")])
    yield store
    store.close()


def remaining(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.exec_driver_sql("SELECT id FROM recommendation_requests").scalars())


def test_old_lists_go_in_batches_and_those_with_feedback_stay(store: Store) -> None:
    cutoff = NOW - timedelta(days=30)
    assert store.count_prunable_requests(cutoff) == {"requests": 5, "impressions": 5 * K}
    assert store.prune_requests(cutoff, batch=2) == {"requests": 5, "impressions": 5 * K}
    assert remaining(store) == {"old1", "old5"} | {f"new{n}" for n in range(5)}
    assert store.count_served() == {"requests": 7, "impressions": 7 * K, "feedback": 3}
    info = store.request_info(["old1"])["old1"]  # still credits its feedback
    assert info["positions"] == {f"i{n}": n + 1 for n in range(K)}
    assert store.prune_requests(cutoff, batch=2) == {"requests": 0, "impressions": 0}
    assert store.count_prunable_requests(cutoff) == {"requests": 0, "impressions": 0}


@pytest.mark.parametrize("batch", [1, 3, 5, 1000])
def test_every_batch_size_prunes_the_same(store: Store, batch: int) -> None:
    removed = store.prune_requests(NOW - timedelta(days=30), batch=batch)
    assert removed == {"requests": 5, "impressions": 5 * K}


def test_a_batch_below_one_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="batch must be at least 1, got 0"):
        store.prune_requests(NOW, batch=0)


def test_the_retention_setting_decides_by_default(store: Store) -> None:
    settings = load_settings({"retention": {"requests_days": 42, "prune_batch": 2}},
                             environ={})
    # older than 42 days: old3, old4, old5 and old6 (43 to 46 days); old5 has feedback
    assert maintenance.prune(store, settings, now=NOW, dry_run=True) == {
        "requests": 3, "impressions": 3 * K}
    assert len(remaining(store)) == 12  # a dry run deletes nothing
    assert maintenance.prune(store, settings, now=NOW) == {"requests": 3,
                                                           "impressions": 3 * K}
    assert {"old0", "old2"} <= remaining(store)  # 40 days, and exactly 42 days old
    everything = maintenance.prune(store, settings, now=NOW, older_than_days=0)
    assert everything == {"requests": 5, "impressions": 5 * K}  # old0, old2, new1, 3, 4
    assert remaining(store) == {"old1", "old5", "new2", "new0"}  # new0: created at NOW


def test_a_negative_period_is_refused(store: Store) -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValueError, match="cannot be negative, got -1 days"):
        maintenance.prune(store, settings, older_than_days=-1)


def test_retention_settings_are_validated() -> None:
    defaults = load_settings(environ={}).retention
    assert defaults == {"requests_days": 30, "prune_batch": 1000}
    with pytest.raises(ConfigurationError, match=r"retention\.requests_days"):
        load_settings({"retention": {"requests_days": 0}}, environ={})
    with pytest.raises(ConfigurationError, match=r"retention\.prune_batch"):
        load_settings({"retention": {"prune_batch": 0}}, environ={})
    with pytest.raises(ConfigurationError, match=r"retention\.days"):
        load_settings({"retention": {"days": 3}}, environ={})
