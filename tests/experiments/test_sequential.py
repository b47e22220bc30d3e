"""mSPRT (always-valid p-values, confidence sequences) and Thompson-sampling shares."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from recsdk.experiments.sequential import msprt, msprt_rates, thompson_shares


def test_mixture_likelihood_ratio_equals_numerical_integral() -> None:
    est, v, tau2 = 0.012, 4e-5, 1e-4
    res = msprt(0.1, 0.0, 10, 0.1 + est, v * 10, 10, tau2=tau2)

    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(est, theta, math.sqrt(v)) / stats.norm.pdf(est, 0, math.sqrt(v))
        return ratio * stats.norm.pdf(theta, 0, math.sqrt(tau2))

    lam, _ = integrate.quad(integrand, -0.2, 0.2, points=[0.0, est], epsabs=1e-12)
    assert res.p_value == pytest.approx(min(1.0, 1 / lam), rel=1e-7)
    # the confidence sequence's edges are where the mixture at theta_0 reaches 1 / alpha
    low, high = res.ci
    for edge in (low, high):
        shifted = msprt(0.1, 0.0, 10, 0.1 + est - edge, v * 10, 10, tau2=tau2, alpha=0.05)
        assert shifted.p_value == pytest.approx(0.05, rel=1e-7)


def test_always_valid_under_continuous_peeking() -> None:
    rng = np.random.default_rng(5)
    rejections = 0
    n_sims, looks, per_look, p = 400, 30, 500, 0.1
    for _ in range(n_sims):
        sc = np.cumsum(rng.binomial(per_look, p, looks))
        st = np.cumsum(rng.binomial(per_look, p, looks))
        trials = per_look * np.arange(1, looks + 1)
        res = msprt_rates(sc, trials, st, trials, tau2=(0.1 * p) ** 2)
        rejections += res.rejected_at is not None
        assert all(a >= b for a, b in zip(res.p_values, res.p_values[1:], strict=False))
    assert rejections / n_sims <= 0.05 + 0.02  # alpha + 2 standard errors of 400 runs


def test_detects_a_real_effect_and_covers_it() -> None:
    rng = np.random.default_rng(8)
    looks, per_look = 20, 2_000
    sc = np.cumsum(rng.binomial(per_look, 0.10, looks))
    st = np.cumsum(rng.binomial(per_look, 0.12, looks))
    trials = per_look * np.arange(1, looks + 1)
    res = msprt_rates(sc, trials, st, trials)
    assert res.rejected_at is not None and res.p_value < 0.001
    assert res.ci_low[-1] <= 0.02 <= res.ci_high[-1]
    assert res.tau2 == pytest.approx((0.05 * sc[0] / trials[0]) ** 2)
    planned = msprt_rates(sc, trials, st, trials, baseline=0.1)
    assert planned.tau2 == pytest.approx((0.05 * 0.1) ** 2)
    late = msprt([0.0, 0.2], [0.0, 0.1], [5, 10], [0.1, 0.3], [0.1, 0.1], [5, 10])
    assert late.tau2 == pytest.approx((0.05 * 0.2) ** 2)  # first non-zero control mean
    assert all(b >= a for a, b in zip(res.ci_low, res.ci_low[1:], strict=False))
    json.dumps(res.to_dict())


def test_thompson_shares_sum_to_one_and_favour_the_better_arm() -> None:
    alloc = thompson_shares([100, 130, 95], [2_000, 2_000, 2_000], variants=["a", "b", "c"])
    assert sum(alloc.shares) == pytest.approx(1.0, abs=1e-12)
    assert max(alloc.as_mapping(), key=alloc.as_mapping().get) == "b"
    assert alloc.as_mapping()["b"] > 0.9
    again = thompson_shares([100, 130, 95], [2_000, 2_000, 2_000], variants=["a", "b", "c"])
    assert again == alloc  # seeded
    floored = thompson_shares([100, 130, 95], [2_000, 2_000, 2_000], min_share=0.1)
    assert min(floored.shares) >= 0.1 - 1e-12 and sum(floored.shares) == pytest.approx(1.0)
    even = thompson_shares([0, 0], [0, 0], draws=20_000)
    assert even.shares == pytest.approx((0.5, 0.5), abs=0.02)
    json.dumps(alloc.to_dict())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: msprt_rates([5, 12], [10, 20], [4, 30], [10, 20]), "treatment_successes exceeds"),
        (lambda: msprt_rates([5], [0], [4], [10]), "control_trials must be > 0"),
        (lambda: msprt_rates([5, 6], [10], [4], [10]), "control_successes and control_trials"),
        (lambda: msprt(0.1, 0.1, 10, 0.2, 0.1, 10, tau2=0.0), "tau2 must be > 0"),
        (lambda: msprt(0.0, 0.1, 10, 0.2, 0.1, 10), "tau2 or baseline is needed"),
        (lambda: msprt(0.1, 0.1, 10, 0.2, 0.1, 10, baseline=0.0), "baseline must be"),
        (lambda: msprt([0.1, 0.2], 0.1, 10, 0.2, 0.1, 10), "one entry per look"),
        (lambda: msprt(0.1, -0.1, 10, 0.2, 0.1, 10), "control_var must be >= 0"),
        (lambda: thompson_shares([5, 11], [10, 10]), r"successes\[1\] \(11\) exceeds"),
        (lambda: thompson_shares([5], [10]), "at least 2 variants"),
        (lambda: thompson_shares([5, 5], [10, 10], min_share=0.6), "min_share must be in"),
        (lambda: thompson_shares([5, 5], [10, 10], variants=["a"]), "variants has 1 names"),
    ],
)
def test_bad_inputs_name_the_argument(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
