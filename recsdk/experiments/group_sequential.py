"""Group-sequential testing: a planned number of looks, spending exactly ``alpha``.

The mSPRT (:mod:`recsdk.experiments.sequential`) is valid however often and whenever the
report is looked at, and pays for it: with two weeks of daily looks its false-positive
rate is far below ``alpha`` and its power well below the fixed-horizon test's. When the
looks are planned (say, once a day for ``K`` days), a group-sequential test spends the
whole ``alpha`` over them: O'Brien & Fleming (1979) boundaries reject at look ``k`` of
``K`` (equal information increments) when ``|Z_k| >= c * sqrt(K / k)``, with ``c`` the
constant for which ``P(any |Z_k| crosses | H0) = alpha``. Under H0 the statistics
``Z_k`` are jointly normal with ``corr(Z_i, Z_j) = sqrt(i / j)`` (i <= j), so ``c``
solves ``1 - P(all |Z_k| < c sqrt(K/k)) = alpha``: the probability from scipy's
multivariate normal CDF (Genz's algorithm), the root from ``brentq``. Early looks need
very strong evidence; the last look's boundary is only a little above the fixed test's
1.96, so power is close to a fixed-horizon test of the same size.

Use it when the number of looks is fixed in advance; looking more often than planned
breaks its guarantee (the mSPRT is the test for unplanned looks).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import multivariate_normal, norm

from recsdk.experiments.stats import _Result

#: absolute error of scipy's multivariate normal CDF in the boundary search
CDF_ABSEPS = 1e-5


@functools.lru_cache(maxsize=64)
def obrien_fleming_bounds(looks: int, alpha: float = 0.05) -> tuple[float, ...]:
    """The two-sided |Z| boundary at each of ``looks`` equally spaced looks."""
    if not isinstance(looks, int) or looks < 1:
        raise ValueError(f"looks must be a positive integer, got {looks!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if looks == 1:
        return (float(norm.ppf(1 - alpha / 2)),)
    k = np.arange(1, looks + 1, dtype=float)
    cov = np.sqrt(np.minimum.outer(k, k) / np.maximum.outer(k, k))
    scale = np.sqrt(looks / k)
    # seeded: Genz's algorithm is quasi-Monte Carlo, so the boundary is reproducible
    mvn = multivariate_normal(mean=np.zeros(looks), cov=cov, seed=0, abseps=CDF_ABSEPS,
                              releps=0)

    def crossing(c: float) -> float:
        inside = mvn.cdf(c * scale, lower_limit=-c * scale)
        return 1.0 - float(inside) - alpha

    c = brentq(crossing, 0.5, 10.0, xtol=1e-4)
    return tuple(float(b) for b in c * scale)


@dataclass(frozen=True)
class GroupSequentialTest(_Result):
    """A planned-looks test after the looks so far: the z statistics, the boundaries,
    and the first look (1-based) at which the test rejected, if any."""

    metric: str
    looks_planned: int
    z: tuple[float, ...]
    bounds: tuple[float, ...]
    alpha: float
    rejected_at: int | None

    @property
    def rejected(self) -> bool:
        return self.rejected_at is not None


def group_sequential_rates(
    control_successes: Sequence[int] | np.ndarray,
    control_trials: Sequence[int] | np.ndarray,
    treatment_successes: Sequence[int] | np.ndarray,
    treatment_trials: Sequence[int] | np.ndarray,
    looks_planned: int,
    *,
    alpha: float = 0.05,
    metric: str = "conversion",
) -> GroupSequentialTest:
    """O'Brien-Fleming test of two rates from cumulative counts at each look so far
    (pooled-variance z statistic, as the fixed-horizon two-proportion z-test)."""
    arrays = [np.asarray(a, dtype=float) for a in (control_successes, control_trials,
                                                   treatment_successes, treatment_trials)]
    sc, nc, st, nt = arrays
    if not all(a.shape == sc.shape and a.ndim == 1 for a in arrays):
        raise ValueError("the four count arrays need one entry per look")
    if len(sc) > looks_planned:
        raise ValueError(f"{len(sc)} looks taken but {looks_planned} planned: a "
                         "group-sequential test is valid only for its planned looks")
    if np.any(nc <= 0) or np.any(nt <= 0):
        raise ValueError("every look needs trials > 0 in both arms")
    if np.any(sc < 0) or np.any(st < 0) or np.any(sc > nc) or np.any(st > nt):
        raise ValueError("successes must be between 0 and the trials at every look")
    bounds = obrien_fleming_bounds(int(looks_planned), float(alpha))
    pooled = (sc + st) / (nc + nt)
    se = np.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (st / nt - sc / nc) / se, 0.0)
    crossed = np.flatnonzero(np.abs(z) >= np.asarray(bounds[:len(z)]))
    return GroupSequentialTest(
        metric=metric, looks_planned=int(looks_planned),
        z=tuple(float(v) for v in z), bounds=bounds, alpha=float(alpha),
        rejected_at=int(crossed[0]) + 1 if len(crossed) else None)

