"""qlearning's table: Watkins's update on hand-made MDPs, and the list decomposition."""

from __future__ import annotations

import numpy as np
import pytest
from recsdk_plugins.qlearning.tabular import QTable

#: A deterministic chain: states 0, 1, 2 (2 is the last); action 0 "stay" earns 0.05 and
#: stays, action 1 "advance" earns 0 in states 0 and 1 and moves right, and earns 1.0
#: in state 2, ending the episode.
GAMMA = 0.9


def chain_step(state: int, action: int) -> tuple[float, int | None]:
    if action == 0:
        return 0.05, state
    if state == 2:
        return 1.0, None
    return 0.0, state + 1


def chain_optimum() -> np.ndarray:
    """Q* by value iteration."""
    q = np.zeros((3, 2))
    for _ in range(2000):
        new = np.zeros_like(q)
        for s in range(3):
            for a in range(2):
                r, nxt = chain_step(s, a)
                new[s, a] = r + (0.0 if nxt is None else GAMMA * q[nxt].max())
        q = new
    return q


def test_one_update_moves_the_reward_mean_and_the_future_towards_the_target() -> None:
    table = QTable(2, 2, np.ones(1), gamma=0.5, learning_rate=0.1)
    table.q[1] = [2.0, 4.0]
    next_value = table.list_value(1, np.array([0, 1]))
    assert next_value == 4.0
    table.update(0, np.array([1]), np.array([1.0]), next_value)
    assert table.reward[0, 1] == pytest.approx(1.0)                 # first visit: the reward
    assert table.future[0, 1] == pytest.approx(0.1 * 0.5 * 4.0)     # alpha (gamma V' - F)
    assert table.q[0, 1] == pytest.approx(1.0 + 0.2)
    table.update(0, np.array([1]), np.array([0.0]), 0.0)
    assert table.reward[0, 1] == pytest.approx(0.5)                 # a running mean
    assert table.future[0, 1] == pytest.approx(0.2 * 0.9)
    for _ in range(30):
        table.update(0, np.array([1]), np.array([0.0]), 0.0)
    # beyond 1 / visits < learning_rate the reward's step stays at learning_rate
    before = table.reward[0, 1]
    table.update(0, np.array([1]), np.array([0.0]), 0.0)
    assert table.reward[0, 1] == pytest.approx(before * (1 - 0.1))


def test_q_learning_reaches_the_known_optimum_of_a_hand_made_mdp() -> None:
    optimum = chain_optimum()
    # advancing pays 1.0 at the end: Q*(s, advance) = gamma^(2 - s)
    np.testing.assert_allclose(optimum[:, 1], [GAMMA**2, GAMMA, 1.0])
    np.testing.assert_allclose(optimum[:, 0], 0.05 + GAMMA * optimum[:, 1])
    table = QTable(3, 2, np.ones(1), gamma=GAMMA, learning_rate=0.2)
    rng = np.random.default_rng(0)
    for _ in range(400):                       # off-policy: uniformly random behaviour
        state: int | None = 0
        for _ in range(20):
            action = int(rng.integers(2))
            reward, nxt = chain_step(state, action)
            value = 0.0 if nxt is None else table.list_value(nxt, np.array([0, 1]))
            table.update(state, np.array([action]), np.array([reward]), value)
            if nxt is None:
                break
            state = nxt
    np.testing.assert_allclose(table.q, optimum, atol=1e-3)


def test_a_list_update_splits_the_target_over_positions() -> None:
    weights = np.array([1.0, 0.5])
    table = QTable(2, 3, weights, gamma=0.8, learning_rate=0.5)
    table.q[1] = [1.0, 3.0, 2.0]
    # the best list of the next state puts 3.0 first and 2.0 second
    assert table.list_value(1, np.array([0, 1, 2])) == pytest.approx(3.0 + 0.5 * 2.0)
    assert table.list_value(1, np.array([0])) == pytest.approx(1.0)
    table.update(0, np.array([0, 2]), np.array([1.0, 0.0]), next_value=4.0)
    # the present: each item's reward over its examination weight (first visits)
    np.testing.assert_allclose(table.reward[0, [0, 2]], [1.0, 0.0])
    np.testing.assert_allclose(table.mass[0], [1.0, 0.0, 0.25])
    # the future: one list error gamma V' - w.F = 3.2, shared as alpha w_p / (w.w)
    np.testing.assert_allclose(table.future[0, [0, 2]], 0.5 * weights * 3.2 / 1.25)
    np.testing.assert_allclose(table.q[0], table.reward[0] + table.future[0])
    # the decomposed list value moved half way (alpha) towards the target's future part
    assert weights @ table.future[0, [0, 2]] == pytest.approx(0.5 * 3.2)
    # a low position moves its reward cell by w**2 of the way (the floor 0.5 binds once
    # the mass passes 2)
    table.update(0, np.array([1, 2]), np.array([0.0, 0.5]), next_value=0.0)
    assert table.reward[0, 2] == pytest.approx(0.0 + 0.25 / 0.5 * (0.5 / 0.5 - 0.0))


def test_shrinkage_pulls_rare_cells_towards_the_action_mean() -> None:
    table = QTable(3, 1, np.ones(1), gamma=0.5, learning_rate=0.1, shrinkage=4.0)
    for _ in range(12):
        table.update(0, np.array([0]), np.array([1.0]), 0.0)
    table.update(1, np.array([0]), np.array([9.0]), 0.0)          # one lucky draw
    assert table.q[1, 0] == pytest.approx(9.0)
    pooled = (12 * 1.0 + 9.0) / 13
    assert table.values(1, np.array([0]))[0] == pytest.approx((9.0 + 4 * pooled) / 5)
    assert table.values(2, np.array([0]))[0] == pytest.approx(pooled)   # never seen
    assert table.values(0, np.array([0]))[0] == pytest.approx((12 + 4 * pooled) / 16)


#: Bait and switch: action 0 ("bait") earns 1.0 at once and the user churns; action 1
#: earns 0.4 and the user comes back, up to HORIZON visits. Myopic takes the bait at once.
HORIZON = 8


def bait_step(t: int, action: int) -> tuple[float, int | None]:
    if action == 0:
        return 1.0, None
    return 0.4, (t + 1 if t + 1 < HORIZON else None)


def episode_return(policy: np.ndarray) -> float:
    total, t = 0.0, 0
    while t is not None:
        reward, t = bait_step(t, int(policy[t]))
        total += reward
    return total


def run_bait(table: QTable, rng: np.random.Generator, episodes: int = 1000) -> None:
    """Epsilon-greedy episodes on the bait MDP, each acting on its own table."""
    for episode in range(episodes):
        epsilon = max(0.1, 1.0 - episode / 500)
        t: int | None = 0
        while t is not None:
            greedy = int(table.q[t].argmax())
            action = int(rng.integers(2)) if rng.random() < epsilon else greedy
            reward, nxt = bait_step(t, action)
            value = 0.0 if nxt is None else table.list_value(nxt, np.array([0, 1]))
            table.update(t, np.array([action]), np.array([reward]), value)
            t = nxt


def test_learning_beats_the_myopic_policy_when_the_long_term_differs() -> None:
    table = QTable(HORIZON, 2, np.ones(1), gamma=0.95, learning_rate=0.2)
    immediate = QTable(HORIZON, 2, np.ones(1), gamma=0.0, learning_rate=0.2)
    run_bait(table, np.random.default_rng(1))
    run_bait(immediate, np.random.default_rng(1))
    learned = table.q.argmax(axis=1)
    myopic = immediate.q.argmax(axis=1)
    assert myopic[0] == 0                            # the bait pays more at once
    assert episode_return(myopic) == 1.0
    # the optimum stays until the last visit and takes the bait there: 7 x 0.4 + 1.0
    optimal = np.r_[np.ones(HORIZON - 1, dtype=int), 0]
    np.testing.assert_array_equal(learned, optimal)
    assert episode_return(learned) == pytest.approx(0.4 * (HORIZON - 1) + 1.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gamma": 1.0}, "gamma"), ({"learning_rate": 0.0}, "learning_rate"),
    ({"weights": np.array([1.0, -1.0])}, "weights"), ({"shrinkage": -1.0}, "shrinkage")])
def test_bad_table_settings_are_named(kwargs: dict, message: str) -> None:
    args = {"n_states": 2, "n_actions": 2, "weights": np.ones(1), "gamma": 0.9,
            "learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        QTable(**args)


def test_state_round_trip() -> None:
    table = QTable(2, 2, np.array([1.0, 0.5]), gamma=0.7, learning_rate=0.2, shrinkage=3.0)
    table.update(1, np.array([0, 1]), np.array([1.0, 2.0]), 3.0)
    again = QTable.from_state(table.state())
    assert again.shrinkage == 3.0
    np.testing.assert_array_equal(again.q, table.q)
    np.testing.assert_array_equal(again.mass, table.mass)
    np.testing.assert_array_equal(again.reward, table.reward)
    np.testing.assert_array_equal(again.future, table.future)
    assert (again.gamma, again.learning_rate) == (0.7, 0.2)
