"""The estimators against a synthetic logging problem whose true values are known exactly.

Two kinds of users, six items, lists of three. The reward of item ``a`` at position
``k`` for user kind ``x`` is Bernoulli(theta[x, a] * beta[k]) (the item-position model),
so a deterministic list's value is ``sum_k theta[x, L_k] beta[k]``. The logging policy
shows its favourite list with probability 1 - eps and a uniformly random ordering
otherwise, so its item-position propensities are ``(1 - eps) 1[L0_k = a] + eps / 6``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

from recsdk.evaluation.off_policy import (
    doubly_robust,
    effective_sample_size,
    importance_weights,
    ips,
    snips,
)
from recsdk.evaluation.reward_model import ItemPositionRewardModel, cross_fit, folds_of

N_ITEMS, K, EPS = 6, 3, 0.4
THETA = np.array([[0.8, 0.6, 0.5, 0.3, 0.2, 0.1],
                  [0.1, 0.2, 0.3, 0.5, 0.6, 0.8]])
BETA = np.array([1.0, 0.6, 0.3])
LOGGING_LIST = np.array([[0, 1, 2], [0, 1, 2]])  # the same for both kinds of users
TARGET_LIST = np.array([[0, 1, 2], [5, 4, 3]])   # personalised: better for kind 1
UNIFORM = np.full(N_ITEMS, 1.0 / N_ITEMS)


def true_value(lists: np.ndarray, share_kind1: float = 0.5) -> float:
    per_kind = [(THETA[x, lists[x]] * BETA).sum() for x in (0, 1)]
    return (1 - share_kind1) * per_kind[0] + share_kind1 * per_kind[1]


@dataclass
class Logged:
    requests: np.ndarray
    positions: np.ndarray
    items: np.ndarray
    rewards: np.ndarray
    propensity: np.ndarray
    target: np.ndarray     # pi_e of the logged item (deterministic target)
    kinds: np.ndarray      # per row


def simulate(n: int, seed: int) -> Logged:
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 2, n)
    explore = rng.random(n) < EPS
    shown = LOGGING_LIST[kinds].copy()
    random_lists = np.argsort(rng.random((n, N_ITEMS)), axis=1)[:, :K]
    shown[explore] = random_lists[explore]
    positions = np.tile(np.arange(1, K + 1), n)
    items = shown.ravel()
    row_kinds = np.repeat(kinds, K)
    rewards = (rng.random(n * K) < THETA[row_kinds, items] * BETA[positions - 1]).astype(float)
    greedy = LOGGING_LIST[row_kinds, positions - 1] == items
    propensity = (1 - EPS) * greedy + EPS / N_ITEMS
    target = (TARGET_LIST[row_kinds, positions - 1] == items).astype(float)
    return Logged(np.repeat(np.arange(n), K), positions, items, rewards, propensity, target,
                  row_kinds)


def dr_terms(log: Logged, seed: int, target_lists: np.ndarray = TARGET_LIST
             ) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted q for the logged items and for the target's item at each position."""
    q_logged = np.zeros(len(log.rewards))
    q_target = np.zeros(len(log.rewards))
    target_items = target_lists[log.kinds, log.positions - 1]
    for in_fold, model in cross_fit(log.requests, log.items, log.positions - 1, log.rewards,
                                    N_ITEMS, K, seed=seed):
        rows = in_fold[log.requests]
        q_logged[rows] = model.predict(log.items[rows], log.positions[rows] - 1)
        q_target[rows] = model.predict(target_items[rows], log.positions[rows] - 1)
    return q_logged, q_target


def estimates(log: Logged, seed: int) -> dict[str, object]:
    w = importance_weights(log.propensity, log.target)
    q_logged, q_target = dr_terms(log, seed)
    args = (log.requests, log.positions, log.rewards, w)
    return {"ips": ips(*args), "snips": snips(*args),
            "dr": doubly_robust(*args, q_logged, q_target)}


@pytest.fixture(scope="module")
def replications() -> dict[str, np.ndarray]:
    """200 seeded logs of 1000 lists: each estimator's value and interval per log."""
    out: dict[str, list[tuple[float, float, float]]] = {"ips": [], "snips": [], "dr": []}
    for seed in range(200):
        for name, e in estimates(simulate(1000, seed), seed).items():
            out[name].append((e.value, e.ci_low, e.ci_high))
    return {name: np.array(rows) for name, rows in out.items()}


@pytest.mark.parametrize("name", ["ips", "dr"])
def test_unbiased_in_expectation(replications: dict[str, np.ndarray], name: str) -> None:
    values = replications[name][:, 0]
    truth = true_value(TARGET_LIST)
    assert true_value(TARGET_LIST) != pytest.approx(true_value(LOGGING_LIST), abs=0.1)
    # the mean over 200 logs is within 4 standard errors of the true value
    assert abs(values.mean() - truth) < 4 * values.std(ddof=1) / np.sqrt(len(values))


def test_snips_is_consistent_and_less_variable(replications: dict[str, np.ndarray]) -> None:
    truth = true_value(TARGET_LIST)
    assert abs(replications["snips"][:, 0].mean() - truth) < 0.02
    assert replications["snips"][:, 0].std() < replications["ips"][:, 0].std()


def test_dr_less_variable_than_ips(replications: dict[str, np.ndarray]) -> None:
    assert replications["dr"][:, 0].std() < replications["ips"][:, 0].std()


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_interval_coverage(replications: dict[str, np.ndarray], name: str) -> None:
    truth = true_value(TARGET_LIST)
    rows = replications[name]
    covered = ((rows[:, 1] <= truth) & (truth <= rows[:, 2])).mean()
    assert 0.88 <= covered <= 0.995, covered


def test_logging_policy_as_target_is_the_logged_mean() -> None:
    log = simulate(500, 3)
    w = importance_weights(log.propensity, log.propensity)
    per_list = np.bincount(log.requests, log.rewards)
    for estimator in (ips, snips):
        e = estimator(log.requests, log.positions, log.rewards, w)
        assert e.value == pytest.approx(per_list.mean())
    e = ips(log.requests, log.positions, log.rewards, w)
    assert e.std_error == pytest.approx(per_list.std(ddof=1) / np.sqrt(500))
    assert e.requests == 500


def test_dr_with_a_zero_reward_model_is_ips() -> None:
    log = simulate(300, 4)
    w = importance_weights(log.propensity, log.target)
    zeros = np.zeros(len(w))
    dr = doubly_robust(log.requests, log.positions, log.rewards, w, zeros, zeros)
    plain = ips(log.requests, log.positions, log.rewards, w)
    assert (dr.value, dr.std_error, dr.ci_low) == pytest.approx(
        (plain.value, plain.std_error, plain.ci_low))


def test_dr_with_an_exact_reward_model_has_only_the_noise_of_the_rewards() -> None:
    """With q the true expected reward, each residual has mean 0: DR is the true value
    plus zero-mean noise, however heavy the weights."""
    log = simulate(2000, 5)
    w = importance_weights(log.propensity, log.target)
    q_logged = THETA[log.kinds, log.items] * BETA[log.positions - 1]
    q_target = THETA[log.kinds, TARGET_LIST[log.kinds, log.positions - 1]] * BETA[
        log.positions - 1]
    dr = doubly_robust(log.requests, log.positions, log.rewards, w, q_logged, q_target)
    share = log.kinds.reshape(-1, K)[:, 0].mean()
    assert abs(dr.value - true_value(TARGET_LIST, share)) < 4 * dr.std_error


def test_snips_normalises_each_position() -> None:
    """Scaling every weight leaves SNIPS unchanged (IPS scales); with every reward 1 it is
    the number of positions, whatever the weights."""
    log = simulate(400, 6)
    w = importance_weights(log.propensity, log.target)
    base = snips(log.requests, log.positions, log.rewards, w)
    scaled = snips(log.requests, log.positions, log.rewards, 3 * w)
    assert scaled.value == pytest.approx(base.value)
    assert ips(log.requests, log.positions, log.rewards, 3 * w).value == pytest.approx(
        3 * ips(log.requests, log.positions, log.rewards, w).value)
    ones = snips(log.requests, log.positions, np.ones(len(w)), w)
    assert ones.value == pytest.approx(K)
    assert ones.std_error == pytest.approx(0, abs=1e-12)


def test_bootstrap_interval_is_seeded_and_close_to_the_normal_one() -> None:
    log = simulate(2000, 7)
    w = importance_weights(log.propensity, log.target)
    args = (log.requests, log.positions, log.rewards, w)
    for estimator in (ips, snips):
        normal = estimator(*args)
        first = estimator(*args, interval="bootstrap", seed=1)
        again = estimator(*args, interval="bootstrap", seed=1)
        assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
        assert first.value == normal.value
        width = normal.ci_high - normal.ci_low
        assert abs(first.ci_low - normal.ci_low) < 0.15 * width
        assert abs(first.ci_high - normal.ci_high) < 0.15 * width


def test_confidence_level_widens_the_interval() -> None:
    log = simulate(300, 8)
    w = importance_weights(log.propensity, log.target)
    narrow = ips(log.requests, log.positions, log.rewards, w, confidence=0.8)
    wide = ips(log.requests, log.positions, log.rewards, w, confidence=0.99)
    assert wide.ci_high - wide.ci_low > narrow.ci_high - narrow.ci_low


def test_clipping_caps_weights() -> None:
    w = importance_weights(np.array([0.01, 0.5, 1.0]), np.array([1.0, 1.0, 0.0]), clip=10)
    assert w.tolist() == [10.0, 2.0, 0.0]


def test_effective_sample_size() -> None:
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.array([10.0, 0, 0, 0])) == pytest.approx(1)
    assert effective_sample_size(np.zeros(3)) == 0


@pytest.mark.parametrize(("logging", "target", "message"), [
    ([0.0, 0.5], [1, 1], "propensity value(s) outside (0, 1]"),
    ([1.5, 0.5], [1, 1], "propensity value(s) outside (0, 1]"),
    ([np.nan, 0.5], [1, 1], "propensity value(s) outside (0, 1]"),
    ([0.5, 0.5], [1.2, 1], "target probability value(s) outside [0, 1]"),
])
def test_bad_probabilities(logging: list[float], target: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        importance_weights(np.array(logging), np.array(target))


def test_bad_arguments() -> None:
    one = np.ones(2)
    with pytest.raises(ValueError, match="the log is empty"):
        ips(np.array([]), np.array([]), np.array([]), np.array([]))
    with pytest.raises(ValueError, match=re.escape("same (request, position)")):
        ips(np.array(["a", "a"]), np.array([1, 1]), one, one)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        snips(np.array(["a", "b"]), np.array([1, 1]), one, one, confidence=1.5)
    with pytest.raises(ValueError, match="interval must be one of"):
        ips(np.array(["a", "b"]), np.array([1, 1]), one, one, interval="exact")
    with pytest.raises(ValueError, match="clip must be positive"):
        importance_weights(one, one, clip=0)


def test_one_request_has_no_interval() -> None:
    e = ips(np.array(["a"]), np.array([1]), np.array([1.0]), np.array([2.0]))
    assert e.value == 2.0 and np.isnan(e.std_error) and np.isnan(e.ci_low)


def test_reward_model_shrinks_towards_the_position_mean() -> None:
    items = np.array([0, 0, 1, 1, 1, 1])
    positions = np.array([0, 0, 0, 0, 1, 1])
    rewards = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    model = ItemPositionRewardModel.fit(items, positions, rewards, 3, 2, shrinkage=2)
    mu0 = 0.5
    assert model.predict(np.array([0]), np.array([0]))[0] == pytest.approx((2 + 2 * mu0) / 4)
    assert model.predict(np.array([2]), np.array([0]))[0] == pytest.approx(mu0)  # unseen item
    assert model.predict(np.array([-1]), np.array([1]))[0] == pytest.approx(0.5)
    assert model.predict(np.array([0]), np.array([7]))[0] == pytest.approx(rewards.mean())
    with pytest.raises(ValueError, match="shrinkage must be at least 0"):
        ItemPositionRewardModel.fit(items, positions, rewards, 3, 2, shrinkage=-1)


def test_cross_fitting_keeps_a_request_out_of_its_own_prediction() -> None:
    """Each request shows its own item: the prediction for it never saw its reward."""
    n = 40
    requests = np.arange(n)
    items = np.arange(n)
    positions = np.zeros(n, dtype=int)
    rewards = (np.arange(n) % 2).astype(float)
    for in_fold, model in cross_fit(requests, items, positions, rewards, n, 1, folds=4,
                                    shrinkage=1.0, seed=0):
        held = np.flatnonzero(in_fold)
        train_mean = rewards[~in_fold].mean()
        assert model.predict(items[held], positions[held]) == pytest.approx(
            np.full(len(held), train_mean))
    assert sorted(np.bincount(folds_of(n, 4, seed=0))) == [10, 10, 10, 10]
    with pytest.raises(ValueError, match="at least 2 requests"):
        folds_of(1, 5, 0)
    with pytest.raises(ValueError, match="at least 2 folds"):
        folds_of(10, 1, 0)
