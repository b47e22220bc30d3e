"""Counters and histograms, in a Prometheus registry owned by each SDK instance.

One registry per :class:`recsdk.RecSDK` keeps tests and several SDKs in one process
from sharing counts; the REST app serves it at ``/metrics``.

Every label takes a bounded set of values, since each distinct value is a series kept
in memory for the life of the process (and one more in every scrape): placements are
the configured ones, plugins the enabled ones, hooks the hook specification's names,
and the other labels are literals in recsdk's code. A value outside its set is
counted as ``other``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from recsdk import hookspecs
from recsdk.config import BUILTIN_PLACEMENTS, Settings

#: The label value that stands for every value outside a label's set.
OTHER = "other"
#: Variants are chosen by the shop's code, not configured: the first ones seen keep
#: their name, later ones count as ``other``.
MAX_VARIANT_LABELS = 16
#: Plugin names kept when the enabled plugins are not known (no settings given).
MAX_UNCONFIGURED_PLUGIN_LABELS = 64

M = TypeVar("M", bound=MetricWrapperBase)


class LabelValues:
    """The values one label may take: a fixed set, then up to ``extra`` first seen."""

    def __init__(self, allowed: Iterable[str] = (), extra: int = 0) -> None:
        self.allowed = set(allowed)
        self.extra = extra
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: Any) -> str:
        value = str(value)
        if value in self.allowed or value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.extra:
                self._seen.add(value)
                return value
        return OTHER


class BoundedMetric(Generic[M]):
    """A labelled metric whose ``labels()`` maps each value into its label's set."""

    def __init__(self, metric: M, **values: LabelValues) -> None:
        self.metric = metric
        self.values = values

    def labels(self, **labels: Any) -> M:
        bounded = {name: self.values[name](value) if name in self.values else value
                   for name, value in labels.items()}
        return self.metric.labels(**bounded)


def hook_names() -> set[str]:
    """The hooks of the plugin specification."""
    return {name for name in dir(hookspecs) if name.startswith("recsdk_")}


class Telemetry:
    def __init__(self, settings: Settings | None = None) -> None:
        """``settings`` name the placements and plugins whose labels are kept; without
        them only the built-in placements and the first plugins seen are."""
        self.registry = CollectorRegistry()
        placements = LabelValues(settings.known_placements if settings else BUILTIN_PLACEMENTS)
        plugins = (LabelValues(p.name for p in settings.plugins) if settings
                   else LabelValues(extra=MAX_UNCONFIGURED_PLUGIN_LABELS))
        hooks = LabelValues(hook_names())
        self.plugin_failures = BoundedMetric(Counter(
            "recsdk_plugin_failures", "Plugin calls that raised or timed out",
            ["plugin", "hook", "kind"], registry=self.registry,
        ), plugin=plugins, hook=hooks)
        self.plugin_skipped = BoundedMetric(Counter(
            "recsdk_plugin_skipped", "Plugin calls not made: breaker open or capacity taken",
            ["plugin", "reason"], registry=self.registry,
        ), plugin=plugins)
        self.plugin_breaker_state = BoundedMetric(Gauge(
            "recsdk_plugin_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
            ["plugin"], registry=self.registry,
        ), plugin=plugins)
        self.plugin_in_flight = BoundedMetric(Gauge(
            "recsdk_plugin_in_flight", "Plugin calls running now, abandoned ones included",
            ["plugin"], registry=self.registry,
        ), plugin=plugins)
        self.cache_errors = Counter(
            "recsdk_cache_errors", "Cache operations that failed (cache bypassed)",
            ["backend", "operation"], registry=self.registry,
        )
        self.recommendations = BoundedMetric(Counter(
            "recsdk_recommendations", "recommend() calls", ["placement", "variant", "outcome"],
            registry=self.registry,
        ), placement=placements, variant=LabelValues(["default"], MAX_VARIANT_LABELS))
        self.events = Counter(
            "recsdk_events", "Events offered to ingestion", ["outcome"], registry=self.registry,
        )
        self.latency = BoundedMetric(Histogram(
            "recsdk_recommend_seconds", "recommend() latency", ["placement"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ), placement=placements)
        self.served_dropped = Counter(
            "recsdk_served_dropped", "recsdk_served notifications dropped (queue full)",
            registry=self.registry,
        )
        self.request_log_dropped = Counter(
            "recsdk_request_log_dropped",
            "Served lists whose log was lost (reason: write_failed, queue_full); feedback "
            "on them is refused", ["reason"], registry=self.registry,
        )
        self.request_log_write_failures = Counter(
            "recsdk_request_log_write_failures",
            "Request-log writes that raised (each attempt, including those retried)",
            registry=self.registry,
        )

        # feedback capture from pages: both label sets are literals of recsdk.capture
        from recsdk.capture.events import BEACON_TYPES, REASONS

        self.beacon_accepted = BoundedMetric(Counter(
            "recsdk_beacon_accepted", "Page events stored as feedback (beacon, redirect)",
            ["type"], registry=self.registry,
        ), type=LabelValues(BEACON_TYPES))
        self.beacon_refused = BoundedMetric(Counter(
            "recsdk_beacon_refused",
            "Page events refused, never stored (by reason; a body refused whole counts "
            "once)", ["reason"], registry=self.registry,
        ), reason=LabelValues(REASONS))

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter sample (for tests and the CLI)."""
        got = self.registry.get_sample_value(f"{name}_total", labels)
        return 0.0 if got is None else got

    def series(self) -> int:
        """How many samples a scrape of ``/metrics`` returns (what memory holds)."""
        return sum(len(metric.samples) for metric in self.registry.collect())

    def render(self) -> bytes:
        return generate_latest(self.registry)
