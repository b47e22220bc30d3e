"""What happened in an experiment up to a moment, read from the database: per arm and
per unit, aggregated in SQL so that a report reads one row per unit, not one per list.

Exposures are the experiment's served lists (``recommendation_requests`` rows naming
it), QA-forced ones left out. Reactions are ``feedback`` rows posted to those lists
(joined by request id; ``impression`` rows say the shop saw the list). Purchase events
(``events``) of an exposed user, or of an anonymous exposed session, are credited to
the exposures within the attribution window before them: last touch (the latest
exposure) and any touch (every arm that served one); only the buyers' exposures are
read for that. :mod:`recsdk.experiments.report` turns this into metrics and statistics.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Float, and_, case, cast, func, literal, select
from sqlalchemy.sql import ColumnElement

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
class ArmTotals:
    """One arm's list-level counts."""

    variant: str
    exposures: int
    degraded: int
    #: lists whose answer had a failed or timed-out plugin call
    errored: int
    #: distinct users (an anonymous visitor: its session) and sessions
    users: int
    sessions: int
    clicks: int
    add_to_carts: int
    exposures_clicked: int
    seen_exposures: int
    seen_exposures_clicked: int
    #: answer times (ms) of the lists that logged one
    latencies_ms: np.ndarray


@dataclass(frozen=True)
class UnitTotals:
    """One unit's reactions in one arm, from the feedback posted to its lists."""

    variant: str
    unit: str
    first_seen: datetime
    #: the buyer key of its purchase events: ("u", user id) or ("s", session id)
    buyer: tuple[str, str] | None
    clicks: int
    add_to_carts: int
    purchases: int
    revenue: float


@dataclass(frozen=True)
class Touch:
    """One served list of a buyer (only buyers' lists are read)."""

    request_id: str
    variant: str
    unit: str
    user_id: str | None
    session_id: str | None
    at: datetime


@dataclass(frozen=True)
class Outcomes:
    """Everything the report counts, up to ``now``."""

    arms: list[ArmTotals]
    units: list[UnitTotals]
    #: purchase events of exposed users and sessions, from the pre-period on (user_id,
    #: session_id, item_id, value, timestamp)
    purchases: list[Any]
    #: every list of the users and sessions in ``purchases``, in time order
    touches: list[Touch]
    #: purchase feedback rows on the experiment's lists (request_id, user_id, item_id,
    #: timestamp), which absorb their twin purchase events
    purchase_feedback: list[Any]

    @property
    def first_exposure(self) -> datetime | None:
        return min((u.first_seen for u in self.units), default=None)


def unit_column(experiment: ExperimentSettings, req: Any) -> ColumnElement[str]:
    """SQL for :func:`recsdk.experiments.assignment.unit_of`, and ``request:ID`` for a
    list with neither user nor session (a unit of its own)."""
    whens = []
    if experiment.unit == "user":
        whens.append((req.c.user_id.is_not(None), literal("user:") + req.c.user_id))
    whens.append((req.c.session_id.is_not(None), literal("session:") + req.c.session_id))
    return case(*whens, else_=literal("request:") + req.c.id)


def read_outcomes(store: Any, experiment: ExperimentSettings, now: datetime) -> Outcomes:
    """The experiment's arms, units, buyers' lists, purchase events (from
    ``pre_period_days`` before the first exposure on) and purchase feedback."""
    req = models.RecommendationRequest.__table__
    fb = models.Feedback.__table__
    mine = and_(req.c.experiment == experiment.name, req.c.forced.is_(False))
    lists = (select(req.c.id, req.c.variant, req.c.user_id, req.c.session_id,
                    req.c.degraded, req.c.failures, req.c.created_at,
                    unit_column(experiment, req).label("unit"))
             .where(mine, req.c.created_at <= _naive(now)).subquery("lists"))

    def typed(kind: str, then: Any = 1, other: Any = 0) -> ColumnElement[Any]:
        return func.sum(case((fb.c.type == kind, then), else_=other))

    reactions = (select(fb.c.request_id, typed("click").label("clicks"),
                        typed("add_to_cart").label("carts"), typed(PURCHASE).label("purchases"),
                        typed(PURCHASE, func.coalesce(cast(fb.c.value, Float), 0.0), 0.0)
                        .label("revenue"), typed(IMPRESSION).label("seen"))
                 .join(req, req.c.id == fb.c.request_id)
                 .where(mine, fb.c.timestamp <= _naive(now))
                 .group_by(fb.c.request_id).subquery("reactions"))
    joined = lists.outerjoin(reactions, reactions.c.request_id == lists.c.id)
    clicks = func.coalesce(reactions.c.clicks, 0)
    seen = func.coalesce(reactions.c.seen, 0) > 0
    degraded = func.sum(case((lists.c.degraded, 1), else_=0))
    errored = func.sum(case((lists.c.failures > 0, 1), else_=0))
    per_unit = (select(lists.c.variant, lists.c.unit, func.min(lists.c.created_at),
                       func.min(lists.c.user_id), func.min(lists.c.session_id),
                       func.sum(clicks), func.sum(func.coalesce(reactions.c.carts, 0)),
                       func.sum(func.coalesce(reactions.c.purchases, 0)),
                       func.sum(func.coalesce(reactions.c.revenue, 0.0)),
                       func.count(), degraded, errored,
                       func.sum(case((clicks > 0, 1), else_=0)),
                       func.sum(case((seen, 1), else_=0)),
                       func.sum(case((and_(seen, clicks > 0), 1), else_=0)))
                .select_from(joined).group_by(lists.c.variant, lists.c.unit))
    person = func.coalesce(req.c.user_id, literal("s:") + req.c.session_id,
                           literal("r:") + req.c.id)
    session = func.coalesce(req.c.session_id, literal("r:") + req.c.id)
    people = (select(req.c.variant, func.count(person.distinct()),
                     func.count(session.distinct()))
              .where(mine, req.c.created_at <= _naive(now)).group_by(req.c.variant))
    with store.engine.connect() as conn:
        unit_rows = conn.execute(per_unit).all()
        distinct = {v: (int(users), int(sessions))
                    for v, users, sessions in conn.execute(people).all()}
        timed = conn.execute(select(req.c.variant, req.c.latency_ms).where(
            mine, req.c.latency_ms.is_not(None), req.c.created_at <= _naive(now))).all()
    by_variant: dict[str, list[float]] = {v: [] for v in distinct}
    for variant, ms in timed:
        by_variant[variant].append(ms)
    latencies = {v: np.array(ms, dtype=float) for v, ms in by_variant.items()}
    units = [UnitTotals(v, unit, aware(first), _buyer(user, session_id),
                        int(c or 0), int(carts or 0), int(p or 0), float(rev or 0.0))
             for v, unit, first, user, session_id, c, carts, p, rev, *_ in unit_rows]
    # per arm: clicks, carts, then the list counts (lists, degraded, errored, clicked,
    # seen, seen and clicked) of per_unit, summed over the arm's units
    counts = np.array([(r[5], r[6], *r[9:]) for r in unit_rows], dtype=float).reshape(-1, 8)
    arm_of = np.array([r[0] for r in unit_rows], dtype=object)
    totals = {v: np.nan_to_num(counts[arm_of == v]).sum(axis=0).astype(np.int64)
              for v in distinct}
    arms = [ArmTotals(v, exposures=int(t[2]), degraded=int(t[3]), errored=int(t[4]),
                      users=distinct[v][0], sessions=distinct[v][1], clicks=int(t[0]),
                      add_to_carts=int(t[1]), exposures_clicked=int(t[5]),
                      seen_exposures=int(t[6]), seen_exposures_clicked=int(t[7]),
                      latencies_ms=latencies[v])
            for v, t in totals.items()]
    if not units:
        return Outcomes([], [], [], [], [])
    since = min(u.first_seen for u in units) - timedelta(days=experiment.pre_period_days)
    purchases = _purchase_events(store, experiment.name, since, now)
    touches = _touches(store, experiment, purchases, now)
    with store.engine.connect() as conn:
        purchase_feedback = conn.execute(
            select(fb.c.request_id, fb.c.user_id, fb.c.item_id, fb.c.timestamp)
            .join(req, req.c.id == fb.c.request_id)
            .where(mine, fb.c.type == PURCHASE, fb.c.timestamp <= _naive(now),
                   req.c.created_at <= _naive(now))).all()
    return Outcomes(arms, units, purchases, touches, list(purchase_feedback))


def _buyer(user: str | None, session: str | None) -> tuple[str, str] | None:
    """Whose purchase events are the unit's: its user, else its session."""
    if user is not None:
        return ("u", user)
    if session is not None:
        return ("s", session)
    return None


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


#: buyers per ``IN (...)`` when reading their lists (well under every driver's limit)
_CHUNK = 500


def _touches(store: Any, experiment: ExperimentSettings, purchases: Sequence[Any],
             now: datetime) -> list[Touch]:
    """Every non-forced list of the experiment served to a buyer, in time order."""
    req = models.RecommendationRequest.__table__
    users = sorted({p.user_id for p in purchases if p.user_id is not None})
    sessions = sorted({p.session_id for p in purchases if p.session_id is not None})
    out: list[Touch] = []
    with store.engine.connect() as conn:
        for column, ids in ((req.c.user_id, users), (req.c.session_id, sessions)):
            for i in range(0, len(ids), _CHUNK):
                rows = conn.execute(
                    select(req.c.id, req.c.variant, unit_column(experiment, req),
                           req.c.user_id, req.c.session_id, req.c.created_at)
                    .where(req.c.experiment == experiment.name, req.c.forced.is_(False),
                           req.c.created_at <= _naive(now),
                           column.in_(ids[i:i + _CHUNK]))).all()
                out += [Touch(r[0], r[1], r[2], r[3], r[4], aware(r[5])) for r in rows]
    unique = {t.request_id: t for t in out}  # a list of a user and of a session: once
    return sorted(unique.values(), key=lambda t: (t.at, t.request_id))


# --------------------------------------------------------------------------- attribution


class Touches:
    """Each buyer's lists in time order: by user, and by session for lists served
    without a user (an anonymous visitor)."""

    def __init__(self, touches: Iterable[Touch]) -> None:
        self._seen: dict[tuple[str, str], list[Touch]] = defaultdict(list)
        for t in touches:  # in time order
            if t.user_id is not None:
                self._seen[("u", t.user_id)].append(t)
            elif t.session_id is not None:
                self._seen[("s", t.session_id)].append(t)
        self._times = {key: [x.at for x in seen] for key, seen in self._seen.items()}

    def within(self, event: Any, window: timedelta) -> list[Touch]:
        """The buyer's lists at or before ``event`` and at most ``window`` older."""
        at = aware(event.timestamp)
        out: list[Touch] = []
        for key in (("u", event.user_id), ("s", event.session_id)):
            times = self._times.get(key)
            if not times:
                continue
            hi = bisect.bisect_right(times, at)
            lo = bisect.bisect_left(times, at - window)
            out += self._seen[key][lo:hi]
        return out

    def last(self, event: Any, window: timedelta) -> Touch | None:
        """The most recent of :meth:`within` (last touch), or None."""
        touched = self.within(event, window)
        return max(touched, key=lambda t: t.at) if touched else None


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


def pre_period_revenue(unit: UnitTotals, by_buyer: dict[tuple[str, str], list[Any]],
                       days: float) -> float:
    """The unit's purchase-event revenue in the ``days`` before its first exposure."""
    if unit.buyer is None:
        return 0.0
    since = unit.first_seen - timedelta(days=days)
    return float(sum(ev.value or 0.0 for ev in by_buyer.get(unit.buyer, ())
                     if since <= aware(ev.timestamp) < unit.first_seen))


def purchases_by_buyer(events: Iterable[Any]) -> dict[tuple[str, str], list[Any]]:
    """Purchase events by user, and by session for events without a user."""
    out: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for ev in events:
        if ev.user_id is not None:
            out[("u", ev.user_id)].append(ev)
        elif ev.session_id is not None:
            out[("s", ev.session_id)].append(ev)
    return out
