"""An experiment's report: stored exposures and outcomes, per arm, with the statistics.

Exposures are the experiment's served lists (``recommendation_requests`` rows naming it),
QA-forced ones left out. Outcomes are the reactions posted to those lists (``feedback``,
joined by request id) and purchase events (``events``) of the same user or session
within the attribution window after an exposure, credited last-touch. The statistics are
:mod:`recsdk.experiments.stats`' (scipy and statsmodels); the definitions are in
docs/experiments.md, "Reports".
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, select

from recsdk.experiments.assignment import unit_of
from recsdk.experiments.config import HOLDOUT, ExperimentSettings
from recsdk.experiments.stats import (
    Comparison,
    Correction,
    _plain,
    adjust_comparisons,
    compare_means,
    compare_rates,
    sample_ratio_mismatch,
)
from recsdk.storage import models

#: The metric a winner must improve (adjusted p below alpha, positive lift).
PRIMARY_METRIC = "conversion_rate"
#: Unit-level rates tested with compare_rates, and the reaction type each counts.
RATE_METRICS: tuple[tuple[str, str], ...] = (
    ("click_rate", "click"), ("add_to_cart_rate", "add_to_cart"), ("conversion_rate", "purchase"))
REVENUE_METRIC = "revenue_per_unit"
#: Listed under ``skipped`` for a Thompson-allocated experiment.
BANDIT_NOTE = ("unbiased comparisons: traffic is allocated by Thompson sampling, so the arms' "
               "units come from periods with different shares; the pooled comparisons mix "
               "those periods and are biased, their p-values not those of a fixed split "
               "(docs/experiments.md, 'Thompson-sampling allocation')")
PURCHASE = "purchase"


def _aware(value: datetime) -> datetime:
    """Stored datetimes come back naive from SQLite; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class ArmSummary:
    """One arm's counts and metrics (None where a metric has no denominator)."""

    name: str
    exposures: int = 0
    units: int = 0
    degraded: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    #: orders: feedback purchases plus attributed purchase events (not double counted)
    purchases: int = 0
    feedback_purchases: int = 0
    attributed_purchases: int = 0
    revenue: float = 0.0
    exposures_clicked: int = 0
    units_clicked: int = 0
    units_added_to_cart: int = 0
    units_converted: int = 0
    #: revenue of every unit of the arm, zeros included (the Welch test's sample)
    unit_revenue: list[float] = field(default_factory=list, repr=False)

    def metrics(self) -> dict[str, float | None]:
        def ratio(a: float, b: float) -> float | None:
            return a / b if b else None

        return {
            "ctr": ratio(self.exposures_clicked, self.exposures),
            "click_rate": ratio(self.units_clicked, self.units),
            "add_to_cart_rate": ratio(self.units_added_to_cart, self.units),
            "conversion_rate": ratio(self.units_converted, self.units),
            "revenue_per_unit": ratio(self.revenue, self.units),
            "average_order_value": ratio(self.revenue, self.purchases),
            "degraded_share": ratio(self.degraded, self.exposures),
        }

    def to_dict(self) -> dict[str, Any]:
        counts = {k: getattr(self, k) for k in (
            "exposures", "units", "degraded", "clicks", "add_to_carts", "purchases",
            "feedback_purchases", "attributed_purchases", "revenue", "exposures_clicked",
            "units_clicked", "units_added_to_cart", "units_converted")}
        return _plain({"variant": self.name, "counts": counts, "metrics": self.metrics()})


@dataclass(frozen=True)
class ExperimentReport:
    """Per-arm counts and metrics, the comparisons with the control, SRM and the winner.

    ``message`` says why there is nothing to compare (no exposures yet); the arms and
    comparisons are then empty rather than zeros.
    """

    experiment: str
    control: str
    generated_at: datetime
    attribution_days: float
    alpha: float
    correction: str
    arms: tuple[ArmSummary, ...]
    comparisons: tuple[Comparison, ...]
    srm_p_value: float | None
    srm_mismatch: bool | None
    expected_shares: Mapping[str, float]
    winner: str | None
    message: str | None = None
    #: comparisons that could not be computed, and why (e.g. an arm with one unit)
    skipped: tuple[str, ...] = ()

    @property
    def has_exposures(self) -> bool:
        return self.message is None

    def arm(self, name: str) -> ArmSummary:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (NaN as None)."""
        return _plain({
            "experiment": self.experiment, "control": self.control,
            "generated_at": self.generated_at.isoformat(),
            "attribution_days": self.attribution_days, "alpha": self.alpha,
            "correction": self.correction, "message": self.message,
            "variants": [a.to_dict() for a in self.arms],
            "srm_p_value": self.srm_p_value, "srm_mismatch": self.srm_mismatch,
            "expected_shares": dict(self.expected_shares),
            "comparisons": [_comparison_dict(c) for c in self.comparisons],
            "skipped": list(self.skipped), "winner": self.winner,
        })


def _comparison_dict(c: Comparison) -> dict[str, Any]:
    return {
        "metric": c.metric, "variant": c.treatment, "control": c.control,
        "estimate_control": c.estimate_control, "estimate_variant": c.estimate_treatment,
        "lift_abs": c.lift_abs, "lift_abs_ci": list(c.lift_abs_ci),
        "lift_rel": c.lift_rel, "lift_rel_ci": list(c.lift_rel_ci),
        "p_value": c.p_value, "p_value_adjusted": c.p_value_adjusted,
        "significant": c.significant, "test": c.test,
    }


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Exposure:
    request_id: str
    unit: str
    variant: str
    user_id: str | None
    session_id: str | None
    degraded: bool
    at: datetime


def _exposures(store: Any, experiment: ExperimentSettings, now: datetime) -> list[_Exposure]:
    """The experiment's non-forced lists served up to ``now``, in time order, each with
    its unit (a list with neither user nor session is a unit of its own)."""
    req = models.RecommendationRequest.__table__
    stmt = (select(req.c.id, req.c.user_id, req.c.session_id, req.c.variant, req.c.degraded,
                   req.c.created_at)
            .where(req.c.experiment == experiment.name, req.c.forced.is_(False),
                   req.c.created_at <= now.astimezone(UTC).replace(tzinfo=None))
            .order_by(req.c.created_at, req.c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [_Exposure(r.id, unit_of(experiment, r.user_id, r.session_id) or f"request:{r.id}",
                      r.variant, r.user_id, r.session_id, bool(r.degraded),
                      _aware(r.created_at)) for r in rows]


def _feedback(store: Any, name: str, now: datetime) -> list[Any]:
    """Reactions to the experiment's non-forced lists, posted up to ``now``."""
    req = models.RecommendationRequest.__table__
    fb = models.Feedback.__table__
    stmt = (select(fb.c.request_id, fb.c.user_id, fb.c.item_id, fb.c.type, fb.c.value,
                   fb.c.timestamp)
            .join(req, req.c.id == fb.c.request_id)
            .where(req.c.experiment == name, req.c.forced.is_(False),
                   fb.c.timestamp <= now.astimezone(UTC).replace(tzinfo=None)))
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
    naive = [t.astimezone(UTC).replace(tzinfo=None) for t in (since, now)]
    stmt = (select(ev.c.user_id, ev.c.session_id, ev.c.item_id, ev.c.value, ev.c.timestamp)
            .where(ev.c.type == PURCHASE, ev.c.timestamp >= naive[0], ev.c.timestamp <= naive[1],
                   ev.c.user_id.in_(users) | ev.c.session_id.in_(sessions)))
    with store.engine.connect() as conn:
        return list(conn.execute(stmt).all())


# --------------------------------------------------------------------------- attribution


def _last_touch(exposures: Sequence[_Exposure], events: Iterable[Any], window: timedelta
                ) -> list[tuple[_Exposure, Any]]:
    """Each purchase event with the most recent exposure of its user (or, for lists
    served without a user, of its session) at or before it and at most ``window`` older."""
    touches: dict[tuple[str, str], list[_Exposure]] = defaultdict(list)
    for e in exposures:  # in time order
        if e.user_id is not None:
            touches[("u", e.user_id)].append(e)
        elif e.session_id is not None:
            touches[("s", e.session_id)].append(e)
    times = {key: [x.at for x in seen] for key, seen in touches.items()}
    out = []
    for ev in events:
        at = _aware(ev.timestamp)
        best: _Exposure | None = None
        for key in (("u", ev.user_id), ("s", ev.session_id)):
            seen = touches.get(key)
            if not seen:
                continue
            i = bisect.bisect_right(times[key], at) - 1
            if i >= 0 and at - seen[i].at <= window and (best is None or seen[i].at > best.at):
                best = seen[i]
        if best is not None:
            out.append((best, ev))
    return out


def _without_feedback_twins(attributed: list[tuple[_Exposure, Any]], purchases: Sequence[Any],
                            window: timedelta) -> list[tuple[_Exposure, Any]]:
    """Drop each attributed event that a purchase feedback row already counts: same user
    and item, feedback within ``window`` of the event either side; one feedback row
    absorbs at most one event (the nearest in time), so a repeat purchase still counts."""
    pending: dict[tuple[str | None, str], list[datetime]] = defaultdict(list)
    for f in purchases:
        pending[(f.user_id, f.item_id)].append(_aware(f.timestamp))
    kept = []
    for exposure, ev in sorted(attributed, key=lambda pair: _aware(pair[1].timestamp)):
        at = _aware(ev.timestamp)
        twins = pending.get((ev.user_id, ev.item_id), [])
        near = [t for t in twins if abs(t - at) <= window]
        if near:
            twins.remove(min(near, key=lambda t: abs(t - at)))
        else:
            kept.append((exposure, ev))
    return kept


# --------------------------------------------------------------------------- report


def _expected_shares(experiment: ExperimentSettings, first_seen: Iterable[datetime],
                     shares_at: Callable[[datetime], Mapping[str, float]] | None = None
                     ) -> dict[str, float]:
    """Each arm's expected share of the units: the share it was served when each unit
    entered (ramp steps, holdout first), among the arms, averaged over the units.
    ``shares_at``: the variants' shares at a time (default: the configured ones; a
    Thompson experiment's stored epochs)."""
    shares_at = shares_at or experiment.shares_at
    arms = [*experiment.variant_names] + ([HOLDOUT] if experiment.holdout else [])
    total = dict.fromkeys(arms, 0.0)
    n = 0
    for at in first_seen:
        served = {v: (1 - experiment.holdout) * s for v, s in shares_at(at).items()}
        if experiment.holdout:
            served[HOLDOUT] = experiment.holdout
        norm = math.fsum(served.values())
        if norm <= 0:
            continue
        for arm in arms:
            total[arm] += served[arm] / norm
        n += 1
    return {arm: total[arm] / n for arm in arms} if n else {}


def experiment_report(
    store: Any,
    experiment: ExperimentSettings,
    now: datetime | None = None,
    attribution_days: float = 7,
    *,
    alpha: float = 0.05,
    correction: Correction = "holm",
) -> ExperimentReport:
    """The report of ``experiment`` from what ``store`` holds up to ``now`` (default: now).

    ``attribution_days``: how long after an exposure a purchase event of the same user
    is credited to it (last touch). Comparisons are each variant against the control,
    Holm-corrected (``correction``) over every variant and metric together.
    """
    if not attribution_days >= 0:
        raise ValueError(f"attribution_days must be >= 0, got {attribution_days!r}")
    now = _aware(now or datetime.now(UTC))
    window = timedelta(days=attribution_days)
    exposures = _exposures(store, experiment, now)
    base = dict(experiment=experiment.name, control=experiment.control, generated_at=now,
                attribution_days=attribution_days, alpha=alpha, correction=correction)
    if not exposures:
        return ExperimentReport(
            **base, arms=(), comparisons=(), srm_p_value=None, srm_mismatch=None,
            expected_shares={}, winner=None,
            message=f"experiment {experiment.name!r} has no exposures yet (no non-forced "
                    f"list served in it up to {now.isoformat()}): nothing to report")

    arm_names = [*experiment.variant_names] + ([HOLDOUT] if experiment.holdout else [])
    arm_names += sorted({e.variant for e in exposures} - set(arm_names))  # renamed arms
    arms = {n: ArmSummary(n) for n in arm_names}
    units: dict[str, dict[str, dict[str, float]]] = {n: {} for n in arm_names}
    first_seen: dict[str, datetime] = {}
    by_request: dict[str, _Exposure] = {}
    for e in exposures:
        by_request[e.request_id] = e
        arm = arms[e.variant]
        arm.exposures += 1
        arm.degraded += e.degraded
        units[e.variant].setdefault(e.unit, {"revenue": 0.0})
        first_seen.setdefault(e.unit, e.at)

    reacted: dict[str, set[tuple[str, str]]] = defaultdict(set)  # type -> (arm, unit)
    clicked_requests: set[str] = set()
    feedback = _feedback(store, experiment.name, now)
    for f in feedback:
        e = by_request.get(f.request_id)
        if e is None:  # a list served after ``now``
            continue
        arm = arms[e.variant]
        reacted[f.type].add((e.variant, e.unit))
        if f.type == "click":
            arm.clicks += 1
            clicked_requests.add(f.request_id)
        elif f.type == "add_to_cart":
            arm.add_to_carts += 1
        elif f.type == PURCHASE:
            arm.feedback_purchases += 1
            arm.revenue += f.value or 0.0
            units[e.variant][e.unit]["revenue"] += f.value or 0.0

    events = _purchase_events(store, experiment.name, exposures[0].at, now)
    attributed = _without_feedback_twins(
        _last_touch(exposures, events, window),
        [f for f in feedback if f.type == PURCHASE and f.request_id in by_request], window)
    for e, ev in attributed:
        arm = arms[e.variant]
        arm.attributed_purchases += 1
        arm.revenue += ev.value or 0.0
        units[e.variant][e.unit]["revenue"] += ev.value or 0.0
        reacted[PURCHASE].add((e.variant, e.unit))

    for name, arm in arms.items():
        arm.units = len(units[name])
        arm.purchases = arm.feedback_purchases + arm.attributed_purchases
        arm.exposures_clicked = sum(1 for e in exposures
                                    if e.variant == name and e.request_id in clicked_requests)
        arm.units_clicked = sum(1 for a, _ in reacted["click"] if a == name)
        arm.units_added_to_cart = sum(1 for a, _ in reacted["add_to_cart"] if a == name)
        arm.units_converted = sum(1 for a, _ in reacted[PURCHASE] if a == name)
        arm.unit_revenue = [u["revenue"] for u in units[name].values()]

    comparisons, skipped = _compare(experiment, arms, alpha)
    if comparisons:
        comparisons = adjust_comparisons(comparisons, method=correction, alpha=alpha)
    shares_at = None
    if experiment.allocation.method == "thompson":
        from recsdk.experiments.allocation import allocation_history  # it reads reports

        shares_at = allocation_history(store, experiment).shares_at
        skipped.append(BANDIT_NOTE)
    expected = _expected_shares(experiment, first_seen.values(), shares_at)
    srm_p, srm_mismatch = _srm(arms, expected, skipped)
    winners = [c for c in comparisons
               if c.metric == PRIMARY_METRIC and c.significant and c.lift_abs > 0]
    winner = max(winners, key=lambda c: c.lift_abs).treatment if winners else None
    return ExperimentReport(
        **base, arms=tuple(arms.values()), comparisons=tuple(comparisons),
        srm_p_value=srm_p, srm_mismatch=srm_mismatch, expected_shares=expected,
        winner=winner, skipped=tuple(skipped))


def _compare(experiment: ExperimentSettings, arms: Mapping[str, ArmSummary], alpha: float
             ) -> tuple[list[Comparison], list[str]]:
    """Every configured non-control variant against the control (the holdout is not a
    variant: its comparison is the whole experiment's, out of scope here)."""
    out: list[Comparison] = []
    skipped: list[str] = []
    control = arms[experiment.control]
    for name in experiment.variant_names:
        if name == experiment.control:
            continue
        arm = arms[name]
        if not control.units or not arm.units:
            skipped.append(f"{name} vs {control.name}: an arm has no units")
            continue
        for metric, _ in RATE_METRICS:
            attr = {"click_rate": "units_clicked", "add_to_cart_rate": "units_added_to_cart",
                    "conversion_rate": "units_converted"}[metric]
            out.append(compare_rates(getattr(control, attr), control.units,
                                     getattr(arm, attr), arm.units, metric=metric,
                                     control=control.name, treatment=name, alpha=alpha))
        if control.units < 2 or arm.units < 2:
            skipped.append(f"{REVENUE_METRIC} {name} vs {control.name}: Welch's test needs "
                           "at least 2 units per arm")
            continue
        out.append(compare_means(np.array(control.unit_revenue), np.array(arm.unit_revenue),
                                 metric=REVENUE_METRIC, control=control.name, treatment=name,
                                 alpha=alpha))
    return out, skipped


def _srm(arms: Mapping[str, ArmSummary], expected: Mapping[str, float], skipped: list[str]
         ) -> tuple[float | None, bool | None]:
    """Sample-ratio mismatch of the units per arm against ``expected``; an arm with units
    but no expected share (an arm not configured any more) is a mismatch by itself."""
    names = [n for n in arms if expected.get(n, 0.0) > 0]
    stray = [n for n in arms if n not in names and arms[n].units]
    if stray:
        skipped.append(f"srm: units in arms not expected to receive any: {', '.join(stray)}")
        return 0.0, True
    if len(names) < 2:
        skipped.append("srm: fewer than 2 arms expected to receive units")
        return None, None
    norm = math.fsum(expected[n] for n in names)
    check = sample_ratio_mismatch([arms[n].units for n in names],
                                  [expected[n] / norm for n in names])
    return check.p_value, check.mismatch
