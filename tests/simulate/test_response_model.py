"""The response model's documented properties hold (docs/simulator.md)."""

from __future__ import annotations

import numpy as np

from recsdk.data.synthetic import SyntheticShop
from recsdk.simulate import (
    OraclePolicy,
    RandomPolicy,
    ShopSimulator,
    SimulatorParams,
    run_policy,
)

#: Users never leave: for tests of what happens within a long episode.
STAY = dict(leave_bias=-50.0, return_bias=50.0)


def _leaf_items(sim: ShopSimulator, leaf: int, k: int) -> np.ndarray:
    return np.flatnonzero(sim.item_leaf == leaf)[:k]


def _favourite(sim: ShopSimulator, user: int) -> tuple[int, np.ndarray]:
    """The user's most preferred leaf with at least 10 items, and a leaf they ignore."""
    prefs = sim.truth.user_preferences(user)
    sizes = np.bincount(sim.item_leaf, minlength=sim.n_leaves)
    order = np.argsort(-prefs)
    leaf = next(int(x) for x in order if sizes[x] >= 10)
    return leaf, np.flatnonzero((prefs == 0) & (sizes >= 10))


def test_position_bias_lowers_clicks_at_lower_positions(shop: SyntheticShop) -> None:
    sim = ShopSimulator(shop, SimulatorParams(**STAY), seed=3)
    user = 7
    leaf, _ = _favourite(sim, user)
    items = _leaf_items(sim, leaf, 10)
    clicks = np.zeros(10)
    for _ in range(3000):
        sim.reset(user)
        clicks += sim.step(items).clicks
    obs = sim.reset(user)
    expected = 3000 * sim.params.examination() * sim.click_probabilities(obs, items)
    # each position within 4 standard deviations of its binomial expectation ...
    p = expected / 3000
    assert (np.abs(clicks - expected) < 4 * np.sqrt(3000 * p * (1 - p)) + 1).all()
    # ... and the same item is clicked less when shown lower
    rotated = np.roll(items, 5)  # items[0] now at position 6
    moved = 0
    for _ in range(3000):
        sim.reset(user)
        moved += sim.step(rotated).clicks[5]
    assert moved < 0.5 * clicks[0]


def test_satiety_lowers_clicks_on_a_shown_leaf_then_wears_off(shop: SyntheticShop) -> None:
    sim = ShopSimulator(shop, SimulatorParams(**STAY), seed=4)
    user = 11
    leaf, _ = _favourite(sim, user)
    items = _leaf_items(sim, leaf, 10)
    others = np.flatnonzero(sim.item_leaf != leaf)[:20]
    obs = sim.reset(user)
    before = sim.click_probabilities(obs, items)
    before_others = sim.click_probabilities(obs, others)
    outcome = sim.step(items)
    after = sim.click_probabilities(outcome.observation, items)
    assert (after < before).all()
    assert np.allclose(sim.click_probabilities(outcome.observation, others)[
        ~np.isin(others, items)], before_others)
    for _ in range(12):  # lists of other leaves, across visits: satiety decays
        outcome = sim.step(others[:10])
    recovered = sim.click_probabilities(outcome.observation, items)
    assert (recovered > after).all() and np.allclose(recovered, before, atol=0.01)


def test_bad_lists_make_users_leave_and_churn(shop: SyntheticShop) -> None:
    def lifetimes(kind: str) -> tuple[float, float]:
        sim = ShopSimulator(shop, seed=5)
        steps = visits = 0
        for _ in range(300):
            obs = sim.reset()
            prefs = sim.truth.user_preferences(obs.user)[sim.item_leaf]
            if kind == "good":  # the items of the leaves the user likes most
                slate = np.argsort(-prefs, kind="stable")[:10]
            else:  # items of leaves the user does not care for, as varied as the good
                slate = np.flatnonzero(prefs == 0)[::7][:10]
            while obs is not None:
                outcome = sim.step(slate)
                steps += 1
                last, obs = obs, outcome.observation
            visits += last.visit + 1
        return steps / 300, visits / 300

    good_steps, good_visits = lifetimes("good")
    bad_steps, bad_visits = lifetimes("bad")
    assert bad_visits < 0.8 * good_visits and bad_steps < 0.8 * good_steps


def test_repetitive_lists_bore(shop: SyntheticShop) -> None:
    """With every leaf liked alike (exploration=1), a list of one leaf makes users leave
    the visit more often than a list of four leaves."""
    params = SimulatorParams(slate_size=4, exploration=1.0, click_relief=0.0)
    sim = ShopSimulator(shop, params, seed=6)
    sizes = np.bincount(sim.item_leaf, minlength=sim.n_leaves)
    one_leaf = _leaf_items(sim, int(np.argmax(sizes >= 4)), 4)
    four_leaves = np.array([_leaf_items(sim, x, 1)[0] for x in range(4)])

    def leave_rate(slate: np.ndarray) -> float:
        return float(np.mean([sim.step(slate).visit_over
                              for _ in range(2000) if sim.reset(0) is not None]))

    repetitive, varied = leave_rate(one_leaf), leave_rate(four_leaves)
    assert repetitive > 2 * varied


def test_the_oracle_beats_random_in_expected_reward(sim: ShopSimulator) -> None:
    oracle = run_policy(sim, OraclePolicy(sim), 150, seed=1)
    random = run_policy(sim, RandomPolicy(), 150, seed=1)
    assert oracle.expected_reward.mean() > 5 * random.expected_reward.mean()
    assert oracle.episode_reward.mean() > 5 * random.episode_reward.mean()
    assert (random.regret >= -1e-9).all() and random.regret.mean() > 0


def test_long_term_value_differs_from_the_next_reward(sim: ShopSimulator) -> None:
    """Greedy on the immediate expected reward gets more now, less over a lifetime, than
    the same oracle limited to three items per leaf. Same users (paired by episode);
    lifetime value summed from the true expected reward of each shown list."""
    n = 600
    greedy = run_policy(sim, OraclePolicy(sim), n, seed=11)
    diverse = run_policy(sim, OraclePolicy(sim, max_per_leaf=3), n, seed=11)
    assert np.array_equal(greedy.episode_user, diverse.episode_user)
    now = [log.expected_reward[(log.visit == 0) & (log.step == 0)] for log in (greedy, diverse)]
    assert (now[0] >= now[1] - 1e-9).all() and now[0].mean() > now[1].mean()
    value = [np.bincount(log.episode, weights=log.expected_reward, minlength=n)
             for log in (greedy, diverse)]
    diff = value[1] - value[0]
    assert diff.mean() > 3 * diff.std() / np.sqrt(n)
    assert diverse.episode_visits.mean() > greedy.episode_visits.mean()



def test_a_satisfying_visit_brings_users_back(shop: SyntheticShop) -> None:
    """Boredom held at zero (every leaf liked alike, no repetition cost, one list per
    visit): users who clicked more come back more often."""
    params = SimulatorParams(exploration=1.0, repetition_weight=0.0, lists_per_visit=1,
                             horizon_visits=2, click_bias=-1.0, return_bias=0.0)
    sim = ShopSimulator(shop, params, seed=8)
    appeal = sim.truth.appeal
    liked = np.argsort(-appeal, kind="stable")[:10]  # the most appealing items: many clicks
    dull = np.argsort(appeal, kind="stable")[:10]  # the least: few clicks
    returned = {True: [0, 0], False: [0, 0]}  # clicked anything? -> [visits, returns]
    for slate in (liked, dull):
        for _ in range(1500):
            sim.reset()
            outcome = sim.step(slate)
            counts = returned[bool(outcome.clicks.any())]
            counts[0] += 1
            counts[1] += outcome.observation is not None
    rate = {clicked: r / v for clicked, (v, r) in returned.items()}
    assert min(v for v, _ in returned.values()) > 200
    assert rate[True] > rate[False] + 0.1
