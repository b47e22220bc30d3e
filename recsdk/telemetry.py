"""Counters and histograms, in a Prometheus registry owned by each SDK instance.

One registry per :class:`recsdk.RecSDK` keeps tests and several SDKs in one process
from sharing counts; the REST app serves it at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.plugin_failures = Counter(
            "recsdk_plugin_failures", "Plugin calls that raised or timed out",
            ["plugin", "hook", "kind"], registry=self.registry,
        )
        self.plugin_skipped = Counter(
            "recsdk_plugin_skipped", "Plugin calls not made: breaker open or capacity taken",
            ["plugin", "reason"], registry=self.registry,
        )
        self.plugin_breaker_state = Gauge(
            "recsdk_plugin_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
            ["plugin"], registry=self.registry,
        )
        self.plugin_in_flight = Gauge(
            "recsdk_plugin_in_flight", "Plugin calls running now, abandoned ones included",
            ["plugin"], registry=self.registry,
        )
        self.cache_errors = Counter(
            "recsdk_cache_errors", "Cache operations that failed (cache bypassed)",
            ["backend", "operation"], registry=self.registry,
        )
        self.recommendations = Counter(
            "recsdk_recommendations", "recommend() calls", ["placement", "variant", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "recsdk_events", "Events offered to ingestion", ["outcome"], registry=self.registry,
        )
        self.latency = Histogram(
            "recsdk_recommend_seconds", "recommend() latency", ["placement"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

        self.served_dropped = Counter(
            "recsdk_served_dropped", "recsdk_served notifications dropped (queue full)",
            registry=self.registry,
        )

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter sample (for tests and the CLI)."""
        got = self.registry.get_sample_value(f"{name}_total", labels)
        return 0.0 if got is None else got

    def render(self) -> bytes:
        return generate_latest(self.registry)
