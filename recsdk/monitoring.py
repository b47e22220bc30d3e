"""Serving health over time, read from the request log: what a dashboard plots.

Three questions an operator asks of a running recommender:

* **Is it serving well?** :func:`serving_series`: per time bucket, placement and
  variant, the lists served, answer-time percentiles, error and degraded rates, and the
  click-through and conversion of those lists (feedback joined by request id).
* **Is the model stale?** :func:`model_staleness`: the active run's age and the events
  stored since the data it was trained on.
* **Has the traffic changed?** :func:`event_mix_drift`: the mix of event types in a
  recent window against the window before it (Jensen-Shannon distance and a chi-square
  test, scipy's), which flags a broken tracker or a changed shop before the metrics do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency
from sqlalchemy import case, func, select

from recsdk.storage import models

#: Longest window :func:`serving_series` reads (it reads one row per served list).
MAX_WINDOW = timedelta(days=31)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _window(since: datetime, until: datetime) -> None:
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware datetimes")
    if not since < until:
        raise ValueError(f"since ({since.isoformat()}) must be before until "
                         f"({until.isoformat()})")
    if until - since > MAX_WINDOW:
        raise ValueError(f"the window may span at most {MAX_WINDOW.days} days, got "
                         f"{(until - since).days}; read a shorter one")


SERIES_COLUMNS = ["bucket", "placement", "variant", "lists", "latency_p50_ms",
                  "latency_p95_ms", "latency_p99_ms", "error_rate", "degraded_rate", "ctr",
                  "conversion_rate"]


def serving_series(store: Any, since: datetime, until: datetime, *,
                   bucket: timedelta = timedelta(hours=1),
                   placement: str | None = None) -> pd.DataFrame:
    """One row per (bucket start, placement, variant) with lists served in
    ``[since, until)``: ``lists``, ``latency_p50_ms``/``p95``/``p99``, ``error_rate``
    (a plugin call failed), ``degraded_rate``, ``ctr`` (lists clicked / lists) and
    ``conversion_rate`` (lists with a purchase / lists). QA-forced lists count: this is
    about serving, not about an experiment's analysis."""
    _window(since, until)
    if bucket <= timedelta(0):
        raise ValueError(f"bucket must be positive, got {bucket}")
    req = models.RecommendationRequest.__table__
    fb = models.Feedback.__table__
    where = [req.c.created_at >= _naive(since), req.c.created_at < _naive(until)]
    if placement is not None:
        where.append(req.c.placement == placement)
    reactions = (select(fb.c.request_id,
                        func.max(case((fb.c.type == "click", 1), else_=0)).label("clicked"),
                        func.max(case((fb.c.type == "purchase", 1), else_=0)).label("bought"))
                 .join(req, req.c.id == fb.c.request_id).where(*where)
                 .group_by(fb.c.request_id).subquery())
    stmt = (select(req.c.created_at, req.c.placement, req.c.variant, req.c.latency_ms,
                   req.c.failures, req.c.degraded,
                   func.coalesce(reactions.c.clicked, 0), func.coalesce(reactions.c.bought, 0))
            .select_from(req.outerjoin(reactions, reactions.c.request_id == req.c.id))
            .where(*where))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    frame = pd.DataFrame(rows, columns=["at", "placement", "variant", "latency_ms", "failures",
                                        "degraded", "clicked", "bought"])
    at = pd.to_datetime(frame["at"], utc=True)
    step = pd.Timedelta(bucket)
    frame["bucket"] = pd.Timestamp(since) + ((at - pd.Timestamp(since)) // step) * step
    frame["errored"] = (frame["failures"].fillna(0) > 0).astype(float)
    frame["degraded"] = frame["degraded"].astype(float)
    grouped = frame.groupby(["bucket", "placement", "variant"], sort=True)
    out = grouped.agg(lists=("at", "size"), error_rate=("errored", "mean"),
                      degraded_rate=("degraded", "mean"), ctr=("clicked", "mean"),
                      conversion_rate=("bought", "mean"))
    for q in (50, 95, 99):
        out[f"latency_p{q}_ms"] = grouped["latency_ms"].quantile(q / 100)
    return out.reset_index()[SERIES_COLUMNS]


@dataclass(frozen=True)
class Staleness:
    """How old the active model is, in time and in data."""

    run_id: str | None
    trained_at: datetime | None
    age_seconds: float | None
    #: events stored after the last event the active run was trained on
    events_since: int

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id,
                "trained_at": self.trained_at.isoformat() if self.trained_at else None,
                "age_seconds": self.age_seconds, "events_since": self.events_since}


def model_staleness(store: Any, registry: Any, now: datetime | None = None) -> Staleness:
    """The active run's age and the events newer than its training data (all events
    when nothing was trained)."""
    now = now or datetime.now(UTC)
    ev = models.Event.__table__
    run_id = registry.active_run_id()
    info = registry.get(run_id) if run_id is not None else None
    stmt = select(func.count()).select_from(ev)
    if info is not None and info.events_through is not None:
        stmt = stmt.where(ev.c.id > info.events_through)
    with store.engine.connect() as conn:
        since = int(conn.execute(stmt).scalar_one())
    # the registry's times come back aware (UTCDateTime columns)
    trained = info.finished_at or info.created_at if info is not None else None
    return Staleness(run_id, trained, (now - trained).total_seconds() if trained else None,
                     since)


@dataclass(frozen=True)
class EventMixDrift:
    """The event-type mix of a recent window against the reference window before it."""

    recent: dict[str, float]
    reference: dict[str, float]
    recent_events: int
    reference_events: int
    #: Jensen-Shannon distance (base 2): 0 same mix, 1 disjoint
    js_distance: float | None
    #: chi-square test of homogeneity of the two windows' type counts
    p_value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"recent": self.recent, "reference": self.reference,
                "recent_events": self.recent_events,
                "reference_events": self.reference_events,
                "js_distance": self.js_distance, "p_value": self.p_value}


def event_mix_drift(store: Any, now: datetime | None = None, *,
                    recent: timedelta = timedelta(days=1),
                    reference: timedelta = timedelta(days=7)) -> EventMixDrift:
    """Shares of each event type in ``[now - recent, now)`` and in the ``reference``
    window before it, their Jensen-Shannon distance and the chi-square p-value (None
    when a window has no events). With many events the p-value is tiny for any change;
    the distance says how large the change is (0.1 is already a visibly different mix)."""
    now = now or datetime.now(UTC)
    if recent <= timedelta(0) or reference <= timedelta(0):
        raise ValueError("recent and reference must be positive durations")
    ev = models.Event.__table__
    cut, start = now - recent, now - recent - reference

    def counts(lo: datetime, hi: datetime) -> dict[str, int]:
        stmt = (select(ev.c.type, func.count())
                .where(ev.c.timestamp >= _naive(lo), ev.c.timestamp < _naive(hi))
                .group_by(ev.c.type))
        with store.engine.connect() as conn:
            return {t: int(n) for t, n in conn.execute(stmt).all()}

    new, old = counts(cut, now), counts(start, cut)
    types = sorted(set(new) | set(old))
    a = np.array([new.get(t, 0) for t in types], dtype=float)
    b = np.array([old.get(t, 0) for t in types], dtype=float)

    def shares(x: np.ndarray) -> dict[str, float]:
        return {t: float(v / x.sum()) for t, v in zip(types, x, strict=True)} if x.sum() else {}

    js = p = None
    if a.sum() and b.sum():
        js = float(jensenshannon(a / a.sum(), b / b.sum(), base=2))
        present = (a + b) > 0
        if present.sum() >= 2:
            p = float(chi2_contingency(np.vstack([a[present], b[present]]))[1])
        else:
            p = 1.0
    return EventMixDrift(shares(a), shares(b), int(a.sum()), int(b.sum()), js, p)
