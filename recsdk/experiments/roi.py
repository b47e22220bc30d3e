"""What a recommendation placement returns: its incremental revenue against the holdout,
net of what it costs (docs/experiments.md, "ROI").

The holdout's units get the placement's default pipeline; every other arm's units are
"treated". The incremental revenue per unit is the treated units' mean revenue minus the
holdout's (Welch's interval, from :func:`recsdk.experiments.stats.compare_means`); times
the treated units, it is the revenue the experiment's arms added, and times the
configured margin, the gain. Costs: compute per 1,000 treated lists served, and
licences per day the experiment has run. ROI is the net gain over the costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from recsdk.experiments.config import HOLDOUT, ExperimentSettings
from recsdk.experiments.stats import Comparison, compare_means
from recsdk.jsonable import json_safe


class _Arm(Protocol):
    name: str
    exposures: int
    units: int
    unit_revenue: list[float]


@dataclass(frozen=True)
class Roi:
    """The placement against the holdout; money in the shop's currency."""

    treated_units: int
    holdout_units: int
    treated_exposures: int
    days: float
    margin: float
    comparison: Comparison
    compute_cost: float
    licence_cost: float

    @property
    def incremental_revenue(self) -> float:
        return self.comparison.lift_abs * self.treated_units

    @property
    def incremental_revenue_ci(self) -> tuple[float, float]:
        low, high = self.comparison.lift_abs_ci
        return low * self.treated_units, high * self.treated_units

    @property
    def costs(self) -> float:
        return self.compute_cost + self.licence_cost

    @property
    def net_gain(self) -> float:
        return self.margin * self.incremental_revenue - self.costs

    @property
    def net_gain_ci(self) -> tuple[float, float]:
        low, high = self.incremental_revenue_ci
        return self.margin * low - self.costs, self.margin * high - self.costs

    @property
    def roi(self) -> float | None:
        """Net gain per unit of cost (None without configured costs)."""
        return self.net_gain / self.costs if self.costs > 0 else None

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return json_safe({
            "treated_units": self.treated_units, "holdout_units": self.holdout_units,
            "treated_exposures": self.treated_exposures, "days": self.days,
            "revenue_per_unit_holdout": c.estimate_control,
            "revenue_per_unit_treated": c.estimate_treatment,
            "incremental_revenue_per_unit": c.lift_abs,
            "incremental_revenue_per_unit_ci": list(c.lift_abs_ci),
            "p_value": c.p_value,
            "incremental_revenue": self.incremental_revenue,
            "incremental_revenue_ci": list(self.incremental_revenue_ci),
            "margin": self.margin, "compute_cost": self.compute_cost,
            "licence_cost": self.licence_cost, "costs": self.costs,
            "net_gain": self.net_gain, "net_gain_ci": list(self.net_gain_ci), "roi": self.roi,
        })


def roi_against_holdout(experiment: ExperimentSettings, arms: Mapping[str, _Arm],
                        first_exposure: datetime, now: datetime, skipped: list[str]
                        ) -> Roi | None:
    """The ROI of the experiment's arms against its holdout, or None (why in ``skipped``)."""
    if not experiment.holdout:
        return None
    holdout = arms.get(HOLDOUT)
    treated = [a for name, a in arms.items() if name != HOLDOUT]
    revenue = np.array([r for a in treated for r in a.unit_revenue])
    if holdout is None or holdout.units < 2 or revenue.size < 2:
        skipped.append("roi: Welch's test needs at least 2 units in the holdout and in the "
                       "other arms")
        return None
    end = min(now, experiment.stop) if experiment.stop is not None else now
    days = max((end - first_exposure).total_seconds() / 86400, 0.0)
    exposures = sum(a.exposures for a in treated)
    costs = experiment.costs
    comparison = compare_means(np.array(holdout.unit_revenue), revenue,
                               metric="revenue_per_unit", control=HOLDOUT,
                               treatment="placement")
    return Roi(treated_units=int(revenue.size), holdout_units=holdout.units,
               treated_exposures=exposures, days=days, margin=costs.margin,
               comparison=comparison,
               compute_cost=costs.compute_per_1000_requests * exposures / 1000,
               licence_cost=costs.licences_per_day * days)
