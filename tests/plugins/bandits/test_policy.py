"""The bandits' policy maths: UCB choice, propensities, learning on a linear problem."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from recsdk_plugins.bandits.policy import LinearStats, LinearThompson, LinUCB


def trained_stats(seed: int = 0, dim: int = 4, n: int = 40) -> LinearStats:
    rng = np.random.default_rng(seed)
    stats = LinearStats.zeros(dim)
    X = rng.random((n, dim))
    stats.add_pulls(X)
    stats.add_rewards(X, rng.random(n) < X[:, 0])
    return stats


def test_linucb_picks_the_highest_upper_confidence_bounds() -> None:
    stats = trained_stats()
    X = np.random.default_rng(1).random((12, 4))
    A = np.eye(4) * 2.0 + stats.xx
    theta = np.linalg.solve(A, stats.rx)
    ucb = X @ theta + 0.7 * np.sqrt(np.einsum("ij,ij->i", X @ np.linalg.inv(A), X))
    policy = LinUCB(alpha=0.7, epsilon=0.0, ridge=2.0)

    (best,), (p,) = policy.select(X, 1, stats, np.random.default_rng(0))
    slate, props = policy.select(X, 3, stats, np.random.default_rng(0))

    assert best == int(np.argmax(ucb)) and p == 1.0
    assert slate.tolist() == np.argsort(-ucb)[:3].tolist()
    assert props.tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(policy.scores(X, stats), ucb)


def test_linucb_exploration_keeps_propensities_below_one() -> None:
    X = np.random.default_rng(2).random((8, 4))
    _, props = LinUCB(epsilon=0.3).select(X, 3, trained_stats(), np.random.default_rng(0))
    assert np.all((props > 0) & (props < 1))


def test_linucb_exploration_shrinks_with_the_pulls_but_never_reaches_zero() -> None:
    fixed, decaying = LinUCB(epsilon=0.2), LinUCB(epsilon=0.2, epsilon_decay_pulls=1000)
    assert fixed.epsilon_at(1e6) == 0.2
    assert decaying.epsilon_at(0) == 0.2
    assert decaying.epsilon_at(3000) == pytest.approx(0.1)  # sqrt(1000 / 4000)
    assert decaying.epsilon_at(99_000) == pytest.approx(0.02)
    # after many pulls the greedy slate is shown more often, yet not always
    stats = trained_stats()
    X = np.random.default_rng(2).random((8, 4))
    _, early = decaying.select(X, 3, stats, np.random.default_rng(0))
    stats.pulls = 1e6
    _, late = decaying.select(X, 3, stats, np.random.default_rng(0))
    assert np.all(late >= early) and late.mean() > early.mean()
    assert np.all((late > 0) & (late < 1))


@pytest.mark.parametrize("policy", [LinearThompson(v=1.0, n_draws=4000),
                                    LinUCB(alpha=0.5, epsilon=0.4, n_draws=4000)],
                         ids=["thompson", "linucb"])
def test_propensities_match_how_often_the_policy_shows_each_item_there(policy) -> None:
    stats = trained_stats(n=10)
    X = np.random.default_rng(3).random((6, 4))
    shown: Counter[tuple[int, int]] = Counter()
    reported: dict[tuple[int, int], list[float]] = {}
    trials = 1500
    for seed in range(trials):
        slate, props = policy.select(X, 3, stats, np.random.default_rng(seed))
        for pos, (item, p) in enumerate(zip(slate.tolist(), props.tolist(), strict=True)):
            shown[(item, pos)] += 1
            reported.setdefault((item, pos), []).append(p)
    for key, count in shown.items():
        if count >= 100:  # frequent enough for a tight frequency
            frequency = count / trials
            assert np.mean(reported[key]) == pytest.approx(frequency, abs=0.04), key


@pytest.mark.parametrize("policy", [LinUCB(alpha=1.0, epsilon=0.05, n_draws=8),
                                    LinearThompson(v=0.3, n_draws=8)],
                         ids=["linucb", "thompson"])
def test_learning_converges_to_the_best_arm_of_a_linear_problem(policy) -> None:
    rng = np.random.default_rng(7)
    dim, arms, rounds = 5, 20, 1500
    X = rng.random((arms, dim))
    theta = rng.dirichlet(np.ones(dim))
    p = X @ theta  # linear click probabilities in [0, 1]
    best = int(np.argmax(p))
    assert np.sort(p)[-1] - np.sort(p)[-2] > 0.02  # a best arm worth finding
    stats = LinearStats.zeros(dim)
    regret = np.zeros(rounds)
    picks = np.zeros(rounds, np.int64)
    for t in range(rounds):
        (arm,), _ = policy.select(X, 1, stats, rng)
        stats.add_pulls(X[arm])
        stats.add_rewards(X[arm], [float(rng.random() < p[arm])])
        regret[t] = p[best] - p[arm]
        picks[t] = arm
    assert np.mean(picks[-300:] == best) > 0.8
    half = rounds // 2
    assert regret[half:].sum() < 0.5 * regret[:half].sum()  # sublinear growth


def test_same_seed_same_slate_and_propensities() -> None:
    X = np.random.default_rng(4).random((10, 4))
    for policy in (LinUCB(epsilon=0.2), LinearThompson()):
        a = policy.select(X, 4, trained_stats(), np.random.default_rng(11))
        b = policy.select(X, 4, trained_stats(), np.random.default_rng(11))
        assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()


def test_short_candidate_lists_and_empty_ones() -> None:
    X = np.random.default_rng(5).random((2, 4))
    slate, props = LinearThompson().select(X, 5, trained_stats(), np.random.default_rng(0))
    assert sorted(slate.tolist()) == [0, 1] and len(props) == 2
    slate, props = LinUCB().select(np.zeros((0, 4)), 5, trained_stats(),
                                   np.random.default_rng(0))
    assert len(slate) == 0 and len(props) == 0


def test_statistics_round_trip_through_their_flat_vector() -> None:
    stats = trained_stats()
    back = LinearStats.from_vector(stats.to_vector(), 4)
    np.testing.assert_array_equal(back.xx, stats.xx)
    np.testing.assert_array_equal(back.rx, stats.rx)
    assert (back.pulls, back.reward) == (stats.pulls, stats.reward)
    with pytest.raises(ValueError, match="dimension 5 need 32 numbers"):
        LinearStats.from_vector(stats.to_vector(), 5)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: LinUCB(alpha=-1), "alpha must be >= 0"),
    (lambda: LinUCB(epsilon=1.5), "epsilon must be in"),
    (lambda: LinUCB(epsilon_decay_pulls=-1), "epsilon_decay_pulls must be at least 0"),
    (lambda: LinUCB(n_draws=0), "n_draws must be a positive integer"),
    (lambda: LinearThompson(v=0), "v must be > 0"),
    (lambda: LinearThompson(ridge=-1), "ridge must be > 0"),
])
def test_bad_parameters_are_refused(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_contexts_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match="n x 4 array"):
        LinUCB().select(np.zeros((3, 5)), 2, trained_stats(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="k must be at least 1"):
        LinUCB().select(np.zeros((3, 4)), 0, trained_stats(), np.random.default_rng(0))
