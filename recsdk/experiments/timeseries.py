"""Cumulative lift over time: an experiment's report evaluated at successive cut times.

Each cut is :func:`recsdk.experiments.report.experiment_report` with ``now`` set to the
cut, so a point holds exactly what the report would have said then (the same counting,
attribution window and correction); the last cut is ``now`` itself. Only the report's
public function is used, so a faster report (rows loaded once) speeds this up without
changing it. The HTML report plots it (docs/experiments.md, "Reports").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from recsdk.experiments.config import ExperimentSettings
from recsdk.experiments.outcomes import aware
from recsdk.experiments.report import ExperimentReport, experiment_report
from recsdk.experiments.stats import Comparison, Correction
from recsdk.jsonable import json_safe
from recsdk.storage import models

#: At most this many cuts (each one a full report), evenly spaced when days are more.
MAX_CUTS = 60
_NAN = float("nan")


@dataclass(frozen=True)
class ComparisonSeries:
    """One variant against the control on one metric, one value per cut (NaN where the
    comparison could not be computed at that cut, e.g. too few units yet)."""

    variant: str
    control: str
    metric: str
    estimate_control: tuple[float, ...]
    estimate_variant: tuple[float, ...]
    lift_abs: tuple[float, ...]
    lift_abs_ci: tuple[tuple[float, float], ...]
    lift_rel: tuple[float, ...]
    lift_rel_ci: tuple[tuple[float, float], ...]
    p_value: tuple[float, ...]
    p_value_adjusted: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {name: json_safe(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class ArmSeries:
    """One arm's cumulative units and exposures per cut (0 before it had any)."""

    name: str
    units: tuple[int, ...]
    exposures: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.name, "units": list(self.units),
                "exposures": list(self.exposures)}


@dataclass(frozen=True)
class LiftSeries:
    """The report at each of ``times`` (from ``first_exposure`` on); ``message`` says
    why there are no cuts."""

    experiment: str
    control: str
    attribution_days: float
    first_exposure: datetime | None
    times: tuple[datetime, ...]
    arms: tuple[ArmSeries, ...]
    comparisons: tuple[ComparisonSeries, ...]
    message: str | None = None

    def comparison(self, variant: str, metric: str) -> ComparisonSeries:
        for c in self.comparisons:
            if c.variant == variant and c.metric == metric:
                return c
        raise KeyError((variant, metric))

    def arm(self, name: str) -> ArmSeries:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (times as ISO 8601, NaN as None)."""
        return {"experiment": self.experiment, "control": self.control,
                "attribution_days": self.attribution_days, "message": self.message,
                "first_exposure": (None if self.first_exposure is None
                                   else self.first_exposure.isoformat()),
                "times": [t.isoformat() for t in self.times],
                "variants": [a.to_dict() for a in self.arms],
                "comparisons": [c.to_dict() for c in self.comparisons]}


def first_exposure(store: Any, experiment: ExperimentSettings) -> datetime | None:
    """When the experiment's first non-forced list was served (None: never), the same
    exposures the report counts."""
    req = models.RecommendationRequest.__table__
    stmt = select(func.min(req.c.created_at)).where(
        req.c.experiment == experiment.name, req.c.forced.is_(False))
    with store.engine.connect() as conn:
        first = conn.execute(stmt).scalar()
    return None if first is None else aware(first)


def _check_points(points: int | None) -> None:
    if points is not None and (isinstance(points, bool) or not isinstance(points, int)
                               or not 1 <= points <= MAX_CUTS):
        raise ValueError(f"points must be a whole number from 1 to {MAX_CUTS}, got {points!r}")


def cut_times(start: datetime, now: datetime, points: int | None = None) -> list[datetime]:
    """Cuts after ``start`` up to ``now`` (the last one): one a day, or ``points`` evenly
    spaced; more than :data:`MAX_CUTS` days become :data:`MAX_CUTS` evenly spaced cuts."""
    _check_points(points)
    if now <= start:
        return [now]
    span = now - start
    if points is None:
        days = math.ceil(span / timedelta(days=1))
        if days <= MAX_CUTS:
            return [start + timedelta(days=k) for k in range(1, days)] + [now]
        points = MAX_CUTS
    return [start + span * k / points for k in range(1, points)] + [now]


def cumulative_series(
    store: Any,
    experiment: ExperimentSettings,
    *,
    now: datetime | None = None,
    points: int | None = None,
    attribution_days: float = 7,
    alpha: float = 0.05,
    correction: Correction = "holm",
) -> LiftSeries:
    """``experiment``'s report at each cut from its first exposure to ``now`` (default:
    now): daily cuts, or ``points`` evenly spaced ones (at most :data:`MAX_CUTS`).

    The arguments after ``points`` are the report's; the last point is the report at
    ``now``. An experiment without exposures up to ``now`` gives no cuts and the
    report's message.
    """
    now = aware(now or datetime.now(UTC))
    _check_points(points)  # before any query
    start = first_exposure(store, experiment)
    if start is None or start > now:
        empty = experiment_report(store, experiment, now=now, attribution_days=attribution_days,
                                  alpha=alpha, correction=correction)
        return LiftSeries(experiment.name, experiment.control, attribution_days, None, (), (),
                          (), message=empty.message)
    reports = [experiment_report(store, experiment, now=cut, attribution_days=attribution_days,
                                 alpha=alpha, correction=correction)
               for cut in cut_times(start, now, points)]
    return _series(experiment, attribution_days, start, reports)


def _series(experiment: ExperimentSettings, attribution_days: float, start: datetime,
            reports: list[ExperimentReport]) -> LiftSeries:
    """Line the reports' arms and comparisons up by cut; missing ones are 0 or NaN."""
    arm_names: dict[str, None] = {}
    keys: dict[tuple[str, str], str] = {}  # (variant, metric) -> control, first-seen order
    for r in reports:
        arm_names.update(dict.fromkeys(a.name for a in r.arms))
        for c in r.comparisons:
            keys.setdefault((c.treatment, c.metric), c.control)
    arms = []
    for name in arm_names:
        counts = [next(((a.units, a.exposures) for a in r.arms if a.name == name), (0, 0))
                  for r in reports]
        arms.append(ArmSeries(name, tuple(u for u, _ in counts), tuple(e for _, e in counts)))
    comparisons = []
    for (variant, metric), control in keys.items():
        cells = [next((c for c in r.comparisons
                       if c.treatment == variant and c.metric == metric), None)
                 for r in reports]
        interval = (_NAN, _NAN)
        comparisons.append(ComparisonSeries(
            variant, control, metric, _column(cells, "estimate_control"),
            _column(cells, "estimate_treatment"), _column(cells, "lift_abs"),
            _column(cells, "lift_abs_ci", interval), _column(cells, "lift_rel"),
            _column(cells, "lift_rel_ci", interval), _column(cells, "p_value"),
            _column(cells, "p_value_adjusted")))
    return LiftSeries(experiment.name, experiment.control, attribution_days, start,
                      tuple(r.generated_at for r in reports), tuple(arms), tuple(comparisons))


def _column(cells: list[Comparison | None], field: str, missing: Any = _NAN
            ) -> tuple[Any, ...]:
    """``field`` of each cut's comparison; ``missing`` where it was not computed."""
    return tuple(missing if c is None or getattr(c, field) is None else getattr(c, field)
                 for c in cells)
