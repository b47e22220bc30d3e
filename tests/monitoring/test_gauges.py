"""The staleness and drift gauges of /metrics: recsdk.monitoring's values, read at
scrape time, cached, and left out (never raised) when the database fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine

from recsdk import RecSDK
from recsdk.monitoring import event_mix_drift, model_staleness
from recsdk.monitoring_gauges import (
    DRIFT_EVENTS,
    DRIFT_JS,
    EVENTS_SINCE,
    MODEL_AGE,
    READ_OK,
    CachedRead,
    MonitoringCollector,
)

#: the collectors' "now": two hours after the models below are trained
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_sdk(path: Path, train: bool = True) -> RecSDK:
    sdk = RecSDK({"database_url": f"sqlite:///{path}", "device": "cpu",
                  "pipeline": {"timeout_ms": 10_000}, "plugins": {"popularity": {}}},
                 environ={})
    sdk.upsert_items([{"id": f"i{n}"} for n in range(5)])
    old = [{"user_id": f"u{n}", "item_id": f"i{n % 5}", "type": t,
            "timestamp": (NOW - timedelta(days=3)).isoformat()}
           for n, t in enumerate(["view"] * 16 + ["purchase"] * 4)]
    sdk.track_many(old)
    if train:
        sdk.fit()
    return sdk


@pytest.fixture
def sdk(tmp_path: Path) -> Iterator[RecSDK]:
    made = make_sdk(tmp_path / "g.db")
    yield made
    made.close()


def collector(sdk: RecSDK, clock: Clock | None = None, **ttl: float
              ) -> tuple[MonitoringCollector, CollectorRegistry]:
    registry = CollectorRegistry()
    made = MonitoringCollector(sdk.store, sdk.registry, now=lambda: NOW,
                               clock=clock or Clock(), **ttl)
    registry.register(made)
    return made, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_gauges_are_the_monitoring_answers(sdk: RecSDK) -> None:
    recent = [{"user_id": "v", "item_id": "i1", "type": t,
               "timestamp": (NOW - timedelta(hours=2)).isoformat()}
              for t in ["view"] * 3 + ["click"] * 3]
    sdk.track_many(recent)
    _, registry = collector(sdk)
    staleness = model_staleness(sdk.store, sdk.registry, now=NOW)
    drift = event_mix_drift(sdk.store, now=NOW)
    assert sample(registry, READ_OK, read="model_staleness") == 1.0
    assert sample(registry, READ_OK, read="event_mix_drift") == 1.0
    assert sample(registry, MODEL_AGE) == pytest.approx(staleness.age_seconds)
    # NOW is fixed at import: the model was trained up to a suite's length later
    assert staleness.trained_at is not None
    assert staleness.age_seconds == pytest.approx((NOW - staleness.trained_at).total_seconds())
    assert 0 < staleness.age_seconds <= 7200
    assert sample(registry, EVENTS_SINCE) == staleness.events_since == 6
    assert drift.js_distance is not None and drift.js_distance > 0.1
    assert sample(registry, DRIFT_JS) == pytest.approx(drift.js_distance)
    assert sample(registry, DRIFT_EVENTS, window="recent") == 6
    assert sample(registry, DRIFT_EVENTS, window="reference") == 20


def test_every_sdk_serves_them_on_its_telemetry(sdk: RecSDK) -> None:
    text = sdk.telemetry.render().decode()
    for name in (MODEL_AGE, EVENTS_SINCE, DRIFT_EVENTS, READ_OK):
        assert f"# TYPE {name} gauge" in text
    assert f"{EVENTS_SINCE} 0.0" in text
    assert f"{MODEL_AGE} " in text
    assert f'{READ_OK}{{read="model_staleness"}} 1.0' in text
    assert f"# TYPE {DRIFT_JS} gauge" in text  # no sample: nothing in the last day


def test_without_an_active_run_there_is_no_age(tmp_path: Path) -> None:
    untrained = make_sdk(tmp_path / "u.db", train=False)
    try:
        _, registry = collector(untrained)
        assert sample(registry, MODEL_AGE) is None
        assert sample(registry, EVENTS_SINCE) == 20  # every event is newer than no model
        assert sample(registry, READ_OK, read="model_staleness") == 1.0
    finally:
        untrained.close()


def test_reads_are_cached_for_their_ttl(sdk: RecSDK) -> None:
    clock = Clock()
    _, registry = collector(sdk, clock, staleness_ttl_s=15, drift_ttl_s=300)
    assert sample(registry, EVENTS_SINCE) == 0
    assert sample(registry, DRIFT_EVENTS, window="recent") == 0
    sdk.track_many([{"user_id": "w", "item_id": "i2", "type": "view",
                     "timestamp": (NOW - timedelta(hours=1)).isoformat()}] * 2)
    clock.t += 14
    assert sample(registry, EVENTS_SINCE) == 0  # cached
    clock.t += 2
    assert sample(registry, EVENTS_SINCE) == 2  # read again
    assert sample(registry, DRIFT_EVENTS, window="recent") == 0  # its own, longer ttl
    clock.t += 300
    assert sample(registry, DRIFT_EVENTS, window="recent") == 2


def test_a_broken_database_leaves_the_gauges_out(sdk: RecSDK, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    made, registry = collector(sdk, clock, retry_s=5)
    assert sample(registry, EVENTS_SINCE) == 0
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    good = sdk.store.engine
    monkeypatch.setattr(sdk.store, "engine", broken)
    monkeypatch.setattr(sdk.registry, "engine", broken)
    clock.t += 400  # both reads are due
    assert sample(registry, READ_OK, read="model_staleness") == 0.0
    assert sample(registry, READ_OK, read="event_mix_drift") == 0.0
    assert sample(registry, EVENTS_SINCE) is None and sample(registry, MODEL_AGE) is None
    assert sample(registry, DRIFT_EVENTS, window="recent") is None
    assert made.staleness.last.error.startswith("OperationalError")
    assert "could not read model_staleness" in caplog.text
    monkeypatch.setattr(sdk.store, "engine", good)
    monkeypatch.setattr(sdk.registry, "engine", good)
    assert sample(registry, READ_OK, read="model_staleness") == 0.0  # retried after 5 s
    clock.t += 5
    assert sample(registry, READ_OK, read="model_staleness") == 1.0
    assert sample(registry, EVENTS_SINCE) == 0


def test_a_scrape_during_a_read_gets_the_previous_values() -> None:
    clock = Clock()
    started, release = threading.Event(), threading.Event()
    values = iter([1, 2])

    def read() -> int:
        value = next(values)
        if value == 2:
            started.set()
            release.wait(10)
        return value

    cached = CachedRead("test", read, ttl_s=10, retry_s=1, clock=clock)
    assert cached.get().value == 1
    clock.t += 11
    slow = threading.Thread(target=cached.get)
    slow.start()
    assert started.wait(10)
    assert cached.get().value == 1  # did not wait for the slow read
    release.set()
    slow.join(10)
    assert cached.get().value == 2


def test_bad_cache_times_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl_s and retry_s must be >= 0"):
        CachedRead("test", lambda: 1, ttl_s=-1, retry_s=1, clock=Clock())


def test_the_collector_describes_without_reading() -> None:
    class Unreadable:
        @property
        def engine(self) -> Any:
            raise AssertionError("read at registration")

    made = MonitoringCollector(Unreadable(), Unreadable())
    registry = CollectorRegistry()
    registry.register(made)  # describe(): names only
    assert {f.name for f in made.describe()} >= {MODEL_AGE, DRIFT_JS, READ_OK}
    assert made.staleness.last.taken_at == float("-inf")
