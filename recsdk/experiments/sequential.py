"""Experiments looked at over time: the always-valid mSPRT and Thompson-sampling allocation.

mSPRT (Johari, Koomen, Pekelis, Walsh, "Always valid inference: continuous monitoring of
A/B tests", Operations Research 2022; arXiv 2015/2017). The difference of means
``theta_hat`` after a look has variance ``v = var_t / n_t + var_c / n_c``; mixing the
likelihood ratio of ``N(theta, v)`` against ``N(0, v)`` over ``theta ~ N(0, tau^2)`` gives

    Lambda = sqrt(v / (v + tau^2)) * exp(tau^2 theta_hat^2 / (2 v (v + tau^2)))

(with equal arms of n units this is the paper's
``sqrt(V / (V + n tau^2)) exp(n^2 tau^2 theta_hat^2 / (2 V (V + n tau^2)))``). Under H0,
Lambda is a martingale, so by Ville's inequality ``P(sup Lambda >= 1/alpha) <= alpha``: the
p-value ``p_k = min(p_{k-1}, 1 / Lambda_k)`` may be looked at after every look and the
test stopped at any time. Inverting the same mixture at ``theta_0`` gives the confidence
sequence

    theta_hat +- sqrt(v (v + tau^2) / tau^2 * (log((v + tau^2) / v) - 2 log alpha))

intersected over looks. Unit variances are plug-in estimates (the normal approximation the
paper uses for large-sample A/B tests).

The mixing variance tau^2 is the prior spread of the true effects: the test is most
powerful for effects near ``tau`` and stays valid for any choice, but must be fixed before
the data is seen. Default: ``tau = 0.05 x baseline``, i.e. the test is tuned to relative
lifts of about 5 % (typical of product A/B tests), with ``baseline`` the metric's usual
control value (pass it); without one, the control mean at the first look where it is not
0 stands in (a mild dependence on the data, negligible once that look holds tens of
conversions). Pass ``tau2`` from the effects of past experiments when there are some.

The price of always-valid inference: at a given sample size the mSPRT rejects less often
than the fixed-horizon z-test, both under H0 (its error is well below alpha with a finite
number of looks; alpha is a bound for infinitely many) and under H1 (less power).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsdk.experiments.stats import _probability, _Result

DEFAULT_RELATIVE_TAU = 0.05


@dataclass(frozen=True)
class SequentialTest(_Result):
    """One mSPRT run, one entry per look (cumulative data).

    ``p_values`` are the always-valid p-values (non-increasing); ``ci_low``/``ci_high`` the
    confidence sequence (running intersection). ``rejected_at`` is the first look (0-based)
    whose p-value is below ``alpha``, or None.
    """

    metric: str
    tau2: float
    alpha: float
    estimates: tuple[float, ...]
    p_values: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    rejected_at: int | None

    @property
    def p_value(self) -> float:
        """The always-valid p-value after the last look."""
        return self.p_values[-1]

    @property
    def ci(self) -> tuple[float, float]:
        """The confidence sequence after the last look."""
        return self.ci_low[-1], self.ci_high[-1]


def _looks(name: str, values: Sequence[float] | np.ndarray | float) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty list, one entry per look")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def msprt(
    control_mean: Sequence[float] | np.ndarray | float,
    control_var: Sequence[float] | np.ndarray | float,
    control_n: Sequence[float] | np.ndarray | float,
    treatment_mean: Sequence[float] | np.ndarray | float,
    treatment_var: Sequence[float] | np.ndarray | float,
    treatment_n: Sequence[float] | np.ndarray | float,
    *,
    tau2: float | None = None,
    baseline: float | None = None,
    alpha: float = 0.05,
    metric: str = "metric",
) -> SequentialTest:
    """Always-valid test of ``mean_t - mean_c = 0``, one entry per look.

    Each argument holds the cumulative mean, unit-level variance and unit count of an arm
    at each look (equal lengths). ``tau2``: the mixing variance (module docstring); None
    uses ``(0.05 * baseline)^2``, ``baseline`` defaulting to the first non-zero control mean.
    """
    alpha = _probability("alpha", alpha)
    named = {
        "control_mean": control_mean,
        "control_var": control_var,
        "control_n": control_n,
        "treatment_mean": treatment_mean,
        "treatment_var": treatment_var,
        "treatment_n": treatment_n,
    }
    arrays = {k: _looks(k, v) for k, v in named.items()}
    sizes = {k: a.size for k, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every argument needs one entry per look; got sizes {sizes}")
    for k in ("control_var", "treatment_var"):
        if np.any(arrays[k] < 0):
            raise ValueError(f"{k} must be >= 0")
    for k in ("control_n", "treatment_n"):
        if np.any(arrays[k] <= 0):
            raise ValueError(f"{k} must be > 0 at every look (an arm is empty)")
    if tau2 is None:
        if baseline is None:
            nonzero = np.flatnonzero(arrays["control_mean"])
            if nonzero.size == 0:
                raise ValueError("tau2 or baseline is needed: the control mean is 0 at every look")
            baseline = float(arrays["control_mean"][nonzero[0]])
        if not (math.isfinite(baseline) and baseline != 0):
            raise ValueError(f"baseline must be a non-zero number, got {baseline!r}")
        tau2 = (DEFAULT_RELATIVE_TAU * baseline) ** 2
    elif not (math.isfinite(tau2) and tau2 > 0):
        raise ValueError(f"tau2 must be > 0, got {tau2!r}")

    theta = arrays["treatment_mean"] - arrays["control_mean"]
    v = (
        arrays["treatment_var"] / arrays["treatment_n"]
        + arrays["control_var"] / arrays["control_n"]
    )
    p_values, lows, highs = [], [], []
    p, low, high = 1.0, -math.inf, math.inf
    for est, var in zip(theta, v, strict=True):
        if var > 0:
            log_lambda = 0.5 * math.log(var / (var + tau2)) + tau2 * est**2 / (
                2 * var * (var + tau2)
            )
            p = min(p, math.exp(-log_lambda) if log_lambda > 0 else 1.0)
            half = math.sqrt(
                var * (var + tau2) / tau2 * (math.log((var + tau2) / var) - 2 * math.log(alpha))
            )
            low, high = max(low, est - half), min(high, est + half)
        p_values.append(p)
        lows.append(low)
        highs.append(high)
    rejected = next((i for i, q in enumerate(p_values) if q < alpha), None)
    return SequentialTest(
        metric=metric,
        tau2=float(tau2),
        alpha=alpha,
        estimates=tuple(float(t) for t in theta),
        p_values=tuple(p_values),
        ci_low=tuple(lows),
        ci_high=tuple(highs),
        rejected_at=rejected,
    )


def msprt_rates(
    control_successes: Sequence[int] | np.ndarray | int,
    control_trials: Sequence[int] | np.ndarray | int,
    treatment_successes: Sequence[int] | np.ndarray | int,
    treatment_trials: Sequence[int] | np.ndarray | int,
    *,
    tau2: float | None = None,
    baseline: float | None = None,
    alpha: float = 0.05,
    metric: str = "conversion",
) -> SequentialTest:
    """:func:`msprt` for rates from cumulative counts per look (variance ``p (1 - p)``)."""
    sc = _looks("control_successes", control_successes)
    nc = _looks("control_trials", control_trials)
    st = _looks("treatment_successes", treatment_successes)
    nt = _looks("treatment_trials", treatment_trials)
    for name, s, n in (("control", sc, nc), ("treatment", st, nt)):
        if s.shape != n.shape:
            raise ValueError(f"{name}_successes and {name}_trials need one entry per look")
        if np.any(s < 0):
            raise ValueError(f"{name}_successes must be >= 0")
        if np.any(n <= 0):
            raise ValueError(f"{name}_trials must be > 0 at every look (the arm is empty)")
        if np.any(s > n):
            raise ValueError(f"{name}_successes exceeds {name}_trials")
    pc, pt = sc / nc, st / nt
    return msprt(
        pc,
        pc * (1 - pc),
        nc,
        pt,
        pt * (1 - pt),
        nt,
        tau2=tau2,
        baseline=baseline,
        alpha=alpha,
        metric=metric,
    )


# --------------------------------------------------------------------------- Thompson sampling


@dataclass(frozen=True)
class Allocation(_Result):
    """Traffic shares per variant from Thompson sampling (they sum to 1).

    ``prob_best`` is the posterior probability that each variant has the highest rate
    (before ``min_share`` is applied); ``shares`` what to configure next.
    """

    variants: tuple[str, ...]
    shares: tuple[float, ...]
    prob_best: tuple[float, ...]
    draws: int
    seed: int

    def as_mapping(self) -> dict[str, float]:
        """``{variant: share}``."""
        return dict(zip(self.variants, self.shares, strict=True))


def thompson_shares(
    successes: Sequence[int],
    trials: Sequence[int],
    *,
    variants: Sequence[str] | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
    min_share: float = 0.0,
    draws: int = 10_000,
    seed: int = 0,
) -> Allocation:
    """Thompson-sampling shares: each variant's posterior probability of being best.

    Beta-Bernoulli: the conversion rate of a variant with s successes in n trials has
    posterior ``Beta(a + s, b + n - s)`` (``prior = (a, b)``); ``draws`` seeded samples from
    every posterior estimate P(variant is best), which becomes its share of traffic. A
    ``min_share`` floor keeps exploring every arm.

    Trade-off: this is for allocating traffic (fewer users on losing variants), not for
    inference. The shares change over time, so arms' rates are compared across different
    periods and the per-arm estimates are biased (an arm unlucky early gets little traffic
    and its estimate stays low); do not feed the counts of a bandit-allocated period to
    :func:`~recsdk.experiments.stats.compare_rates` as if it were a fixed split.
    """
    s = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    if s.ndim != 1 or s.size < 2:
        raise ValueError("successes needs one count per variant, at least 2 variants")
    if n.shape != s.shape:
        raise ValueError(f"trials has {n.size} entries but successes has {s.size}")
    if np.any(s < 0) or np.any(n < 0):
        raise ValueError("successes and trials must be >= 0")
    if np.any(s > n):
        bad = int(np.argmax(s > n))
        raise ValueError(f"successes[{bad}] ({s[bad]:g}) exceeds trials[{bad}] ({n[bad]:g})")
    names = tuple(variants) if variants is not None else tuple(f"v{i}" for i in range(s.size))
    if len(names) != s.size:
        raise ValueError(f"variants has {len(names)} names but successes has {s.size} counts")
    a, b = prior
    if not (a > 0 and b > 0):
        raise ValueError(f"prior must be two positive numbers, got {prior!r}")
    if not 0 <= min_share < 1 / s.size:
        raise ValueError(f"min_share must be in [0, 1/{s.size}), got {min_share!r}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws!r}")
    rng = np.random.default_rng(seed)
    samples = rng.beta(a + s, b + n - s, size=(draws, s.size))
    best = np.bincount(samples.argmax(axis=1), minlength=s.size) / draws
    shares = min_share + (1 - min_share * s.size) * best
    shares = shares / shares.sum()
    return Allocation(
        variants=names,
        shares=tuple(float(v) for v in shares),
        prob_best=tuple(float(v) for v in best),
        draws=int(draws),
        seed=int(seed),
    )
