"""Fixed-horizon A/B statistics equal scipy's and statsmodels' on the same data (to 1e-9)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)

from recsdk.experiments.stats import (
    adjust_comparisons,
    adjust_p_values,
    compare_means,
    compare_rates,
    cuped,
    mde_means,
    mde_rates,
    power_means,
    power_rates,
    relative_lift_ci,
    sample_ratio_mismatch,
    sample_size_means,
    sample_size_rates,
)

TOL = 1e-9


def test_rates_z_test_and_interval_equal_statsmodels() -> None:
    c = compare_rates(480, 10_000, 545, 10_200, metric="ctr", alpha=0.05)
    z, p = proportions_ztest([545, 480], [10_200, 10_000])
    low, high = confint_proportions_2indep(545, 10_200, 480, 10_000, method="wald", alpha=0.05)
    assert c.statistic == pytest.approx(z, abs=TOL)
    assert c.p_value == pytest.approx(p, abs=TOL)
    assert c.lift_abs_ci == pytest.approx((low, high), abs=TOL)
    assert c.lift_abs == pytest.approx(545 / 10_200 - 480 / 10_000, abs=TOL)
    assert c.metric == "ctr" and c.n_control == 10_000 and c.n_treatment == 10_200
    other = compare_rates(480, 10_000, 545, 10_200, ci_method="newcomb")
    expected = confint_proportions_2indep(545, 10_200, 480, 10_000, method="newcomb")
    assert other.lift_abs_ci == pytest.approx(expected, abs=TOL)


def test_rates_chi_square_is_scipy_without_yates_and_matches_z() -> None:
    c = compare_rates(480, 10_000, 545, 10_200, test="chi2")
    table = np.array([[480, 10_000 - 480], [545, 10_200 - 545]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    z, pz = proportions_ztest([545, 480], [10_200, 10_000])
    assert c.statistic == pytest.approx(chi2, abs=TOL)
    assert c.p_value == pytest.approx(p, abs=TOL)
    assert c.statistic == pytest.approx(z**2, abs=1e-8)
    assert c.p_value == pytest.approx(pz, abs=TOL)
    with_yates = stats.chi2_contingency(table, correction=True)[1]
    assert abs(with_yates - c.p_value) > 1e-4  # the correction would change the answer


def test_means_welch_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    control = rng.lognormal(1.0, 1.0, 800)
    treatment = rng.lognormal(1.05, 1.2, 700)
    c = compare_means(control, treatment, alpha=0.1)
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    ci = ref.confidence_interval(confidence_level=0.9)
    assert c.statistic == pytest.approx(ref.statistic, abs=TOL)
    assert c.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert c.lift_abs_ci == pytest.approx((ci.low, ci.high), abs=TOL)
    assert c.lift_abs == pytest.approx(treatment.mean() - control.mean(), abs=TOL)


def test_relative_lift_formula() -> None:
    lift, (low, high) = relative_lift_ci(2.0, 4.0, 100, 2.2, 5.0, 120, alpha=0.05)
    var = 5.0 / (120 * 2.0**2) + 2.2**2 * 4.0 / (100 * 2.0**4)
    half = stats.norm.ppf(0.975) * math.sqrt(var)
    assert lift == pytest.approx(0.1, abs=TOL)
    assert (low, high) == pytest.approx((0.1 - half, 0.1 + half), abs=TOL)
    assert math.isnan(relative_lift_ci(0.0, 1.0, 10, 1.0, 1.0, 10)[0])


def test_relative_lift_ci_covers_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    p_c, p_t, n = 0.05, 0.06, 5_000
    true_lift = p_t / p_c - 1
    sc = rng.binomial(n, p_c, 2_000)
    st = rng.binomial(n, p_t, 2_000)
    covered = 0
    for a, b in zip(sc, st, strict=True):
        _, (low, high) = relative_lift_ci(
            a / n, a / n * (1 - a / n), n, b / n, b / n * (1 - b / n), n
        )
        covered += low <= true_lift <= high
    assert 0.935 <= covered / 2_000 <= 0.965


def test_relative_lift_se_matches_bootstrap() -> None:
    rng = np.random.default_rng(3)
    control = rng.lognormal(0.0, 1.0, 4_000)
    treatment = rng.lognormal(0.1, 1.0, 4_000)
    c = compare_means(control, treatment)
    se_delta = (c.lift_rel_ci[1] - c.lift_rel_ci[0]) / (2 * stats.norm.ppf(0.975))
    idx_c = rng.integers(0, control.size, (1_000, control.size))
    idx_t = rng.integers(0, treatment.size, (1_000, treatment.size))
    boot = treatment[idx_t].mean(axis=1) / control[idx_c].mean(axis=1) - 1
    assert se_delta == pytest.approx(boot.std(ddof=1), rel=0.1)


def test_sample_ratio_mismatch() -> None:
    skewed = sample_ratio_mismatch([505_000, 495_000], [0.5, 0.5])
    assert skewed.mismatch and skewed.p_value < 1e-6
    ref = stats.chisquare([505_000, 495_000], f_exp=[500_000, 500_000])
    assert skewed.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert skewed.statistic == pytest.approx(ref.statistic, abs=TOL)
    fair = np.random.default_rng(0).multinomial(1_000_000, [0.5, 0.5])
    assert not sample_ratio_mismatch(fair.tolist(), [0.5, 0.5]).mismatch
    three = sample_ratio_mismatch([2_010, 3_990, 4_000], [0.2, 0.4, 0.4])
    ref3 = stats.chisquare([2_010, 3_990, 4_000], f_exp=[2_000, 4_000, 4_000])
    assert three.p_value == pytest.approx(ref3.pvalue, abs=TOL)


def test_power_rates_equal_statsmodels() -> None:
    h = proportion_effectsize(0.055, 0.05)
    plan = sample_size_rates(0.05, 0.055, alpha=0.05, power=0.8, ratio=1.5)
    n = zt_ind_solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.5)
    assert plan.effect_size == pytest.approx(h, abs=TOL)
    assert plan.n_control == math.ceil(n) and plan.n_treatment == math.ceil(math.ceil(n) * 1.5)
    power = power_rates(0.05, 0.055, 20_000, alpha=0.05)
    assert power.power == pytest.approx(
        NormalIndPower().power(effect_size=h, nobs1=20_000, alpha=0.05), abs=TOL
    )
    mde = mde_rates(0.05, n, ratio=1.5)
    h_ref = NormalIndPower().solve_power(
        effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=1.5
    )
    assert mde.effect_size == pytest.approx(h_ref, abs=TOL)
    # the inverse of Cohen's h gives back the planned rate (up to the root finder's tolerance)
    assert mde.lift_abs == pytest.approx(0.005, rel=1e-4)
    assert proportion_effectsize(0.05 + mde.lift_abs, 0.05) == pytest.approx(h_ref, abs=TOL)


def test_power_means_equal_statsmodels() -> None:
    plan = sample_size_means(0.5, 4.0, alpha=0.05, power=0.9)
    n = TTestIndPower().solve_power(effect_size=0.125, alpha=0.05, power=0.9)
    assert plan.n_control == math.ceil(n)
    assert power_means(0.5, 4.0, 1_000).power == pytest.approx(
        TTestIndPower().power(effect_size=0.125, nobs1=1_000, alpha=0.05), abs=TOL
    )
    d = TTestIndPower().solve_power(effect_size=None, nobs1=1_000, alpha=0.05, power=0.8)
    assert mde_means(4.0, 1_000).lift_abs == pytest.approx(d * 4.0, abs=TOL)


def test_multiple_testing_equals_statsmodels() -> None:
    p = [0.001, 0.012, 0.03, 0.04, 0.2]
    for method in ("holm", "fdr_bh", "bonferroni"):
        adj = adjust_p_values(p, method=method)  # type: ignore[arg-type]
        reject, ref, _, _ = multipletests(p, alpha=0.05, method=method)
        assert adj.p_values_adjusted == pytest.approx(tuple(ref), abs=TOL)
        assert adj.reject == tuple(bool(r) for r in reject)
    assert adjust_p_values(p).method == "holm"
    comps = [
        compare_rates(500, 10_000, 560, 10_000, metric="ctr"),
        compare_rates(100, 10_000, 150, 10_000, metric="conversion"),
    ]
    adjusted = adjust_comparisons(comps, method="fdr_bh")
    ref = multipletests([c.p_value for c in comps], method="fdr_bh")[1]
    assert [c.p_value_adjusted for c in adjusted] == pytest.approx(list(ref), abs=TOL)
    assert all(c.correction == "fdr_bh" for c in adjusted)


def test_cuped_reduces_variance_by_about_rho_squared() -> None:
    rng = np.random.default_rng(11)
    rho, n = 0.7, 20_000
    x = rng.normal(5.0, 2.0, 2 * n)
    y = 3.0 + rho * (x - 5.0) + math.sqrt(1 - rho**2) * 2.0 * rng.normal(size=2 * n)
    y[n:] += 0.1  # the treatment effect
    res = cuped(y[:n], x[:n], y[n:], x[n:])
    slope = stats.linregress(x, y).slope
    assert res.theta == pytest.approx(slope, abs=TOL)
    assert res.variance_reduction == pytest.approx(rho**2, abs=0.02)
    assert res.correlation == pytest.approx(rho, abs=0.01)
    assert res.control == pytest.approx(y[:n] - slope * (x[:n] - x.mean()), abs=TOL)
    plain = compare_means(y[:n], y[n:])
    adjusted = compare_means(res.control, res.treatment)
    width = lambda c: c.lift_abs_ci[1] - c.lift_abs_ci[0]  # noqa: E731
    assert width(adjusted) < 0.8 * width(plain)
    assert adjusted.lift_abs == pytest.approx(0.1, abs=0.03)
    json.dumps(res.to_dict())


def test_results_are_json_friendly_and_frozen() -> None:
    c = compare_rates(0, 100, 0, 100)
    assert c.p_value == 1.0
    means = compare_means([1.0, 2.0, 3.0], [2.0, 3.0, 5.0])
    assert all(type(v) is float for v in (*means.lift_rel_ci, *means.lift_abs_ci, means.p_value))
    back = json.loads(json.dumps(c.to_dict()))
    assert back["lift_rel"] is None and back["lift_abs_ci"] == list(c.lift_abs_ci)
    with pytest.raises(AttributeError):
        c.p_value = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compare_rates(-1, 10, 1, 10), "control_successes must be >= 0"),
        (lambda: compare_rates(11, 10, 1, 10), r"control_successes \(11\) exceeds"),
        (lambda: compare_rates(1, 10, 1, 0), "treatment_trials must be > 0"),
        (lambda: compare_rates(1.5, 10, 1, 10), "control_successes must be a whole number"),
        (lambda: compare_rates(1, 10, 1, 10, test="t"), "test must be"),  # type: ignore[arg-type]
        (lambda: compare_rates(1, 10, 1, 10, alpha=1.5), "alpha must be in"),
        (lambda: compare_means([], [1.0, 2.0]), "control_values needs at least 2"),
        (lambda: compare_means([1.0, 2.0], [1.0, np.nan]), "treatment_values contains NaN"),
        (lambda: sample_ratio_mismatch([10, 10], [0.6, 0.6]), "shares must sum to 1"),
        (lambda: sample_ratio_mismatch([10, 10], [1.0]), "shares has 1 entries"),
        (lambda: sample_ratio_mismatch([10, -1], [0.5, 0.5]), r"observed\[1\] must be >= 0"),
        (lambda: sample_size_rates(0.05, 0.05), "treatment_rate must differ"),
        (lambda: sample_size_rates(1.2, 0.05), "baseline must be in"),
        (lambda: sample_size_means(1.0, 0.0), "std must be > 0"),
        (lambda: power_rates(0.05, 0.06, 0), "n_control must be > 0"),
        (lambda: adjust_p_values([0.1, 1.2]), "p_values must lie in"),
        (lambda: adjust_p_values([0.1], method="sidak"), "method must be one of"),  # type: ignore[arg-type]
        (
            lambda: cuped([1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]),
            "control_covariate has 2",
        ),
        (lambda: cuped([1.0, 2.0], [1.0, 1.0], [1.0, 2.0], [1.0, 1.0]), "covariate is constant"),
    ],
)
def test_bad_inputs_name_the_argument(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
