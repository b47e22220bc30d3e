"""The Q policy in the simulator: choosing lists, learning from outcomes, training.

:class:`QPolicy` follows the simulator's policy protocol (``select`` and ``update``),
so the benchmark runs it like any other policy. It ranks a candidate pool by a
learner's ``Q(s, a)``: in training the pool is the ``pool`` best items by
:meth:`ShopEncoder.prior` (the stand-in for the upstream plugins that retrieve
candidates when the plugin serves), and exploration is epsilon-greedy per position.

A learner (:class:`TabularLearner` here, :class:`~.model.DQNLearner` for the DQN) has
two methods: ``q(state, items)`` and ``learn(state, slate, rewards, next_state,
next_items)`` (``next_state`` None when the episode ended).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from recsdk_plugins.qlearning.features import N_ACTIONS, N_STATES, ShopEncoder, UserState
from recsdk_plugins.qlearning.tabular import QTable


class Learner(Protocol):
    def q(self, state: UserState, items: np.ndarray) -> np.ndarray: ...

    def learn(self, state: UserState, slate: np.ndarray, rewards: np.ndarray,
              next_state: UserState | None, next_items: np.ndarray | None) -> None: ...


def position_weights(k: int, position_bias: float) -> np.ndarray:
    """The examination chance of positions 1..k: ``1 / p**position_bias``."""
    return 1.0 / np.arange(1, k + 1, dtype=np.float64) ** float(position_bias)


class TabularLearner:
    """A :class:`QTable` over the encoder's state and action classes."""

    def __init__(self, encoder: ShopEncoder, table: QTable) -> None:
        self.encoder, self.table = encoder, table

    @classmethod
    def new(cls, encoder: ShopEncoder, weights: np.ndarray, gamma: float,
            learning_rate: float) -> TabularLearner:
        return cls(encoder, QTable(N_STATES, N_ACTIONS, weights, gamma, learning_rate))

    def q(self, state: UserState, items: np.ndarray) -> np.ndarray:
        s = self.encoder.state_index(state)
        return self.table.q[s, self.encoder.action_index(state, items)]

    def learn(self, state: UserState, slate: np.ndarray, rewards: np.ndarray,
              next_state: UserState | None, next_items: np.ndarray | None) -> None:
        enc = self.encoder
        next_value = 0.0
        if next_state is not None and next_items is not None:
            next_value = self.table.list_value(enc.state_index(next_state),
                                               enc.action_index(next_state, next_items))
        self.table.update(enc.state_index(state), enc.action_index(state, slate), rewards,
                          next_value)


def greedy_order(q: np.ndarray, tie_break: np.ndarray) -> np.ndarray:
    """Positions of ``q`` best first; equal Q values in ``tie_break`` order (higher
    first), then by position."""
    return np.lexsort((np.arange(len(q)), -tie_break, -q))


@dataclass
class QPolicy:
    """Lists ranked by a learner's Q values; epsilon-greedy while it trains."""

    encoder: ShopEncoder
    learner: Learner
    pool: int = 100
    epsilon: float = 0.0
    #: ``reward_of(items) -> (click values, purchase values)``, set by :func:`train_policy`
    reward_of: Any = None
    _visit_start: dict[tuple[int, int], int] = field(default_factory=dict)

    def state_of(self, obs: Any) -> UserState:
        """The observation's state; the first list of a visit fixes its start."""
        key = (int(obs.user), int(obs.visit))
        start = self._visit_start.setdefault(key, len(obs.history))
        if obs.step == 0:
            self._visit_start[key] = start = len(obs.history)
        return UserState.from_observation(obs, self.encoder.item_leaf, start)

    def candidates(self, state: UserState, obs: Any) -> np.ndarray:
        """The pool: the ``pool`` candidates the upstream stand-in ranks highest."""
        items = np.asarray(obs.candidates, dtype=np.int64)
        if len(items) <= self.pool:
            return items
        prior = self.encoder.prior(state, items)
        return items[np.argpartition(-prior, self.pool - 1)[:self.pool]]

    def select(self, obs: Any, k: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        """``k`` items and, per position, the probability of that item there given the
        items above it (1.0 for the greedy policy)."""
        state = self.state_of(obs)
        items = self.candidates(state, obs)
        order = greedy_order(self.learner.q(state, items), self.encoder.prior(state, items))
        ranked = list(items[order])
        k = min(k, len(ranked))
        if self.epsilon <= 0:
            return np.asarray(ranked[:k], dtype=np.int64), np.ones(k)
        slate, propensity = [], []
        for _ in range(k):
            n = len(ranked)
            pick = int(rng.integers(n)) if rng.random() < self.epsilon else 0
            propensity.append(self.epsilon / n + (1 - self.epsilon) * (pick == 0))
            slate.append(ranked.pop(pick))
        return np.asarray(slate, dtype=np.int64), np.asarray(propensity)

    def update(self, obs: Any, slate: np.ndarray, outcome: Any) -> None:
        state = self.state_of(obs)
        rewards = item_rewards(outcome, slate, self.reward_of)
        nxt = outcome.observation
        if outcome.churned or nxt is None:
            self.learner.learn(state, slate, rewards, None, None)
            return
        next_state = self.state_of(nxt)
        self.learner.learn(state, slate, rewards, next_state, self.candidates(next_state, nxt))


def item_rewards(outcome: Any, slate: np.ndarray, reward_of: Any) -> np.ndarray:
    """Each position's share of the list's reward: its click and purchase rewards
    (``reward_of(items) -> (click, purchase)`` values), rescaled so that the shares add
    up to the outcome's reward."""
    clicks = np.asarray(outcome.clicks[:len(slate)], dtype=float)
    bought = np.asarray(outcome.purchases[:len(slate)], dtype=float)
    click_value, purchase_value = reward_of(np.asarray(slate, dtype=np.int64))
    per_item = clicks * click_value + bought * purchase_value
    total = float(per_item.sum())
    if total > 0 and np.isfinite(outcome.reward):
        per_item *= float(outcome.reward) / total
    return per_item


def simulator_rewards(sim: Any) -> Any:
    """``reward_of`` for a simulator: click value, and the purchase value (the item's
    price, or the constant the simulator's parameters set)."""
    params = sim.params
    click = float(params.click_value)
    price = np.asarray(sim.item_price, dtype=np.float64)

    def reward_of(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if params.purchase_value == "price":
            return np.full(len(items), click), np.nan_to_num(price[items])
        return np.full(len(items), click), np.full(len(items), float(params.purchase_value))

    return reward_of


def epsilon_at(episode: int, episodes: int, start: float, end: float,
               decay_share: float) -> float:
    """Linear decay from ``start`` to ``end`` over the first ``decay_share`` of the
    episodes, then ``end``."""
    horizon = max(int(episodes * decay_share), 1)
    return end + (start - end) * max(0.0, 1.0 - episode / horizon)


@dataclass
class TrainingLog:
    """What one training run did in the simulator."""

    episodes: int = 0
    steps: int = 0
    seconds: float = 0.0
    #: mean reward per episode over consecutive blocks of episodes (learning curve)
    curve: list[float] = field(default_factory=list)


def train_policy(sim: Any, policy: QPolicy, episodes: int, seed: int,
                 epsilon: tuple[float, float, float] = (1.0, 0.05, 0.5),
                 progress: bool = False, name: str = "qlearning") -> TrainingLog:
    """Run ``episodes`` simulated users through ``policy`` with a decaying epsilon
    (start, end, share of episodes to decay over), learning after every list."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng([seed, 1])
    policy.reward_of = simulator_rewards(sim)
    k = int(sim.params.slate_size)
    log = TrainingLog()
    start = time.perf_counter()
    block = max(episodes // 20, 1)
    running = 0.0
    for episode in tqdm(range(episodes), desc=name, disable=not progress, unit="user"):
        policy.epsilon = epsilon_at(episode, episodes, *epsilon)
        obs = sim.reset()
        policy._visit_start.clear()
        while obs is not None:
            slate, _ = policy.select(obs, k, rng)
            outcome = sim.step(slate)
            policy.update(obs, slate, outcome)
            running += float(outcome.reward)
            log.steps += 1
            obs = None if outcome.churned else outcome.observation
        log.episodes += 1
        if log.episodes % block == 0:
            log.curve.append(running / block)
            running = 0.0
    policy.epsilon = 0.0
    log.seconds = time.perf_counter() - start
    return log
