"""O'Brien-Fleming group-sequential test: known boundaries, its error rate, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from recsdk.experiments.group_sequential import group_sequential_rates, obrien_fleming_bounds


def test_bounds_match_the_published_constants() -> None:
    assert obrien_fleming_bounds(1) == pytest.approx((norm.ppf(0.975),))
    five = obrien_fleming_bounds(5)  # O'Brien & Fleming 1979 / Jennison & Turnbull: 2.040
    assert five[-1] == pytest.approx(2.040, abs=2e-3)
    assert five[0] == pytest.approx(2.040 * 5 ** 0.5, abs=5e-3)
    assert list(five) == sorted(five, reverse=True)


def test_its_false_positive_rate_is_alpha_over_the_planned_looks() -> None:
    rng = np.random.default_rng(7)
    looks, per_look, experiments = 5, 400, 600
    rejected = 0
    for _ in range(experiments):
        c = np.cumsum(rng.binomial(per_look, 0.1, looks))
        t = np.cumsum(rng.binomial(per_look, 0.1, looks))
        n = per_look * np.arange(1, looks + 1)
        rejected += group_sequential_rates(c, n, t, n, looks).rejected
    assert 0.025 < rejected / experiments < 0.08  # 0.05 +- 2.7 Monte-Carlo s.e.


def test_a_large_effect_is_caught_at_an_early_look() -> None:
    n = 5_000 * np.arange(1, 6)
    res = group_sequential_rates(0.10 * n, n, 0.13 * n, n, 5)
    assert res.rejected and res.rejected_at is not None and res.rejected_at <= 2


@pytest.mark.parametrize(("args", "message"), [
    (([1, 2, 3], [10, 20, 30], [1, 2, 3], [10, 20, 30], 2), "3 looks taken but 2 planned"),
    (([1], [0], [1], [10], 3), "trials > 0"),
    (([11], [10], [1], [10], 3), "between 0 and the trials"),
    (([1, 2], [10, 20], [1], [10], 3), "one entry per look"),
])
def test_bad_input_is_refused_naming_the_problem(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        group_sequential_rates(*args)


def test_bad_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="looks must be a positive integer"):
        obrien_fleming_bounds(0)
    with pytest.raises(ValueError, match="alpha must be in"):
        obrien_fleming_bounds(3, 1.5)
