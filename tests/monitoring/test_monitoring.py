"""Serving health over time: per-bucket counts and percentiles as stored, staleness in
time and events, and the event-mix drift statistics equal to scipy's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency
from sqlalchemy import update

from recsdk import RecSDK
from recsdk.monitoring import event_mix_drift, model_staleness, serving_series
from recsdk.storage import models

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)


@pytest.fixture
def sdk(tmp_path: Path) -> Any:
    cfg = {"database_url": f"sqlite:///{tmp_path / 'm.db'}", "pipeline": {"timeout_ms": 10_000},
           "plugins": {"popularity": {}}}
    with RecSDK(cfg, environ={}) as s:
        s.upsert_items([{"id": f"i{n}"} for n in range(5)])
        s.track_many([{"user_id": f"u{n}", "item_id": f"i{n % 5}", "type": "view"}
                      for n in range(20)])
        s.fit()
        yield s


def serve(sdk: Any, n: int, at: datetime, placement: str = "default") -> list[Any]:
    """``n`` lists, moved to ``at`` and given latencies 1..n ms."""
    lists = [sdk.recommend(f"u{i}", placement=placement, k=2) for i in range(n)]
    sdk.request_log.flush()
    table = models.RecommendationRequest.__table__
    with sdk.store.engine.begin() as conn:
        for i, r in enumerate(lists):
            conn.execute(update(table).where(table.c.id == r.request_id).values(
                created_at=at.replace(tzinfo=None), latency_ms=float(i + 1),
                failures=1 if i == 0 else 0))
    return lists


def test_serving_series_per_bucket(sdk: Any) -> None:
    first = serve(sdk, 10, T0 + timedelta(minutes=10))
    serve(sdk, 4, T0 + timedelta(hours=1, minutes=5))
    sdk.log_feedback([{"request_id": first[0].request_id, "item_id": first[0].item_ids[0],
                       "type": "click"},
                      {"request_id": first[1].request_id, "item_id": first[1].item_ids[0],
                       "type": "purchase", "value": 5.0}])
    series = serving_series(sdk.store, T0, T0 + timedelta(hours=3))
    assert list(series["lists"]) == [10, 4]
    assert list(series["bucket"]) == [T0, T0 + timedelta(hours=1)]
    row = series.iloc[0]
    assert row["latency_p50_ms"] == pytest.approx(np.percentile(np.arange(1, 11), 50))
    assert row["latency_p99_ms"] == pytest.approx(np.percentile(np.arange(1, 11), 99))
    assert row["error_rate"] == pytest.approx(0.1) and row["degraded_rate"] == 0
    assert row["ctr"] == pytest.approx(0.1) and row["conversion_rate"] == pytest.approx(0.1)
    assert series.iloc[1]["ctr"] == 0
    assert serving_series(sdk.store, T0, T0 + timedelta(hours=3), placement="cart").empty
    wide = serving_series(sdk.store, T0, T0 + timedelta(hours=3), bucket=timedelta(hours=3))
    assert list(wide["lists"]) == [14]


def test_serving_series_refuses_bad_windows(sdk: Any) -> None:
    with pytest.raises(ValueError, match="must be before until"):
        serving_series(sdk.store, T0, T0)
    with pytest.raises(ValueError, match="at most 31 days"):
        serving_series(sdk.store, T0 - timedelta(days=40), T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        serving_series(sdk.store, T0.replace(tzinfo=None), T0 + timedelta(hours=1))
    with pytest.raises(ValueError, match="bucket must be positive"):
        serving_series(sdk.store, T0, T0 + timedelta(hours=1), bucket=timedelta(0))


def test_model_staleness_counts_events_since_training(sdk: Any) -> None:
    now = datetime.now(UTC)
    fresh = model_staleness(sdk.store, sdk.registry, now)
    assert fresh.run_id == sdk.registry.active_run_id() and fresh.events_since == 0
    assert 0 <= fresh.age_seconds < 600
    sdk.track_many([{"user_id": "u1", "item_id": "i1", "type": "click"}] * 3)
    later = model_staleness(sdk.store, sdk.registry, now + timedelta(hours=2))
    assert later.events_since == 3
    assert later.age_seconds == pytest.approx(fresh.age_seconds + 7200)
    assert later.to_dict()["run_id"] == fresh.run_id


def test_event_mix_drift_is_scipys(sdk: Any) -> None:
    now = datetime.now(UTC)
    old = [{"user_id": "a", "item_id": "i1", "type": t,
            "timestamp": (now - timedelta(days=3)).isoformat()}
           for t in ["view"] * 80 + ["click"] * 15 + ["purchase"] * 5]
    new = [{"user_id": "b", "item_id": "i2", "type": t,
            "timestamp": (now - timedelta(hours=2)).isoformat()}
           for t in ["view"] * 40 + ["click"] * 40 + ["purchase"] * 20]
    sdk.track_many(old + new)
    drift = event_mix_drift(sdk.store, now)
    # the fixture's 20 views are stored now: inside the recent day
    recent = np.array([40, 20, 60])  # click, purchase, view
    reference = np.array([15, 5, 80])
    assert drift.recent == pytest.approx(dict(zip(["click", "purchase", "view"],
                                                  recent / recent.sum(), strict=True)))
    assert drift.js_distance == pytest.approx(
        jensenshannon(recent / recent.sum(), reference / reference.sum(), base=2))
    assert drift.p_value == pytest.approx(chi2_contingency(np.vstack([recent, reference]))[1])
    assert drift.js_distance > 0.1 and drift.p_value < 1e-3
    empty = event_mix_drift(sdk.store, now - timedelta(days=30))
    assert empty.js_distance is None and empty.p_value is None and empty.recent_events == 0
    with pytest.raises(ValueError, match="positive durations"):
        event_mix_drift(sdk.store, now, recent=timedelta(0))


def test_similar_items_lists_have_their_answer_time(sdk: Any) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    served = [sdk.similar_items("i1", 2) for _ in range(3)]
    sdk.request_log.flush()
    series = serving_series(sdk.store, since, datetime.now(UTC) + timedelta(minutes=1),
                            bucket=timedelta(minutes=2), placement="similar")
    assert list(series["lists"]) == [len(served)]
    assert series.iloc[0]["latency_p50_ms"] > 0  # logged, as recommend()'s lists are
