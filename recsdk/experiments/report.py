"""An experiment's report: per arm, what :mod:`recsdk.experiments.outcomes` read (its
exposures, reactions and credited purchases), the metrics, and the statistics.

The comparisons with the control (corrected together), CUPED, the always-valid
sequential tests, the guardrails, the sample-ratio check and the ROI against the
holdout (:mod:`recsdk.experiments.roi`) are all :mod:`recsdk.experiments.stats`' and
``.sequential``'s (scipy and statsmodels); the definitions are in docs/experiments.md,
"Reports".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from recsdk.experiments.config import HOLDOUT, ExperimentSettings
from recsdk.experiments.outcomes import (
    Outcomes,
    Touches,
    aware,
    pre_period_revenue,
    purchases_by_buyer,
    read_outcomes,
    without_feedback_twins,
)
from recsdk.experiments.roi import Roi, roi_against_holdout
from recsdk.experiments.sequential import SequentialTest, msprt, msprt_rates
from recsdk.experiments.stats import (
    Comparison,
    Correction,
    adjust_comparisons,
    compare_means,
    compare_rates,
    cuped,
    sample_ratio_mismatch,
)
from recsdk.jsonable import json_safe

#: The metric a winner must improve (adjusted p below alpha, positive lift).
PRIMARY_METRIC = "conversion_rate"
#: Unit-level rates tested with compare_rates, and the reaction type each counts.
RATE_METRICS: tuple[tuple[str, str], ...] = (
    ("click_rate", "click"), ("add_to_cart_rate", "add_to_cart"), ("conversion_rate", "purchase"))
REVENUE_METRIC = "revenue_per_unit"
#: Exposure-level rates that must not get worse (tested, not corrected, not a winner).
GUARDRAIL_RATES: tuple[tuple[str, str], ...] = (("error_rate", "errored"),
                                                ("degraded_rate", "degraded"))
#: Listed under ``skipped`` for a Thompson-allocated experiment.
BANDIT_NOTE = ("unbiased comparisons: traffic is allocated by Thompson sampling, so the arms' "
               "units come from periods with different shares; the pooled comparisons mix "
               "those periods and are biased, their p-values not those of a fixed split "
               "(docs/experiments.md, 'Thompson-sampling allocation')")


@dataclass
class ArmSummary:
    """One arm's counts and metrics (None where a metric has no denominator)."""

    name: str
    exposures: int = 0
    #: exposures the shop reported as seen (an ``impression`` posted to the list)
    seen_exposures: int = 0
    units: int = 0
    #: distinct users (anonymous visitors: their session) and sessions among the exposures
    users: int = 0
    sessions: int = 0
    degraded: int = 0
    #: exposures whose answer had a failed or timed-out plugin call
    errored: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    #: orders: feedback purchases plus attributed purchase events (not double counted)
    purchases: int = 0
    feedback_purchases: int = 0
    attributed_purchases: int = 0
    revenue: float = 0.0
    #: any-touch: purchase events credited to every arm that served the buyer a list
    #: within the window before it (a purchase may count in several arms)
    any_touch_purchases: int = 0
    any_touch_revenue: float = 0.0
    exposures_clicked: int = 0
    seen_exposures_clicked: int = 0
    units_clicked: int = 0
    units_added_to_cart: int = 0
    units_converted: int = 0
    #: revenue of every unit of the arm, zeros included (the Welch test's sample)
    unit_revenue: list[float] = field(default_factory=list, repr=False)
    #: each unit's purchase-event revenue in the pre-period (CUPED's covariate), same order
    unit_pre_revenue: list[float] = field(default_factory=list, repr=False)
    #: served lists' answer times (ms), where logged
    latencies_ms: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    def metrics(self) -> dict[str, float | None]:
        def ratio(a: float, b: float) -> float | None:
            return a / b if b else None

        return {
            "ctr": ratio(self.exposures_clicked, self.exposures),
            "seen_rate": ratio(self.seen_exposures, self.exposures),
            "ctr_seen": ratio(self.seen_exposures_clicked, self.seen_exposures),
            "click_rate": ratio(self.units_clicked, self.units),
            "add_to_cart_rate": ratio(self.units_added_to_cart, self.units),
            "conversion_rate": ratio(self.units_converted, self.units),
            "revenue_per_unit": ratio(self.revenue, self.units),
            "revenue_per_user": ratio(self.revenue, self.users),
            "revenue_per_session": ratio(self.revenue, self.sessions),
            "average_order_value": ratio(self.revenue, self.purchases),
            "any_touch_revenue_per_unit": ratio(self.any_touch_revenue, self.units),
            "degraded_share": ratio(self.degraded, self.exposures),
        }

    def guardrails(self) -> dict[str, float | None]:
        """Answer-time percentiles (ms) and the error and degraded-answer rates."""
        lat = np.asarray(self.latencies_ms, dtype=float)
        pct = (np.percentile(lat, [50, 95, 99]) if lat.size else [None] * 3)
        return {
            "latency_p50_ms": pct[0], "latency_p95_ms": pct[1], "latency_p99_ms": pct[2],
            "error_rate": self.errored / self.exposures if self.exposures else None,
            "degraded_rate": self.degraded / self.exposures if self.exposures else None,
        }

    def to_dict(self) -> dict[str, Any]:
        counts = {k: getattr(self, k) for k in (
            "exposures", "seen_exposures", "units", "users", "sessions", "degraded",
            "errored", "clicks", "add_to_carts", "purchases", "feedback_purchases",
            "attributed_purchases", "revenue", "any_touch_purchases", "any_touch_revenue",
            "exposures_clicked", "seen_exposures_clicked", "units_clicked",
            "units_added_to_cart", "units_converted")}
        return json_safe({"variant": self.name, "counts": counts, "metrics": self.metrics(),
                       "guardrails": self.guardrails()})


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
    #: each variant's error and degraded-answer rates against the control's (uncorrected)
    guardrails: tuple[Comparison, ...] = ()
    #: revenue per unit with the pre-period revenue as CUPED covariate, per variant
    cuped: tuple[CupedComparison, ...] = ()
    #: always-valid mSPRT of conversion and revenue per unit, per variant
    sequential: tuple[SequentialTest, ...] = ()
    #: the placement against the holdout, net of the configured costs (None: no holdout)
    roi: Roi | None = None

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
        return json_safe({
            "experiment": self.experiment, "control": self.control,
            "generated_at": self.generated_at.isoformat(),
            "attribution_days": self.attribution_days, "alpha": self.alpha,
            "correction": self.correction, "message": self.message,
            "variants": [a.to_dict() for a in self.arms],
            "srm_p_value": self.srm_p_value, "srm_mismatch": self.srm_mismatch,
            "expected_shares": dict(self.expected_shares),
            "comparisons": [_comparison_dict(c) for c in self.comparisons],
            "skipped": list(self.skipped), "winner": self.winner,
            "guardrails": [{**_comparison_dict(c), "worse": c.significant and c.lift_abs > 0}
                           for c in self.guardrails],
            "cuped": [c.to_dict() for c in self.cuped],
            "sequential": [_sequential_dict(t) for t in self.sequential],
            "roi": None if self.roi is None else self.roi.to_dict(),
        })


@dataclass(frozen=True)
class CupedComparison:
    """A variant's revenue per unit against the control's, CUPED-adjusted."""

    variant: str
    theta: float
    correlation: float
    variance_reduction: float
    comparison: Comparison

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"variant": self.variant, "theta": self.theta,
                       "correlation": self.correlation,
                       "variance_reduction": self.variance_reduction,
                       **_comparison_dict(self.comparison)})


def _sequential_dict(t: SequentialTest) -> dict[str, Any]:
    variant, _, metric = t.metric.partition(":")
    return {"variant": variant, "metric": metric, "estimate": t.estimates[-1],
            "p_value": t.p_value, "ci": list(t.ci), "tau2": t.tau2,
            "significant": t.rejected_at is not None, "test": "msprt"}


def _comparison_dict(c: Comparison) -> dict[str, Any]:
    return {
        "metric": c.metric, "variant": c.treatment, "control": c.control,
        "estimate_control": c.estimate_control, "estimate_variant": c.estimate_treatment,
        "lift_abs": c.lift_abs, "lift_abs_ci": list(c.lift_abs_ci),
        "lift_rel": c.lift_rel, "lift_rel_ci": list(c.lift_rel_ci),
        "p_value": c.p_value, "p_value_adjusted": c.p_value_adjusted,
        "significant": c.significant, "test": c.test,
    }


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
    is credited to it (last touch; any touch alongside). Comparisons are each variant
    against the control, corrected (``correction``) over every variant and metric
    together; CUPED, the always-valid sequential tests, the guardrails and the ROI
    against the holdout are reported beside them.
    """
    if not attribution_days >= 0:
        raise ValueError(f"attribution_days must be >= 0, got {attribution_days!r}")
    now = aware(now or datetime.now(UTC))
    window = timedelta(days=attribution_days)
    outcomes = read_outcomes(store, experiment, now)
    base = dict(experiment=experiment.name, control=experiment.control, generated_at=now,
                attribution_days=attribution_days, alpha=alpha, correction=correction)
    if outcomes.first_exposure is None:
        return ExperimentReport(
            **base, arms=(), comparisons=(), srm_p_value=None, srm_mismatch=None,
            expected_shares={}, winner=None,
            message=f"experiment {experiment.name!r} has no exposures yet (no non-forced "
                    f"list served in it up to {now.isoformat()}): nothing to report")
    arms, first_seen = _summarise(experiment, outcomes, window)
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
    adjusted = tuple(_cuped(experiment, arms, alpha, skipped))
    sequential = tuple(_sequential(experiment, arms, alpha, skipped))
    roi = roi_against_holdout(experiment, arms, outcomes.first_exposure, now, skipped)
    return ExperimentReport(
        **base, arms=tuple(arms.values()), comparisons=tuple(comparisons),
        srm_p_value=srm_p, srm_mismatch=srm_mismatch, expected_shares=expected,
        winner=winner, skipped=tuple(skipped),
        guardrails=tuple(_guardrail_comparisons(experiment, arms, alpha)),
        cuped=adjusted, sequential=sequential, roi=roi)


def _summarise(experiment: ExperimentSettings, outcomes: Outcomes, window: timedelta
               ) -> tuple[dict[str, ArmSummary], dict[str, datetime]]:
    """Every arm's counts, and each unit's first exposure."""
    arm_names = [*experiment.variant_names] + ([HOLDOUT] if experiment.holdout else [])
    arm_names += sorted({t.variant for t in outcomes.arms} - set(arm_names))  # renamed arms
    arms = {n: ArmSummary(n) for n in arm_names}
    for t in outcomes.arms:
        a = arms[t.variant]
        a.exposures, a.degraded, a.errored = t.exposures, t.degraded, t.errored
        a.users, a.sessions, a.clicks, a.add_to_carts = t.users, t.sessions, t.clicks, \
            t.add_to_carts
        a.exposures_clicked, a.seen_exposures = t.exposures_clicked, t.seen_exposures
        a.seen_exposures_clicked, a.latencies_ms = t.seen_exposures_clicked, t.latencies_ms

    revenue: dict[tuple[str, str], float] = {}
    converted: set[tuple[str, str]] = set()
    first_seen: dict[str, datetime] = {}
    for u in outcomes.units:
        key = (u.variant, u.unit)
        revenue[key] = u.revenue
        a = arms[u.variant]
        a.feedback_purchases += u.purchases
        a.any_touch_purchases += u.purchases
        a.revenue += u.revenue
        a.any_touch_revenue += u.revenue
        a.units_clicked += u.clicks > 0
        a.units_added_to_cart += u.add_to_carts > 0
        if u.purchases:
            converted.add(key)
        first_seen[u.unit] = min(first_seen.get(u.unit, u.first_seen), u.first_seen)

    touches = Touches(outcomes.touches)
    touched = [ev for ev in outcomes.purchases if touches.within(ev, window)]
    for ev in without_feedback_twins(touched, outcomes.purchase_feedback, window):
        value = ev.value or 0.0
        last = touches.last(ev, window)
        assert last is not None  # touched
        a = arms[last.variant]
        a.attributed_purchases += 1
        a.revenue += value
        key = (last.variant, last.unit)
        revenue[key] = revenue.get(key, 0.0) + value
        converted.add(key)
        for variant in {t.variant for t in touches.within(ev, window)}:
            arms[variant].any_touch_purchases += 1
            arms[variant].any_touch_revenue += value

    by_buyer = purchases_by_buyer(outcomes.purchases)
    for u in outcomes.units:
        a = arms[u.variant]
        a.units += 1
        a.units_converted += (u.variant, u.unit) in converted
        a.unit_revenue.append(revenue[(u.variant, u.unit)])
        a.unit_pre_revenue.append(pre_period_revenue(u, by_buyer, experiment.pre_period_days))
    for a in arms.values():
        a.purchases = a.feedback_purchases + a.attributed_purchases
    return arms, first_seen


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


def _treatments(experiment: ExperimentSettings, arms: Mapping[str, ArmSummary]
                ) -> list[tuple[ArmSummary, ArmSummary]]:
    """(control, variant) for every configured non-control variant with units."""
    control = arms[experiment.control]
    return [(control, arms[n]) for n in experiment.variant_names
            if n != experiment.control and control.units and arms[n].units]


def _guardrail_comparisons(experiment: ExperimentSettings, arms: Mapping[str, ArmSummary],
                           alpha: float) -> list[Comparison]:
    """Error and degraded-answer rates per exposure, each variant against the control:
    a significant rise is flagged ``worse`` (latency percentiles are per arm)."""
    return [compare_rates(getattr(c, attr), c.exposures, getattr(v, attr), v.exposures,
                          metric=metric, control=c.name, treatment=v.name, alpha=alpha)
            for c, v in _treatments(experiment, arms) for metric, attr in GUARDRAIL_RATES]


def _cuped(experiment: ExperimentSettings, arms: Mapping[str, ArmSummary], alpha: float,
           skipped: list[str]) -> list[CupedComparison]:
    """Revenue per unit with each unit's pre-period revenue as covariate (Deng et al.
    2013): same effect, less variance when buyers buy again."""
    out = []
    for c, v in _treatments(experiment, arms):
        if c.units < 2 or v.units < 2:
            continue  # _compare already says why
        try:
            adj = cuped(c.unit_revenue, c.unit_pre_revenue, v.unit_revenue, v.unit_pre_revenue)
        except ValueError as exc:
            skipped.append(f"cuped {v.name} vs {c.name}: {exc} (no purchase in the "
                           f"{experiment.pre_period_days:g} days before the units' first "
                           "exposure)")
            continue
        comparison = compare_means(adj.control, adj.treatment, metric="revenue_per_unit_cuped",
                                   control=c.name, treatment=v.name, alpha=alpha)
        out.append(CupedComparison(v.name, adj.theta, adj.correlation, adj.variance_reduction,
                                   comparison))
    return out


def _sequential(experiment: ExperimentSettings, arms: Mapping[str, ArmSummary], alpha: float,
                skipped: list[str]) -> list[SequentialTest]:
    """Always-valid mSPRT p-values of conversion and revenue per unit: valid however
    often the report is read (each report is one look at the cumulative data)."""
    out = []
    for c, v in _treatments(experiment, arms):
        try:
            out.append(msprt_rates(c.units_converted, c.units, v.units_converted, v.units,
                                   alpha=alpha, metric=f"{v.name}:{PRIMARY_METRIC}"))
        except ValueError as exc:
            skipped.append(f"sequential {PRIMARY_METRIC} {v.name} vs {c.name}: {exc}")
        rc, rv = np.asarray(c.unit_revenue), np.asarray(v.unit_revenue)
        if rc.size < 2 or rv.size < 2:
            continue
        try:
            out.append(msprt(rc.mean(), rc.var(ddof=1), rc.size, rv.mean(), rv.var(ddof=1),
                             rv.size, alpha=alpha, metric=f"{v.name}:{REVENUE_METRIC}"))
        except ValueError as exc:
            skipped.append(f"sequential {REVENUE_METRIC} {v.name} vs {c.name}: {exc}")
    return out


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
