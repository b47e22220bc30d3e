"""The served-list log retries failed writes, and counts and logs what it still loses."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from recsdk.request_log import RequestLog
from recsdk.storage.store import Store
from recsdk.telemetry import Telemetry
from tests.core.shop import fill

#: Fast retries for tests: five attempts within half a second.
FAST = {"retry_attempts": 5, "retry_budget_s": 0.5, "retry_initial_s": 0.01,
        "interval_s": 0.02, "linger_s": 0.01}


class FlakyStore:
    """Passes record_requests to a real store after failing the first ``failures`` calls
    (all of them with ``failures=None``), as a database that restarts does."""

    def __init__(self, store: Store, failures: int | None) -> None:
        self.store = store
        self.failures = failures
        self.calls = 0

    def record_requests(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise OperationalError("INSERT INTO recommendation_requests", {},
                                   Exception("server closed the connection"))
        self.store.record_requests(records)


def record(request_id: str, items: int = 3) -> dict[str, Any]:
    return {"request_id": request_id, "user_id": "u1", "session_id": None,
            "placement": "default", "variant": "default", "config_hash": "h",
            "plugins": ["popularity"], "degraded": False, "created_at": datetime.now(UTC),
            "items": [(f"i{n}", n + 1, 1.0 / (n + 1)) for n in range(items)]}


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    store = Store(sqlite_url)
    store.create_all()
    yield store
    store.close()


@pytest.fixture
def make_log() -> Iterator[Any]:
    made: list[RequestLog] = []

    def build(store: Any, **kwargs: Any) -> RequestLog:
        log = RequestLog(store, telemetry=Telemetry(), **{**FAST, **kwargs})
        made.append(log)
        return log

    yield build
    for log in made:
        log.close()


def dropped(log: RequestLog, reason: str) -> float:
    return log.telemetry.value("recsdk_request_log_dropped", reason=reason)


def test_a_write_that_fails_twice_is_retried_and_stored(store: Store, make_log: Any) -> None:
    flaky = FlakyStore(store, failures=2)
    log = make_log(flaky)
    for n in range(5):
        log.add(record(f"r{n}"))
    assert log.flush(timeout_s=5)
    assert store.count_served() == {"requests": 5, "impressions": 15, "feedback": 0}
    assert log.telemetry.value("recsdk_request_log_write_failures") == 2
    assert dropped(log, "write_failed") == 0


def test_a_write_that_always_fails_is_counted_and_logged_not_hung(
        store: Store, make_log: Any, caplog: pytest.LogCaptureFixture) -> None:
    log = make_log(FlakyStore(store, failures=None))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="recsdk.request_log"):
        for n in range(4):
            log.add(record(f"r{n}"))
        assert log.flush(timeout_s=10)
    assert time.monotonic() - started < 5  # the retry budget (0.5 s) and a little
    assert dropped(log, "write_failed") == 4
    assert 2 <= log.telemetry.value("recsdk_request_log_write_failures") <= 5
    assert store.count_served()["requests"] == 0
    lost = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert lost and "could not log 4 served list(s) (r0, r1, r2" in lost[0].getMessage()
    assert lost[0].exc_info is not None
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_a_bad_record_costs_only_itself(store: Store, make_log: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    store.record_requests([record("taken")])
    log = make_log(store, linger_s=0.5)
    with caplog.at_level(logging.WARNING, logger="recsdk.request_log"):
        for request_id in ("a", "taken", "b"):  # one batch; "taken" breaks its key
            log.add(record(request_id))
        assert log.flush(timeout_s=10)
    assert store.request_info(["a", "b"]).keys() == {"a", "b"}
    assert store.count_served()["requests"] == 3
    assert dropped(log, "write_failed") == 1
    # a constraint is not retried: one failed batch, then one failed record
    assert log.telemetry.value("recsdk_request_log_write_failures") == 2
    assert any("(taken)" in r.getMessage() for r in caplog.records if r.levelno >= 40)


def test_a_full_queue_is_counted_and_logged(store: Store, make_log: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    class SlowStore:
        def record_requests(self, records: Sequence[Mapping[str, Any]]) -> None:
            release.wait(5)
            store.record_requests(records)

    log = make_log(SlowStore(), max_queue=3, batch=1)
    with caplog.at_level(logging.WARNING, logger="recsdk.request_log"):
        log.add(record("first"))
        deadline = time.monotonic() + 5
        while log._queue.qsize() and time.monotonic() < deadline:  # the writer took it
            time.sleep(0.01)
        for n in range(10):
            log.add(record(f"r{n}"))
    release.set()
    assert log.flush(timeout_s=10)
    assert dropped(log, "queue_full") == 7
    assert store.count_served()["requests"] == 4
    warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(warnings) == 1  # one warning per interval, the counter has them all


def test_flush_waits_for_a_batch_being_retried(store: Store, make_log: Any) -> None:
    log = make_log(FlakyStore(store, failures=3), retry_initial_s=0.05, retry_budget_s=2)
    log.add(record("late"))
    assert log.flush(timeout_s=5)
    assert "late" in store.request_info(["late"])


def test_feedback_on_a_list_whose_log_is_being_retried_is_accepted(make_sdk: Any) -> None:
    sdk = make_sdk({"plugins": {"popularity": {}}})
    fill(sdk)
    sdk.fit()
    sdk.request_log.close()
    flaky = FlakyStore(sdk.store, failures=2)
    sdk.request_log = RequestLog(flaky, telemetry=sdk.telemetry, **FAST)
    served = sdk.recommend("u3", k=3)
    (feedback,) = sdk.log_feedback([{"request_id": served.request_id,
                                     "item_id": served.items[2].item_id, "type": "click"}])
    assert feedback.position == 3
    assert flaky.calls == 3
    assert sdk.store.count_served()["feedback"] == 1


class SlowStore:
    """Takes 50 ms per batch, as a busy database does."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def record_requests(self, records: Sequence[Mapping[str, Any]]) -> None:
        time.sleep(0.05)
        self.written += [r["request_id"] for r in records]


def test_flush_waits_for_what_was_queued_before_it_not_for_later_traffic(make_log):
    store = SlowStore()
    log = make_log(store)
    stop = threading.Event()

    def traffic() -> None:  # a steady stream of served lists: the queue is never empty
        n = 0
        while not stop.is_set():
            log.add(record(f"later-{n}"))
            n += 1
            time.sleep(0.001)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.1)
        log.add(record("clicked"))
        started = time.monotonic()
        assert log.flush(timeout_s=5)
        waited = time.monotonic() - started
        assert "clicked" in store.written
        assert waited < 1.0  # not the 5 s a wait for an empty queue would take
    finally:
        stop.set()
        thread.join()
