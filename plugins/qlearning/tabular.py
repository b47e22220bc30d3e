"""Tabular Q-learning (Watkins & Dayan 1992) with a list as the action.

A list of ``k`` items is too large an action for a table, so its value is decomposed
over positions: ``Q(s, list) = sum_p w_p Q(s, a_p)``, with ``w_p`` the chance that
position ``p`` is looked at (``1 / p**position_bias``, the simulator's examination
model) and ``a_p`` the action class of the item there (which counts the same-leaf
items above it). The greedy list (:func:`.policy.build_list`) takes, position by
position, the item with the best ``Q`` given the items above it, and the target of one
shown list is Watkins's ``r + gamma * max_list' Q(s', list')``.

The table keeps ``Q = R + F`` in two parts, because they are learned best in two ways:

* ``R(s, a)``, the item's own reward as if it had been looked at: each position's
  ``r_p / w_p``, averaged with weight ``w_p**2`` (the least-squares fit of
  ``w_p R = r_p``), so an item shown low, whose outcome says little, moves its cell
  little. A cell with examination mass ``m`` (the sum of its ``w_p**2``) moves
  ``w_p**2 / min(m, 1 / learning_rate)`` of the way: an exact mean of its first
  rewards, then a constant rate.
* ``F(s, a)``, the item's share of the discounted future ``gamma max_list' Q(s',
  list')``. The future belongs to the whole list (a user bored by a one-leaf list leaves
  whichever item was on top), so it is one list-level error
  ``gamma V' - sum_p w_p F(s, a_p)``, shared by normalised least mean squares
  (``F(s, a_p) += learning_rate * w_p * error / sum(w**2)``): an action's share follows
  how lists holding it fare against lists that do not, controlling for the other items.
  An earlier version split ``gamma V'`` equally over the positions; the noise of the
  future then swamped the items' own rewards and it lost to the myopic policy (docs).

With one position (``w = [1]``) this is Watkins's update with step
``max(learning_rate, 1 / visits)`` on the reward part and ``learning_rate`` on the
future part; on a deterministic MDP both settle on ``Q*`` (tested on a hand-made one).

Rewards are heavy-tailed (a purchase pays the item's price) and a state sees some
actions rarely, so a cell's mean is noisy; :meth:`QTable.values` shrinks it towards the
action's mean over all states, by ``shrinkage`` units of examination mass
(``(m Q(s, a) + c Qbar(a)) / (m + c)``, empirical-Bayes style pooling). ``shrinkage = 0``
reads the raw table (what the convergence tests check).
"""

from __future__ import annotations

import numpy as np


class QTable:
    """Q(s, a) over state and action classes, learned one shown list at a time."""

    def __init__(self, n_states: int, n_actions: int, weights: np.ndarray, gamma: float,
                 learning_rate: float, shrinkage: float = 0.0) -> None:
        if n_states < 1 or n_actions < 1:
            raise ValueError("a Q table needs at least one state and one action")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
        if not 0.0 < learning_rate <= 1.0:
            raise ValueError(f"learning_rate must lie in (0, 1], got {learning_rate}")
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.ndim != 1 or len(self.weights) == 0 or (self.weights <= 0).any():
            raise ValueError("weights must be positive position weights, one per slot")
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
        self.shrinkage = float(shrinkage)
        self.gamma = float(gamma)
        self.learning_rate = float(learning_rate)
        self.q = np.zeros((n_states, n_actions), dtype=np.float64)
        #: Q = reward + future: an item's own expected reward (as if examined), and its
        #: share of the discounted value of the next state
        self.reward = np.zeros((n_states, n_actions), dtype=np.float64)
        self.future = np.zeros((n_states, n_actions), dtype=np.float64)
        #: examination mass of each cell: the sum of w_p**2 over its updates
        self.mass = np.zeros((n_states, n_actions), dtype=np.float64)

    def values(self, state: int, actions: np.ndarray) -> np.ndarray:
        """Q(s, a) of each action, shrunk towards the action's mean over states."""
        actions = np.asarray(actions, dtype=np.int64)
        q = self.q[state, actions]
        if self.shrinkage <= 0:
            return q
        mass = self.mass[:, actions]
        total = mass.sum(axis=0)
        pooled = np.divide((self.q[:, actions] * mass).sum(axis=0), total,
                           out=np.zeros(len(actions)), where=total > 0)
        own = self.mass[state, actions]
        return (own * q + self.shrinkage * pooled) / (own + self.shrinkage)

    def list_value(self, state: int, actions: np.ndarray) -> float:
        """``max_list Q(s, list)`` over lists drawn from items of ``actions`` classes
        (one entry per candidate item): the best values on the best positions."""
        if len(actions) == 0:
            return 0.0
        values = np.sort(self.values(state, actions))[::-1]
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
        # the future: one list-level error, shared by least mean squares (normalised):
        # an action's share follows how lists holding it fare against the others
        future_error = self.gamma * float(next_value) - w @ self.future[state, actions]
        np.add.at(self.future, (state, actions),
                  self.learning_rate * w * future_error / (w @ w))
        # the present: each item's own reward, an examination-weighted running mean
        for p in range(k):
            a = actions[p]
            self.mass[state, a] += w[p] ** 2
            step = w[p] ** 2 / min(self.mass[state, a], 1.0 / self.learning_rate)
            self.reward[state, a] += step * (rewards[p] / w[p] - self.reward[state, a])
        self.q[state, actions] = self.reward[state, actions] + self.future[state, actions]

    def state(self) -> dict[str, np.ndarray]:
        return {"q": self.q, "reward": self.reward, "future": self.future,
                "mass": self.mass, "weights": self.weights,
                "hyper": np.array([self.gamma, self.learning_rate, self.shrinkage])}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> QTable:
        q = np.asarray(state["q"], dtype=np.float64)
        gamma, rate, shrinkage = (float(x) for x in state["hyper"])
        table = cls(q.shape[0], q.shape[1], state["weights"], gamma, rate, shrinkage)
        table.q = q.copy()
        table.reward = np.asarray(state["reward"], dtype=np.float64).copy()
        table.future = np.asarray(state["future"], dtype=np.float64).copy()
        table.mass = np.asarray(state["mass"], dtype=np.float64).copy()
        return table
