"""Model staleness and event-mix drift on ``/metrics``, read from the database at scrape.

The counters of :mod:`recsdk.telemetry` are per process and since its start; these
gauges are :mod:`recsdk.monitoring`'s answers, read from the database, so every
serving process reports the same values and an alert can fire on "the model is two
days old" or "the mix of event types changed" without a dashboard open.

A scrape must stay cheap and must never fail because of them: each read is cached (the
staleness for :data:`STALENESS_TTL_S`, the drift, which scans the events of the last
eight days, for :data:`DRIFT_TTL_S`), a scrape that arrives while another one reads
gets the previous values instead of waiting, and a read that raises is logged
(throttled) and reported as ``recsdk_monitoring_read_ok{read=...} 0`` with its gauges
left out (never stale values that look current); it is retried after :data:`RETRY_S`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from recsdk.log_throttle import ThrottledLog

log = logging.getLogger(__name__)
#: Seconds between two log lines of one read's repeating failure.
LOG_EVERY_S = 60.0

#: Seconds a staleness read is reused (two cheap queries: the active run, a count of
#: the events stored after its data).
STALENESS_TTL_S = 15.0
#: Seconds a drift read is reused (it groups the last 8 days of events by type: a
#: statistic of days, read every few minutes).
DRIFT_TTL_S = 300.0
#: Seconds after a failed read before the next attempt.
RETRY_S = 5.0

#: The gauges' names, as ``/metrics`` shows them.
READ_OK = "recsdk_monitoring_read_ok"
READ_SECONDS = "recsdk_monitoring_read_seconds"
MODEL_AGE = "recsdk_model_age_seconds"
EVENTS_SINCE = "recsdk_model_events_since_training"
DRIFT_JS = "recsdk_event_mix_js_distance"
DRIFT_EVENTS = "recsdk_event_mix_events"

READS = ("model_staleness", "event_mix_drift")


@dataclass(frozen=True)
class Reading:
    """One read's outcome: its value or the error, when it was taken and how long it
    took (``taken_at`` on the collector's monotonic clock; -inf: never read)."""

    value: Any = None
    error: str | None = None
    taken_at: float = -math.inf
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.taken_at > -math.inf


class CachedRead:
    """A database read reused for ``ttl_s`` (a failure for ``retry_s``); concurrent
    callers do not queue behind a read in progress once there is a previous one."""

    def __init__(self, name: str, read: Callable[[], Any], ttl_s: float, retry_s: float,
                 clock: Callable[[], float]) -> None:
        if ttl_s < 0 or retry_s < 0:
            raise ValueError(f"ttl_s and retry_s must be >= 0, got {ttl_s} and {retry_s}")
        self.name = name
        self._read = read
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = ThrottledLog(log, LOG_EVERY_S)
        self.last = Reading()

    def get(self) -> Reading:
        last = self.last
        if self._clock() - last.taken_at < (self.ttl_s if last.error is None else self.retry_s):
            return last
        never_read = last.taken_at == -math.inf
        if not self._lock.acquire(blocking=never_read):
            return last  # another scrape is reading: its result serves the next one
        try:
            if self.last is not last:  # read by the scrape we waited for
                return self.last
            start = self._clock()
            try:
                value = self._read()
                self.last = Reading(value, None, start, self._clock() - start)
            except Exception as exc:  # a broken database must not break /metrics
                self._failures.warning(
                    self.name, f"/metrics: could not read {self.name} from the database "
                    f"({type(exc).__name__}: {exc}); its gauges are left out and {READ_OK} "
                    "is 0", exc)
                self.last = Reading(None, f"{type(exc).__name__}: {exc}", start,
                                    self._clock() - start)
            return self.last
        finally:
            self._lock.release()


class MonitoringCollector(Collector):
    """Prometheus collector of the staleness and drift gauges of one SDK's database.

    ``store`` and ``registry`` are the SDK's (``sdk.store``, ``sdk.registry``); ``now``
    and ``clock`` are for tests (wall time of the reads, monotonic time of the cache).
    """

    def __init__(self, store: Any, registry: Any, *,
                 staleness_ttl_s: float = STALENESS_TTL_S, drift_ttl_s: float = DRIFT_TTL_S,
                 retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self.staleness = CachedRead("model_staleness",
                                    lambda: _staleness(store, registry, now()),
                                    staleness_ttl_s, retry_s, clock)
        self.drift = CachedRead("event_mix_drift", lambda: _drift(store, now()),
                                drift_ttl_s, retry_s, clock)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The gauges' names without reading anything (for the registry's checks)."""
        yield from _families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok, seconds, age, since, js, events = _families()
        readings = {"model_staleness": self.staleness.get(),
                    "event_mix_drift": self.drift.get()}
        for name, reading in readings.items():
            ok.add_metric([name], 1.0 if reading.ok else 0.0)
            seconds.add_metric([name], reading.seconds)
        yield ok
        yield seconds
        staleness = readings["model_staleness"]
        if staleness.ok:
            trained_at, events_since = staleness.value
            if trained_at is not None:  # age at this scrape, not at the cached read
                age.add_metric([], max(0.0, (self._now() - trained_at).total_seconds()))
            since.add_metric([], float(events_since))
            yield age
            yield since
        drift = readings["event_mix_drift"]
        if drift.ok:
            if drift.value.js_distance is not None:
                js.add_metric([], drift.value.js_distance)
            events.add_metric(["recent"], float(drift.value.recent_events))
            events.add_metric(["reference"], float(drift.value.reference_events))
            yield js
            yield events


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(READ_OK, "1 when the last database read behind the monitoring "
                          "gauges succeeded, 0 when it failed (its gauges are then left "
                          "out)", labels=["read"]),
        GaugeMetricFamily(READ_SECONDS, "Seconds the last database read behind the "
                          "monitoring gauges took", labels=["read"]),
        GaugeMetricFamily(MODEL_AGE, "Seconds since the active model run finished "
                          "training (absent when no run is active)"),
        GaugeMetricFamily(EVENTS_SINCE, "Events stored after the last event the active "
                          "run was trained on (all events when none is active)"),
        GaugeMetricFamily(DRIFT_JS, "Jensen-Shannon distance (base 2) between the "
                          "event-type mix of the last day and of the 7 days before it "
                          "(absent when either window has no events)"),
        GaugeMetricFamily(DRIFT_EVENTS, "Events in each window of the event-mix drift",
                          labels=["window"]),
    )


def _staleness(store: Any, registry: Any, now: datetime) -> tuple[datetime | None, int]:
    from recsdk.monitoring import model_staleness  # pandas and scipy: only when scraped

    found = model_staleness(store, registry, now=now)
    return found.trained_at, found.events_since


def _drift(store: Any, now: datetime) -> Any:
    from recsdk.monitoring import event_mix_drift

    return event_mix_drift(store, now=now)


def register_monitoring_gauges(collector_registry: Any, store: Any,
                               registry: Any) -> MonitoringCollector:
    """Add the gauges of ``store``'s database to a Prometheus registry (the SDK's
    ``telemetry.registry``, which ``/metrics`` serves)."""
    collector = MonitoringCollector(store, registry)
    collector_registry.register(collector)
    return collector
