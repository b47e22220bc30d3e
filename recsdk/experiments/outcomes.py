"""What happened in an experiment: its exposures, the reactions to them, and the
purchases credited to them, read from the database up to a moment.

Exposures are the experiment's served lists (``recommendation_requests`` rows naming
it), QA-forced ones left out. Reactions are ``feedback`` rows posted to those lists
(joined by request id; ``impression`` rows say the shop saw the list). Purchase events
(``events``) of an exposed user, or of an anonymous exposed session, are credited to
exposures within the attribution window before them: last touch (the latest exposure)
and any touch (every arm that served one). :mod:`recsdk.experiments.report` turns this
into metrics and statistics.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select

from recsdk.experiments.assignment import unit_of
from recsdk.experiments.config import ExperimentSettings
from recsdk.storage import models

PURCHASE = "purchase"
#: the feedback type a shop posts when a served list was actually seen
IMPRESSION = "impression"


def aware(value: datetime) -> datetime:
    """Stored datetimes come back naive from SQLite; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Exposure:
    """One served list of the experiment."""

    request_id: str
    unit: str
    variant: str
    user_id: str | None
    session_id: str | None
    degraded: bool
    #: plugin calls that failed while answering
    failures: int
    latency_ms: float | None
    at: datetime


@dataclass(frozen=True)
class Outcomes:
    """Everything the report counts, up to ``now``."""

    exposures: list[Exposure]
    #: feedback rows posted to the exposures (request_id, user_id, item_id, type, value,
    #: timestamp)
    feedback: list[Any]
    #: purchase events of exposed users and sessions, from the pre-period on (user_id,
    #: session_id, item_id, value, timestamp)
    purchases: list[Any]


def read_outcomes(store: Any, experiment: ExperimentSettings, now: datetime) -> Outcomes:
    """The experiment's exposures, feedback and purchase events up to ``now``; purchase
    events from ``pre_period_days`` before the first exposure (CUPED's covariate)."""
    exposures = _exposures(store, experiment, now)
    if not exposures:
        return Outcomes([], [], [])
    since = exposures[0].at - timedelta(days=experiment.pre_period_days)
    return Outcomes(exposures, _feedback(store, experiment.name, now),
                    _purchase_events(store, experiment.name, since, now))


def _exposures(store: Any, experiment: ExperimentSettings, now: datetime) -> list[Exposure]:
    """The experiment's non-forced lists served up to ``now``, in time order, each with
    its unit (a list with neither user nor session is a unit of its own)."""
    req = models.RecommendationRequest.__table__
    stmt = (select(req.c.id, req.c.user_id, req.c.session_id, req.c.variant, req.c.degraded,
                   req.c.failures, req.c.latency_ms, req.c.created_at)
            .where(req.c.experiment == experiment.name, req.c.forced.is_(False),
                   req.c.created_at <= _naive(now))
            .order_by(req.c.created_at, req.c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [Exposure(r.id, unit_of(experiment, r.user_id, r.session_id) or f"request:{r.id}",
                     r.variant, r.user_id, r.session_id, bool(r.degraded), int(r.failures or 0),
                     r.latency_ms, aware(r.created_at)) for r in rows]


def _feedback(store: Any, name: str, now: datetime) -> list[Any]:
    """Reactions to the experiment's non-forced lists, posted up to ``now``."""
    req = models.RecommendationRequest.__table__
    fb = models.Feedback.__table__
    stmt = (select(fb.c.request_id, fb.c.user_id, fb.c.item_id, fb.c.type, fb.c.value,
                   fb.c.timestamp)
            .join(req, req.c.id == fb.c.request_id)
            .where(req.c.experiment == name, req.c.forced.is_(False),
                   fb.c.timestamp <= _naive(now)))
    with store.engine.connect() as conn:
        return list(conn.execute(stmt).all())


def _purchase_events(store: Any, name: str, since: datetime, now: datetime) -> list[Any]:
    """Purchase events from ``since`` to ``now`` of users or sessions that were exposed."""
    req = models.RecommendationRequest.__table__
    ev = models.Event.__table__
    exposed = and_(req.c.experiment == name, req.c.forced.is_(False))
    users = select(req.c.user_id).where(exposed, req.c.user_id.is_not(None)).distinct()
    sessions = (select(req.c.session_id)
                .where(exposed, req.c.user_id.is_(None), req.c.session_id.is_not(None))
                .distinct())
    stmt = (select(ev.c.user_id, ev.c.session_id, ev.c.item_id, ev.c.value, ev.c.timestamp)
            .where(ev.c.type == PURCHASE, ev.c.timestamp >= _naive(since),
                   ev.c.timestamp <= _naive(now),
                   ev.c.user_id.in_(users) | ev.c.session_id.in_(sessions)))
    with store.engine.connect() as conn:
        return list(conn.execute(stmt).all())


# --------------------------------------------------------------------------- attribution


class Touches:
    """Each buyer's exposures in time order: by user, and by session for lists served
    without a user (an anonymous visitor)."""

    def __init__(self, exposures: Sequence[Exposure]) -> None:
        self._seen: dict[tuple[str, str], list[Exposure]] = defaultdict(list)
        for e in exposures:  # in time order
            if e.user_id is not None:
                self._seen[("u", e.user_id)].append(e)
            elif e.session_id is not None:
                self._seen[("s", e.session_id)].append(e)
        self._times = {key: [x.at for x in seen] for key, seen in self._seen.items()}

    def within(self, event: Any, window: timedelta) -> list[Exposure]:
        """The buyer's exposures at or before ``event`` and at most ``window`` older."""
        at = aware(event.timestamp)
        out: list[Exposure] = []
        for key in (("u", event.user_id), ("s", event.session_id)):
            times = self._times.get(key)
            if not times:
                continue
            hi = bisect.bisect_right(times, at)
            lo = bisect.bisect_left(times, at - window)
            out += self._seen[key][lo:hi]
        return out

    def last(self, event: Any, window: timedelta) -> Exposure | None:
        """The most recent of :meth:`within` (last touch), or None."""
        touched = self.within(event, window)
        return max(touched, key=lambda e: e.at) if touched else None


def without_feedback_twins(events: Iterable[Any], purchases: Sequence[Any],
                           window: timedelta) -> list[Any]:
    """Drop each purchase event that a purchase feedback row already counts: same user
    and item, feedback within ``window`` of the event either side; one feedback row
    absorbs at most one event (the nearest in time), so a repeat purchase still counts."""
    pending: dict[tuple[str | None, str], list[datetime]] = defaultdict(list)
    for f in purchases:
        pending[(f.user_id, f.item_id)].append(aware(f.timestamp))
    kept = []
    for ev in sorted(events, key=lambda e: aware(e.timestamp)):
        at = aware(ev.timestamp)
        twins = pending.get((ev.user_id, ev.item_id), [])
        near = [t for t in twins if abs(t - at) <= window]
        if near:
            twins.remove(min(near, key=lambda t: abs(t - at)))
        else:
            kept.append(ev)
    return kept


def pre_period_revenue(first: Exposure, touches_by_buyer: dict[tuple[str, str], list[Any]],
                       days: float) -> float:
    """The unit's purchase-event revenue in the ``days`` before its first exposure."""
    key = (("u", first.user_id) if first.user_id is not None
           else ("s", first.session_id) if first.session_id is not None else None)
    if key is None:
        return 0.0
    since = first.at - timedelta(days=days)
    return float(sum(ev.value or 0.0 for ev in touches_by_buyer.get(key, ())
                     if since <= aware(ev.timestamp) < first.at))


def purchases_by_buyer(events: Iterable[Any]) -> dict[tuple[str, str], list[Any]]:
    """Purchase events by user, and by session for events without a user."""
    out: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for ev in events:
        if ev.user_id is not None:
            out[("u", ev.user_id)].append(ev)
        elif ev.session_id is not None:
            out[("s", ev.session_id)].append(ev)
    return out
