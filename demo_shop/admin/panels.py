"""What each section of the dashboard shows, read from recsdk's public API.

Nothing here is the dashboard's own bookkeeping: plugin health is what ``/healthz``
reports (``sdk.plugins.isolation_health()``) with the failure counters of ``/metrics``;
model runs are the registry's and jobs the SDK's; experiments are
:mod:`recsdk.experiments.report` and its cumulative series; monitoring is
:mod:`recsdk.monitoring`. Each section is built on its own, so one that cannot be read
(a broken report, say) shows its error and the others still render.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pandas as pd

from recsdk import RecSDK
from recsdk.experiments.config import ExperimentSettings
from recsdk.experiments.html import plot_pngs
from recsdk.experiments.report import ExperimentReport, experiment_report
from recsdk.experiments.timeseries import cumulative_series
from recsdk.monitoring import (
    EventMixDrift,
    Staleness,
    event_mix_drift,
    model_staleness,
    serving_series,
)
from recsdk.registry import RunInfo, UnknownRun

log = logging.getLogger(__name__)
T = TypeVar("T")


# ---- a section that may fail on its own --------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A section's content, or why it could not be read."""

    value: Any = None
    error: str | None = None


def section(name: str, build: Callable[[], T]) -> Section:
    try:
        return Section(build())
    except Exception as exc:  # the rest of the dashboard still renders
        log.exception("admin dashboard: could not build the %s section", name)
        return Section(None, f"{type(exc).__name__}: {exc}")


# ---- the window of the monitoring section ------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A monitoring window: how far back, and the width of one plotted bucket."""

    key: str
    label: str
    length: timedelta
    bucket: timedelta

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """``[since, until)`` of ``length``, ending at the end of the bucket holding
        ``now`` (buckets aligned on the clock: whole hours, five minutes...)."""
        step = self.bucket.total_seconds()
        end = (math.floor(now.timestamp() / step) + 1) * step
        until = datetime.fromtimestamp(end, UTC)
        return until - self.length, until


WINDOWS: dict[str, Window] = {w.key: w for w in (
    Window("1h", "last hour", timedelta(hours=1), timedelta(minutes=5)),
    Window("24h", "last 24 hours", timedelta(days=1), timedelta(hours=1)),
    Window("7d", "last 7 days", timedelta(days=7), timedelta(hours=6)),
)}
DEFAULT_WINDOW = "24h"
#: The reference window of the event-mix drift, in recent windows before it.
DRIFT_REFERENCE = 7


class BadWindow(ValueError):
    """A ``window`` parameter that is not one of :data:`WINDOWS`."""


def parse_window(text: str | None) -> Window:
    if text is None or text == "":
        return WINDOWS[DEFAULT_WINDOW]
    if text not in WINDOWS:
        raise BadWindow(f"window must be one of {', '.join(WINDOWS)} (got {text[:40]!r})")
    return WINDOWS[text]


# ---- plugins ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginRow:
    name: str
    weight: float
    in_active_run: bool
    breaker: str
    consecutive_failures: int
    in_flight: int
    max_concurrency: int
    retry_in_s: float | None
    #: calls that raised, timed out or answered badly since this process started, by kind
    failures: dict[str, int]
    #: calls not made (breaker open, capacity taken) since this process started, by reason
    skipped: dict[str, int]

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def _counter_totals(metric: Any, key: str) -> dict[str, dict[str, int]]:
    """A labelled counter's ``_total`` samples summed per plugin and per ``key`` label."""
    out: dict[str, dict[str, int]] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                per = out.setdefault(sample.labels["plugin"], {})
                label = sample.labels[key]
                per[label] = per.get(label, 0) + int(sample.value)
    return out


def plugin_rows(sdk: RecSDK) -> list[PluginRow]:
    """Each enabled plugin: weight, whether the served run holds its state, its circuit
    breaker and capacity (``/healthz``) and its failure counters (``/metrics``)."""
    health = sdk.plugins.isolation_health()
    failures = _counter_totals(sdk.telemetry.plugin_failures.metric, "kind")
    skipped = _counter_totals(sdk.telemetry.plugin_skipped.metric, "reason")
    run_id = sdk.model_run
    try:
        in_run = set(sdk.registry.get(run_id).plugins) if run_id else set()
    except UnknownRun:  # the served run was pruned from the registry meanwhile
        in_run = set()
    rows = []
    for p in sdk.settings.plugins:
        h = health.get(p.name, {})
        rows.append(PluginRow(p.name, p.weight, p.name in in_run, h.get("breaker", "unknown"),
                              int(h.get("consecutive_failures", 0)), int(h.get("in_flight", 0)),
                              int(h.get("max_concurrency", 0)), h.get("retry_in_s"),
                              failures.get(p.name, {}), skipped.get(p.name, {})))
    return rows


@dataclass(frozen=True)
class Health:
    """The ``/healthz`` answer's headline: database, cache, the run served."""

    status: str
    database: str
    cache: str
    model_run: str | None


def health(sdk: RecSDK, plugins: list[PluginRow]) -> Health:
    try:
        sdk.store.ping()
        database = "ok"
    except Exception as exc:
        database = f"unreachable ({type(exc).__name__})"
    available = bool(getattr(sdk.cache, "available", True))
    cache = sdk.cache.name + ("" if available else " (unavailable: bypassed)")
    tripped = any(p.breaker != "closed" for p in plugins)
    status = "unavailable" if database != "ok" else "degraded" if tripped else "ok"
    return Health(status, database, cache, sdk.model_run)


# ---- model runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Runs:
    runs: list[RunInfo]
    #: training jobs of this process, newest first
    jobs: list[dict[str, Any]]
    #: the run this process serves (the registry's active one, or the previous one
    #: until it picks the new one up)
    serving: str | None


def model_runs(sdk: RecSDK, limit: int = 20) -> Runs:
    return Runs(sdk.registry.list_runs(limit=limit), sdk.jobs.recent(10), sdk.model_run)


# ---- experiments --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentPanel:
    summary: dict[str, Any]
    report: ExperimentReport
    #: base64 PNGs: "lift" (cumulative relative lift) and "units"
    plots: dict[str, str] = field(default_factory=dict)


def experiment_panel(sdk: RecSDK, experiment: ExperimentSettings, now: datetime
                     ) -> ExperimentPanel:
    """The experiment's report now and its cumulative series up to now (the page that
    ``recsdk experiments report --format html`` writes, as tables and plots)."""
    report = experiment_report(sdk.store, experiment, now=now)
    series = cumulative_series(sdk.store, experiment, now=now)
    return ExperimentPanel(experiment.summary(now), report, plot_pngs(series))


# ---- monitoring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Monitoring:
    window: Window
    since: datetime
    until: datetime
    #: serving_series per bucket (plotted) and over the whole window (the table)
    series: pd.DataFrame
    totals: list[dict[str, Any]]
    staleness: Staleness
    drift: EventMixDrift
    drift_recent: timedelta
    drift_reference: timedelta

    @property
    def placements(self) -> list[str]:
        return sorted(set(self.series["placement"]))

    def drift_rows(self) -> list[tuple[str, float | None, float | None]]:
        """Each event type with its share in the recent and the reference window."""
        types = sorted(set(self.drift.recent) | set(self.drift.reference))
        return [(t, self.drift.recent.get(t), self.drift.reference.get(t)) for t in types]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, NaN as None (a bucket whose lists have no logged latency)."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def monitoring(sdk: RecSDK, window: Window, now: datetime) -> Monitoring:
    since, until = window.bounds(now)
    series = serving_series(sdk.store, since, until, bucket=window.bucket)
    totals = serving_series(sdk.store, since, until, bucket=until - since)
    reference = window.length * DRIFT_REFERENCE
    return Monitoring(window, since, until, series, _records(totals),
                      model_staleness(sdk.store, sdk.registry, now=now),
                      event_mix_drift(sdk.store, now=now, recent=window.length,
                                      reference=reference),
                      window.length, reference)
