"""Baseline policies: valid slates and exact propensities."""

from __future__ import annotations

import numpy as np
import pytest

from recsdk.simulate import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    MyopicPolicy,
    OraclePolicy,
    Policy,
    PopularityPolicy,
    RandomPolicy,
    ShopSimulator,
    epsilon_greedy_table,
    run_policy,
)
from recsdk.simulate.policies import top_k_positions


def _monte_carlo(n: int, k: int, epsilon: float, draws: int, seed: int) -> np.ndarray:
    """Frequency of rank r at position p under slot-by-slot epsilon-greedy."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((n, k))
    for _ in range(draws):
        free = list(range(n))
        for p in range(k):
            r = free[rng.integers(len(free))] if rng.random() < epsilon else free[0]
            free.remove(r)
            counts[r, p] += 1
    return counts / draws


@pytest.mark.parametrize(("n", "k", "epsilon"), [(6, 3, 0.3), (5, 5, 0.7), (9, 4, 0.1)])
def test_epsilon_greedy_propensities_are_exact(n: int, k: int, epsilon: float) -> None:
    table = epsilon_greedy_table(n, k, epsilon)
    full = np.vstack([table[:k], np.repeat(table[k:], n - k, axis=0)])[:n]
    assert np.allclose(full.sum(axis=0), 1.0)  # some item is at every position
    assert (full.sum(axis=1) <= 1 + 1e-12).all()  # an item is at most at one position
    estimate = _monte_carlo(n, k, epsilon, 40_000, seed=n + k)
    assert np.abs(full - estimate).max() < 0.012


def test_epsilon_extremes() -> None:
    assert np.allclose(epsilon_greedy_table(8, 3, 1.0), 1 / 8)  # uniform: like random
    table = epsilon_greedy_table(8, 3, 0.0)
    assert np.array_equal(table[:3], np.eye(3)) and (table[3] == 0).all()
    with pytest.raises(ValueError, match="need 1 <= k <= n"):
        epsilon_greedy_table(3, 4, 0.1)


def test_policies_return_valid_slates_and_propensities(sim: ShopSimulator) -> None:
    policies = [RandomPolicy(), PopularityPolicy(sim), MyopicPolicy(sim),
                EpsilonGreedyPolicy(sim, 0.2), GreedyPolicy(sim), OraclePolicy(sim),
                OraclePolicy(sim, max_per_leaf=2)]
    rng = np.random.default_rng(0)
    obs = sim.reset(4)
    for policy in policies:
        assert isinstance(policy, Policy)
        slate, propensities = policy.select(obs, 10, rng)
        assert slate.shape == propensities.shape == (10,)
        assert len(np.unique(slate)) == 10 and np.isin(slate, obs.candidates).all()
        assert ((propensities > 0) & (propensities <= 1)).all()
    assert np.allclose(RandomPolicy().select(obs, 10, rng)[1], 1 / sim.n_items)
    slate, _ = OraclePolicy(sim, max_per_leaf=2).select(obs, 10, rng)
    assert np.bincount(sim.item_leaf[slate]).max() <= 2
    with pytest.raises(ValueError, match="k must lie in \\[1, 300\\]"):
        RandomPolicy().select(obs, 301, rng)
    with pytest.raises(ValueError, match="epsilon must lie in \\[0, 1\\]"):
        EpsilonGreedyPolicy(sim, 1.5)
    with pytest.raises(ValueError, match='context must be "leaf" or "item"'):
        EpsilonGreedyPolicy(sim, 0.1, context="user")


def test_epsilon_greedy_logs_the_table_value_of_each_pick(sim: ShopSimulator) -> None:
    policy = EpsilonGreedyPolicy(sim, 0.3, context="item")
    obs = sim.reset(2)
    scores = policy.estimate.predict(obs, obs.candidates)
    rank_of = np.empty(sim.n_items, np.int64)
    rank_of[np.argsort(-scores, kind="stable")] = np.arange(sim.n_items)
    table = epsilon_greedy_table(sim.n_items, 10, 0.3)
    rng = np.random.default_rng(1)
    for _ in range(50):
        slate, propensities = policy.select(obs, 10, rng)
        ranks = np.minimum(rank_of[slate], 10)
        assert np.array_equal(propensities, table[ranks, np.arange(10)])


def test_learning_policies_learn_from_feedback(sim: ShopSimulator) -> None:
    greedy = GreedyPolicy(sim, context="item")
    log = run_policy(sim, greedy, 300, seed=3)
    assert greedy.estimate.exposure.sum() == pytest.approx(
        log.n_steps * sim.params.examination().sum())
    assert greedy.estimate.clicks.sum() == log.clicks.sum()
    myopic = run_policy(sim, MyopicPolicy(sim), 300, seed=3)
    random = run_policy(sim, RandomPolicy(), 300, seed=3)
    # the learned click model finds clicks a random list does not
    assert myopic.clicks.mean() > 3 * random.clicks.mean()


def test_top_k_positions_is_the_head_of_a_stable_descending_sort() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        scores = rng.integers(0, 4, n).astype(float)  # many ties
        k = int(rng.integers(1, n + 1))
        expected = np.argsort(-scores, kind="stable")[:k]
        assert np.array_equal(top_k_positions(scores, k), expected)
