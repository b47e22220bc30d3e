"""Tabular Q-learning (Watkins & Dayan 1992) with a list as the action.

A list of ``k`` items is too large an action for a table, so its value is decomposed
over positions: ``Q(s, list) = sum_p w_p Q(s, a_p)``, with ``w_p`` the chance that
position ``p`` is looked at (``1 / p**position_bias``, the simulator's examination
model) and ``a_p`` the action class of the item there. The greedy list sorts the
candidates by ``Q(s, a)`` (by the rearrangement inequality this maximises the sum), and
the target of one shown list is Watkins's ``r + gamma * max_list' Q(s', list')``.

Each position gets its own share of that target: its item's own reward ``r_p`` plus
``w_p / sum(w)`` of the discounted next value, so that the shares add up to the list's
target; ``Q(s, a_p)`` then moves by ``alpha * w_p * (share_p - w_p Q(s, a_p))``, the
gradient step on the squared error of the decomposed value. With one position
(``w = [1]``) this is exactly Watkins's update ``Q += alpha (r + gamma max Q' - Q)``.

The step size of a cell is ``max(learning_rate, 1 / visits)``: a running mean of its
first targets, then a constant rate that keeps tracking the improving policy.
"""

from __future__ import annotations

import numpy as np


class QTable:
    """Q(s, a) over state and action classes, learned one shown list at a time."""

    def __init__(self, n_states: int, n_actions: int, weights: np.ndarray, gamma: float,
                 learning_rate: float) -> None:
        if n_states < 1 or n_actions < 1:
            raise ValueError("a Q table needs at least one state and one action")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
        if not 0.0 < learning_rate <= 1.0:
            raise ValueError(f"learning_rate must lie in (0, 1], got {learning_rate}")
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.ndim != 1 or len(self.weights) == 0 or (self.weights <= 0).any():
            raise ValueError("weights must be positive position weights, one per slot")
        self.gamma = float(gamma)
        self.learning_rate = float(learning_rate)
        self.q = np.zeros((n_states, n_actions), dtype=np.float64)
        self.visits = np.zeros((n_states, n_actions), dtype=np.int64)

    def list_value(self, state: int, actions: np.ndarray) -> float:
        """``max_list Q(s, list)`` over lists drawn from items of ``actions`` classes
        (one entry per candidate item): the best values on the best positions."""
        if len(actions) == 0:
            return 0.0
        values = np.sort(self.q[state, np.asarray(actions, dtype=np.int64)])[::-1]
        k = min(len(values), len(self.weights))
        return float(self.weights[:k] @ values[:k])

    def update(self, state: int, actions: np.ndarray, rewards: np.ndarray,
               next_value: float) -> None:
        """One list shown in ``state``: ``actions[p]`` the class of the item at position
        ``p``, ``rewards[p]`` what it earned, ``next_value`` the next state's
        ``max_list Q`` (0 when the episode ended)."""
        actions = np.asarray(actions, dtype=np.int64)
        rewards = np.asarray(rewards, dtype=np.float64)
        k = len(actions)
        if len(rewards) != k or k > len(self.weights):
            raise ValueError(f"{k} actions, {len(rewards)} rewards and "
                             f"{len(self.weights)} position weights do not fit together")
        w = self.weights[:k]
        shares = rewards + w / w.sum() * self.gamma * float(next_value)
        errors = shares - w * self.q[state, actions]
        np.add.at(self.visits, (state, actions), 1)
        steps = np.maximum(self.learning_rate, 1.0 / self.visits[state, actions])
        np.add.at(self.q, (state, actions), steps * w * errors)

    def state(self) -> dict[str, np.ndarray]:
        return {"q": self.q, "visits": self.visits, "weights": self.weights,
                "hyper": np.array([self.gamma, self.learning_rate])}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> QTable:
        q = np.asarray(state["q"], dtype=np.float64)
        gamma, rate = (float(x) for x in state["hyper"])
        table = cls(q.shape[0], q.shape[1], state["weights"], gamma, rate)
        table.q = q.copy()
        table.visits = np.asarray(state["visits"], dtype=np.int64).copy()
        return table
