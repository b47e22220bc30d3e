"""Fixed-horizon statistics for comparing two variants: tests, intervals, power, CUPED, SRM.

Pure functions over counts and arrays. The tests, intervals and power calculations are
scipy's and statsmodels'; the one formula written out here is the delta-method interval
of the relative lift (no library exposes it for two independent samples). Results are
small frozen dataclasses whose ``to_dict`` is JSON-serialisable.

Sequential testing (mSPRT) and Thompson-sampling allocation are in
:mod:`recsdk.experiments.sequential`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from recsdk.jsonable import json_safe

RateTest = Literal["z", "chi2"]
Correction = Literal["holm", "fdr_bh", "bonferroni"]
CORRECTIONS: dict[str, str] = {"holm": "holm", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni"}


# --------------------------------------------------------------------------- validation


def _count(name: str, value: object) -> int:
    """A non-negative whole count, or a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(float(value)) or float(value) != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if int(value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return int(value)


def _rate_counts(prefix: str, successes: object, trials: object) -> tuple[int, int]:
    s = _count(f"{prefix}_successes", successes)
    n = _count(f"{prefix}_trials", trials)
    if n == 0:
        raise ValueError(f"{prefix}_trials must be > 0 (the {prefix} arm is empty)")
    if s > n:
        raise ValueError(f"{prefix}_successes ({s}) exceeds {prefix}_trials ({n})")
    return s, n


def _sample(name: str, values: object, minimum: int = 2) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _probability(name: str, value: float) -> float:
    v = float(value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


class _Result:
    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-serialisable values (tuples as lists, NaN as None)."""
        return json_safe(asdict(self))  # type: ignore[call-overload]


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison(_Result):
    """Treatment against control on one metric.

    ``lift_abs`` is ``estimate_treatment - estimate_control``; ``lift_rel`` is
    ``lift_abs / estimate_control`` (NaN when the control estimate is 0).
    ``p_value_adjusted`` and ``correction`` are set by :func:`adjust_comparisons`.
    """

    metric: str
    control: str
    treatment: str
    n_control: int
    n_treatment: int
    estimate_control: float
    estimate_treatment: float
    lift_abs: float
    lift_abs_ci: tuple[float, float]
    lift_rel: float
    lift_rel_ci: tuple[float, float]
    p_value: float
    test: str
    alpha: float
    statistic: float
    p_value_adjusted: float | None = None
    correction: str | None = None

    @property
    def significant(self) -> bool:
        """Whether the (adjusted, if set) p-value is below ``alpha``."""
        p = self.p_value if self.p_value_adjusted is None else self.p_value_adjusted
        return p < self.alpha


def relative_lift_ci(
    mean_control: float,
    var_control: float,
    n_control: int,
    mean_treatment: float,
    var_treatment: float,
    n_treatment: int,
    alpha: float = 0.05,
) -> tuple[float, tuple[float, float]]:
    """Relative lift ``mean_t / mean_c - 1`` and its delta-method (1 - alpha) interval.

    With independent arms, ``Var(xbar_t) = var_t / n_t`` and ``Var(xbar_c) = var_c / n_c``
    (unit-level variances), a first-order Taylor expansion of the ratio gives

        Var(xbar_t / xbar_c) ~= var_t / (n_t xbar_c^2) + xbar_t^2 var_c / (n_c xbar_c^4)

    and the interval is ``lift +- z_{1 - alpha/2} sqrt(Var)``. Returns NaNs when the control
    mean is 0 (the ratio is undefined).
    """
    if mean_control == 0:
        return math.nan, (math.nan, math.nan)
    ratio = mean_treatment / mean_control
    var = var_treatment / (n_treatment * mean_control**2) + (
        mean_treatment**2 * var_control / (n_control * mean_control**4)
    )
    half = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(var)
    lift = float(ratio - 1.0)
    return lift, (lift - half, lift + half)


def compare_rates(
    control_successes: int,
    control_trials: int,
    treatment_successes: int,
    treatment_trials: int,
    *,
    metric: str = "conversion",
    control: str = "control",
    treatment: str = "treatment",
    alpha: float = 0.05,
    test: RateTest = "z",
    ci_method: str = "wald",
) -> Comparison:
    """Compare two rates (CTR, add-to-cart, conversion) with a two-sided test.

    ``test="z"``: statsmodels ``proportions_ztest`` (pooled variance under H0).
    ``test="chi2"``: scipy ``chi2_contingency`` on the 2x2 table *without* Yates'
    continuity correction, so that chi2 = z^2 and the p-values agree with the z-test.
    The absolute-lift interval is statsmodels ``confint_proportions_2indep``
    (``ci_method``, default ``"wald"``, the interval matching the delta-method relative
    one; ``"agresti-caffo"`` or ``"newcomb"`` cover better at small counts).
    """
    alpha = _probability("alpha", alpha)
    sc, nc = _rate_counts("control", control_successes, control_trials)
    st, nt = _rate_counts("treatment", treatment_successes, treatment_trials)
    pc, pt = sc / nc, st / nt
    if sc + st in (0, nc + nt):
        # no successes (or no failures) in either arm: the rates cannot differ in the data
        statistic, p_value = 0.0, 1.0
        test_name = {"z": "two-proportion z-test", "chi2": "chi-square 2x2"}.get(test, "")
        if not test_name:
            raise ValueError(f"test must be 'z' or 'chi2', got {test!r}")
        test_name += " (degenerate: no successes or no failures in either arm)"
    elif test == "z":
        statistic, p_value = proportions_ztest([st, sc], [nt, nc])
        test_name = "two-proportion z-test (statsmodels proportions_ztest)"
    elif test == "chi2":
        table = np.array([[sc, nc - sc], [st, nt - st]])
        statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
        test_name = "chi-square 2x2, no Yates (scipy chi2_contingency)"
    else:
        raise ValueError(f"test must be 'z' or 'chi2', got {test!r}")
    low, high = confint_proportions_2indep(
        st, nt, sc, nc, method=ci_method, compare="diff", alpha=alpha
    )
    lift_rel, rel_ci = relative_lift_ci(pc, pc * (1 - pc), nc, pt, pt * (1 - pt), nt, alpha)
    return Comparison(
        metric=metric,
        control=control,
        treatment=treatment,
        n_control=nc,
        n_treatment=nt,
        estimate_control=pc,
        estimate_treatment=pt,
        lift_abs=pt - pc,
        lift_abs_ci=(float(low), float(high)),
        lift_rel=lift_rel,
        lift_rel_ci=rel_ci,
        p_value=float(p_value),
        test=test_name,
        alpha=alpha,
        statistic=float(statistic),
    )


def compare_means(
    control_values: Sequence[float] | np.ndarray,
    treatment_values: Sequence[float] | np.ndarray,
    *,
    metric: str = "revenue_per_user",
    control: str = "control",
    treatment: str = "treatment",
    alpha: float = 0.05,
) -> Comparison:
    """Compare two means (revenue per user, items per session) with Welch's t-test.

    scipy ``ttest_ind(equal_var=False)``; the absolute-lift interval is the Welch
    interval from the same result (``confidence_interval``), the relative one the delta
    method (:func:`relative_lift_ci`). Pass CUPED-adjusted values to get CUPED's
    tighter intervals.
    """
    alpha = _probability("alpha", alpha)
    xc = _sample("control_values", control_values)
    xt = _sample("treatment_values", treatment_values)
    result = stats.ttest_ind(xt, xc, equal_var=False)
    ci = result.confidence_interval(confidence_level=1 - alpha)
    mc, mt = float(xc.mean()), float(xt.mean())
    lift_rel, rel_ci = relative_lift_ci(
        mc, float(xc.var(ddof=1)), xc.size, mt, float(xt.var(ddof=1)), xt.size, alpha
    )
    p_value = float(result.pvalue)
    return Comparison(
        metric=metric,
        control=control,
        treatment=treatment,
        n_control=int(xc.size),
        n_treatment=int(xt.size),
        estimate_control=mc,
        estimate_treatment=mt,
        lift_abs=mt - mc,
        lift_abs_ci=(float(ci.low), float(ci.high)),
        lift_rel=lift_rel,
        lift_rel_ci=rel_ci,
        p_value=p_value if math.isfinite(p_value) else 1.0,
        test="Welch's t-test (scipy ttest_ind, equal_var=False)",
        alpha=alpha,
        statistic=float(result.statistic) if math.isfinite(result.statistic) else 0.0,
    )


# --------------------------------------------------------------------------- multiple testing


@dataclass(frozen=True)
class Adjusted(_Result):
    """p-values corrected for multiple comparisons and which hypotheses are rejected."""

    method: str
    alpha: float
    p_values: tuple[float, ...]
    p_values_adjusted: tuple[float, ...]
    reject: tuple[bool, ...]


def adjust_p_values(
    p_values: Sequence[float], *, method: Correction = "holm", alpha: float = 0.05
) -> Adjusted:
    """statsmodels ``multipletests``: Holm (family-wise error, the default) or
    Benjamini-Hochberg (``"fdr_bh"``, false-discovery rate, more power with many metrics)."""
    alpha = _probability("alpha", alpha)
    if method not in CORRECTIONS:
        raise ValueError(f"method must be one of {sorted(CORRECTIONS)}, got {method!r}")
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("p_values must be a non-empty list of numbers")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p_values must lie in [0, 1], got {p.tolist()}")
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method=CORRECTIONS[method])
    return Adjusted(
        method=method,
        alpha=alpha,
        p_values=tuple(float(v) for v in p),
        p_values_adjusted=tuple(float(v) for v in adjusted),
        reject=tuple(bool(v) for v in reject),
    )


def adjust_comparisons(
    comparisons: Sequence[Comparison], *, method: Correction = "holm", alpha: float = 0.05
) -> list[Comparison]:
    """The comparisons (several variants and/or metrics) with ``p_value_adjusted`` set."""
    adjusted = adjust_p_values([c.p_value for c in comparisons], method=method, alpha=alpha)
    return [
        replace(c, p_value_adjusted=p, correction=method, alpha=alpha)
        for c, p in zip(comparisons, adjusted.p_values_adjusted, strict=True)
    ]


# --------------------------------------------------------------------------- sample ratio


@dataclass(frozen=True)
class SampleRatioCheck(_Result):
    """Observed units per variant against the configured shares."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    threshold: float
    mismatch: bool


def sample_ratio_mismatch(
    observed: Sequence[int], shares: Sequence[float], *, threshold: float = 0.001
) -> SampleRatioCheck:
    """Chi-square goodness of fit (scipy ``chisquare``) of unit counts against the shares.

    A mismatch (p below ``threshold``, 0.001 by convention since the check runs on every
    experiment) means assignment or logging is broken and the comparisons are not to be
    trusted.
    """
    threshold = _probability("threshold", threshold)
    counts = [_count(f"observed[{i}]", v) for i, v in enumerate(observed)]
    w = np.asarray(shares, dtype=float)
    if len(counts) < 2:
        raise ValueError(f"observed needs at least 2 variants, got {len(counts)}")
    if w.shape != (len(counts),):
        raise ValueError(f"shares has {w.size} entries but observed has {len(counts)}")
    if not np.all(w > 0):
        raise ValueError(f"shares must all be > 0, got {w.tolist()}")
    if not math.isclose(float(w.sum()), 1.0, abs_tol=1e-9):
        raise ValueError(f"shares must sum to 1, got {float(w.sum())!r}")
    total = sum(counts)
    if total == 0:
        raise ValueError("observed counts are all 0")
    expected = w * total
    statistic, p_value = stats.chisquare(counts, f_exp=expected)
    return SampleRatioCheck(
        observed=tuple(counts),
        expected=tuple(float(v) for v in expected),
        statistic=float(statistic),
        p_value=float(p_value),
        threshold=threshold,
        mismatch=bool(p_value < threshold),
    )


# --------------------------------------------------------------------------- power


@dataclass(frozen=True)
class PowerAnalysis(_Result):
    """Sizes, effect and power of one planned two-arm comparison.

    ``effect_size`` is Cohen's h for rates, Cohen's d for means; ``lift_abs`` the effect in
    the metric's own units.
    """

    kind: str
    n_control: float
    n_treatment: float
    effect_size: float
    lift_abs: float
    alpha: float
    power: float
    ratio: float


def _power_args(alpha: float, power: float | None, ratio: float) -> tuple[float, float | None]:
    _probability("alpha", alpha)
    if power is not None:
        _probability("power", power)
    _positive("ratio", ratio)
    return alpha, power


def sample_size_rates(
    baseline: float,
    treatment_rate: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> PowerAnalysis:
    """Units per arm to detect ``baseline -> treatment_rate`` with a two-sided z-test.

    statsmodels ``zt_ind_solve_power`` on Cohen's h (``proportion_effectsize``); sizes are
    rounded up. ``ratio`` is n_treatment / n_control.
    """
    _power_args(alpha, power, ratio)
    _probability("baseline", baseline)
    _probability("treatment_rate", treatment_rate)
    if baseline == treatment_rate:
        raise ValueError("treatment_rate must differ from baseline")
    h = float(proportion_effectsize(treatment_rate, baseline))
    n1 = NormalIndPower().solve_power(
        effect_size=h, nobs1=None, alpha=alpha, power=power, ratio=ratio
    )
    n1 = math.ceil(float(n1))
    return PowerAnalysis(
        "rates", n1, math.ceil(n1 * ratio), h, treatment_rate - baseline, alpha, power, ratio
    )


def power_rates(
    baseline: float,
    treatment_rate: float,
    n_control: float,
    *,
    alpha: float = 0.05,
    ratio: float = 1.0,
) -> PowerAnalysis:
    """Power of the two-sided z-test with ``n_control`` units (statsmodels NormalIndPower)."""
    _power_args(alpha, None, ratio)
    _probability("baseline", baseline)
    _probability("treatment_rate", treatment_rate)
    n = _positive("n_control", n_control)
    h = float(proportion_effectsize(treatment_rate, baseline))
    power = float(NormalIndPower().power(effect_size=h, nobs1=n, alpha=alpha, ratio=ratio))
    return PowerAnalysis("rates", n, n * ratio, h, treatment_rate - baseline, alpha, power, ratio)


def mde_rates(
    baseline: float,
    n_control: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> PowerAnalysis:
    """Smallest upward change of ``baseline`` detectable with the given units and power.

    Solves Cohen's h (statsmodels NormalIndPower) and inverts
    ``h = 2 asin(sqrt(p_t)) - 2 asin(sqrt(p_c))`` for ``p_t``.
    """
    _power_args(alpha, power, ratio)
    _probability("baseline", baseline)
    n = _positive("n_control", n_control)
    h = float(
        NormalIndPower().solve_power(
            effect_size=None, nobs1=n, alpha=alpha, power=power, ratio=ratio
        )
    )
    angle = math.asin(math.sqrt(baseline)) + h / 2
    if angle >= math.pi / 2:
        raise ValueError(f"n_control={n_control} is too small to detect any change upward")
    treatment_rate = math.sin(angle) ** 2
    return PowerAnalysis("rates", n, n * ratio, h, treatment_rate - baseline, alpha, power, ratio)


def sample_size_means(
    lift_abs: float,
    std: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> PowerAnalysis:
    """Units per arm to detect a difference of means ``lift_abs`` (statsmodels TTestIndPower,
    Cohen's d = lift_abs / std, ``std`` the unit-level standard deviation); rounded up."""
    _power_args(alpha, power, ratio)
    sd = _positive("std", std)
    if lift_abs == 0 or not math.isfinite(lift_abs):
        raise ValueError(f"lift_abs must be a non-zero number, got {lift_abs!r}")
    d = lift_abs / sd
    n1 = TTestIndPower().solve_power(
        effect_size=d, nobs1=None, alpha=alpha, power=power, ratio=ratio
    )
    n1 = math.ceil(float(n1))
    return PowerAnalysis("means", n1, math.ceil(n1 * ratio), d, lift_abs, alpha, power, ratio)


def power_means(
    lift_abs: float,
    std: float,
    n_control: float,
    *,
    alpha: float = 0.05,
    ratio: float = 1.0,
) -> PowerAnalysis:
    """Power of the two-sided two-sample t-test (statsmodels TTestIndPower)."""
    _power_args(alpha, None, ratio)
    sd = _positive("std", std)
    n = _positive("n_control", n_control)
    d = lift_abs / sd
    power = float(TTestIndPower().power(effect_size=d, nobs1=n, alpha=alpha, ratio=ratio))
    return PowerAnalysis("means", n, n * ratio, d, lift_abs, alpha, power, ratio)


def mde_means(
    std: float,
    n_control: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> PowerAnalysis:
    """Smallest difference of means detectable with the given units (TTestIndPower)."""
    _power_args(alpha, power, ratio)
    sd = _positive("std", std)
    n = _positive("n_control", n_control)
    d = float(
        TTestIndPower().solve_power(
            effect_size=None, nobs1=n, alpha=alpha, power=power, ratio=ratio
        )
    )
    return PowerAnalysis("means", n, n * ratio, d, d * sd, alpha, power, ratio)


# --------------------------------------------------------------------------- CUPED


@dataclass(frozen=True, eq=False)
class Cuped(_Result):
    """CUPED-adjusted metric values of both arms.

    ``variance_reduction`` is ``1 - Var(Y_adj) / Var(Y)`` over both arms pooled (about
    rho^2, rho the correlation of the metric with its pre-period covariate).
    """

    theta: float
    covariate_mean: float
    correlation: float
    variance_reduction: float
    control: np.ndarray
    treatment: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """The summary figures (the adjusted arrays are left out)."""
        return json_safe(
            {
                "theta": self.theta,
                "covariate_mean": self.covariate_mean,
                "correlation": self.correlation,
                "variance_reduction": self.variance_reduction,
                "n_control": int(self.control.size),
                "n_treatment": int(self.treatment.size),
            }
        )


def cuped(
    control_values: Sequence[float] | np.ndarray,
    control_covariate: Sequence[float] | np.ndarray,
    treatment_values: Sequence[float] | np.ndarray,
    treatment_covariate: Sequence[float] | np.ndarray,
) -> Cuped:
    """CUPED (Deng, Xu, Kohavi, Walker 2013): ``Y - theta (X - mean X)``.

    ``theta = cov(Y, X) / var(X)`` and ``mean X`` are pooled over both arms, so the
    adjustment is the same for each arm and the difference of adjusted means stays an
    unbiased estimate of the effect (X must be measured before assignment). Compare the
    adjusted arrays with :func:`compare_means`.
    """
    yc = _sample("control_values", control_values)
    xc = _sample("control_covariate", control_covariate)
    yt = _sample("treatment_values", treatment_values)
    xt = _sample("treatment_covariate", treatment_covariate)
    if xc.size != yc.size:
        raise ValueError(f"control_covariate has {xc.size} values, control_values {yc.size}")
    if xt.size != yt.size:
        raise ValueError(f"treatment_covariate has {xt.size} values, treatment_values {yt.size}")
    y = np.concatenate([yc, yt])
    x = np.concatenate([xc, xt])
    var_x = float(np.var(x, ddof=1))
    if var_x == 0:
        raise ValueError("the covariate is constant: CUPED needs a varying pre-period metric")
    cov = np.cov(y, x, ddof=1)
    theta = float(cov[0, 1] / var_x)
    mean_x = float(x.mean())
    adj_c = yc - theta * (xc - mean_x)
    adj_t = yt - theta * (xt - mean_x)
    var_y = float(cov[0, 0])
    reduction = (
        1.0 - float(np.var(np.concatenate([adj_c, adj_t]), ddof=1)) / var_y if var_y else 0.0
    )
    corr = float(cov[0, 1] / math.sqrt(var_x * var_y)) if var_y else 0.0
    return Cuped(theta, mean_x, corr, reduction, adj_c, adj_t)
