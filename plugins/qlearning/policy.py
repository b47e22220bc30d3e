"""The Q policy in the simulator: choosing lists, learning from outcomes, training.

:class:`QPolicy` follows the simulator's policy protocol (``select`` and ``update``),
so the benchmark runs it like any other policy. It ranks a candidate pool by a
learner's ``Q(s, a)``: in training the pool is the ``pool`` best items by
:meth:`ShopEncoder.prior` (the stand-in for the upstream plugins that retrieve
candidates when the plugin serves), and exploration is epsilon-greedy per position.

A learner (:class:`TabularLearner` here, :class:`~.model.DQNLearner` for the DQN) has
two methods (:class:`Learner`): ``q(state, items, above)`` and ``learn(state, slate,
rewards, next_state, next_slate)``; the target's ``max_list' Q(s', list')`` is the value
of the list :func:`build_list` would show in the next state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from recsdk_plugins.qlearning.features import N_ACTIONS, N_STATES, ShopEncoder, UserState
from recsdk_plugins.qlearning.tabular import QTable

#: blocks of episodes in a training run's learning curve
CURVE_BLOCKS = 20


class Learner(Protocol):
    def q(self, state: UserState, items: np.ndarray, above: np.ndarray) -> np.ndarray:
        """Q of each item placed below items whose leaves repeat its own ``above`` times."""

    def learn(self, state: UserState, slate: np.ndarray, rewards: np.ndarray,
              next_state: UserState | None, next_slate: np.ndarray | None) -> None:
        """One shown list, its per-position rewards, and the next state with the greedy
        list there (None when the episode ended)."""


class TabularLearner:
    """A :class:`QTable` over the encoder's state and action classes."""

    def __init__(self, encoder: ShopEncoder, table: QTable) -> None:
        self.encoder, self.table = encoder, table

    @classmethod
    def new(cls, encoder: ShopEncoder, weights: np.ndarray, gamma: float,
            learning_rate: float, shrinkage: float) -> TabularLearner:
        return cls(encoder, QTable(N_STATES, N_ACTIONS, weights, gamma, learning_rate,
                                   shrinkage))

    def q(self, state: UserState, items: np.ndarray, above: np.ndarray) -> np.ndarray:
        s = self.encoder.state_index(state)
        return self.table.values(s, self.encoder.action_index(state, items, above))

    def _list(self, state: UserState, slate: np.ndarray) -> tuple[int, np.ndarray]:
        enc = self.encoder
        return enc.state_index(state), enc.action_index(state, slate, enc.list_above(slate))

    def learn(self, state: UserState, slate: np.ndarray, rewards: np.ndarray,
              next_state: UserState | None, next_slate: np.ndarray | None) -> None:
        next_value = 0.0
        if next_state is not None and next_slate is not None and len(next_slate):
            s, actions = self._list(next_state, next_slate)
            next_value = float(self.table.weights[:len(actions)]
                               @ self.table.values(s, actions))
        s, actions = self._list(state, slate)
        self.table.update(s, actions, rewards, next_value)


def _minmax(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros(len(values))


def build_list(learner: Learner, encoder: ShopEncoder, state: UserState, items: np.ndarray,
               upstream: np.ndarray, k: int, *, blend: float = 0.0, epsilon: float = 0.0,
               rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``k`` of ``items`` chosen position by position, and each one's propensity.

    Each position takes the remaining item with the best ``Q`` given the items above
    it (min-max scaled over the remaining items and mixed with ``blend`` of the
    ``upstream`` score, itself in [0, 1]; ties by ``upstream``, then by order); with
    probability ``epsilon`` it takes a uniformly random remaining item instead. The
    propensity is the probability of that item at that position given the items
    above it (1.0 when ``epsilon`` is 0).
    """
    items = np.asarray(items, dtype=np.int64)
    upstream = np.asarray(upstream, dtype=np.float64)
    left = np.ones(len(items), dtype=bool)
    counts = np.zeros(encoder.n_leaves, dtype=np.int64)
    leaf = encoder.item_leaf[items]
    chosen: list[int] = []
    propensity: list[float] = []
    for _ in range(min(k, len(items))):
        idx = np.flatnonzero(left)
        q = learner.q(state, items[idx], counts[leaf[idx]])
        key = (1.0 - blend) * _minmax(q) + blend * upstream[idx] if blend > 0 else q
        best = int(np.lexsort((idx, -upstream[idx], -key))[0])
        pick = best
        if epsilon > 0 and rng is not None and rng.random() < epsilon:
            pick = int(rng.integers(len(idx)))
        propensity.append(epsilon / len(idx) + (1.0 - epsilon) * (pick == best))
        chosen.append(int(idx[pick]))
        left[idx[pick]] = False
        counts[leaf[idx[pick]]] += 1
    return items[np.asarray(chosen, dtype=np.int64)], np.asarray(propensity)


def order_pool(learner: Learner, encoder: ShopEncoder, state: UserState, items: np.ndarray,
               upstream: np.ndarray, k: int, blend: float = 0.0) -> np.ndarray:
    """A permutation of ``items`` (positions into it): the greedy list of ``k`` first
    (:func:`build_list`), then the others by Q below that list, ties by ``upstream``."""
    items = np.asarray(items, dtype=np.int64)
    upstream = np.asarray(upstream, dtype=np.float64)
    head, _ = build_list(learner, encoder, state, items, upstream, k, blend=blend)
    position = {int(item): p for p, item in enumerate(items)}
    first = np.array([position[int(i)] for i in head], dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(items)), first)
    if len(rest) == 0:
        return first
    counts = np.bincount(encoder.item_leaf[head], minlength=encoder.n_leaves)
    q = learner.q(state, items[rest], counts[encoder.item_leaf[items[rest]]])
    key = (1.0 - blend) * _minmax(q) + blend * upstream[rest] if blend > 0 else q
    return np.concatenate([first, rest[np.lexsort((rest, -upstream[rest], -key))]])


@dataclass
class QPolicy:
    """Lists built by a learner's Q values; epsilon-greedy while it trains."""

    encoder: ShopEncoder
    learner: Learner
    pool: int = 100
    epsilon: float = 0.0
    #: ``reward_of(items) -> (click values, purchase values)``, set by :func:`train_policy`
    reward_of: Any = None
    #: (user, visit, history length when the visit began) of the current visit
    _visit: tuple[int, int, int] = (-1, -1, 0)

    def state_of(self, obs: Any) -> UserState:
        """The observation's state; the first list of a visit fixes its start."""
        user, visit, start = self._visit
        if obs.step == 0 or (user, visit) != (int(obs.user), int(obs.visit)):
            start = len(obs.history)
            self._visit = (int(obs.user), int(obs.visit), start)
        return UserState.from_observation(obs, self.encoder.item_leaf, start)

    def candidates(self, state: UserState, obs: Any) -> tuple[np.ndarray, np.ndarray]:
        """The pool (the ``pool`` candidates the upstream stand-in ranks highest) and
        its stand-in upstream score, min-max scaled."""
        items = np.asarray(obs.candidates, dtype=np.int64)
        prior = self.encoder.prior(state, items)
        if len(items) > self.pool:
            keep = np.argpartition(-prior, self.pool - 1)[:self.pool]
            items, prior = items[keep], prior[keep]
        return items, _minmax(prior)

    def select(self, obs: Any, k: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        """``k`` items and, per position, the probability of that item there given the
        items above it (1.0 for the greedy policy)."""
        state = self.state_of(obs)
        items, upstream = self.candidates(state, obs)
        return build_list(self.learner, self.encoder, state, items, upstream, k,
                          epsilon=self.epsilon, rng=rng)

    def update(self, obs: Any, slate: np.ndarray, outcome: Any) -> None:
        state = self.state_of(obs)
        rewards = item_rewards(outcome, slate, self.reward_of)
        nxt = outcome.observation
        if outcome.churned or nxt is None:
            self.learner.learn(state, slate, rewards, None, None)
            return
        next_state = self.state_of(nxt)
        items, upstream = self.candidates(next_state, nxt)
        greedy, _ = build_list(self.learner, self.encoder, next_state, items, upstream,
                               len(slate))
        self.learner.learn(state, slate, rewards, next_state, greedy)


class MatchedPolicy:
    """A trained :class:`QPolicy` acting in another simulator of the same shop (one built
    from the planted truth, say): items and leaves are matched by id, items the policy
    does not know are never shown. It does not learn there (the plugin does not learn
    between training runs either)."""

    def __init__(self, policy: QPolicy, sim: Any) -> None:
        enc = policy.encoder
        self.policy = policy
        self.to_policy = np.array([enc.item_index.get(str(i), -1) for i in sim.item_ids],
                                  dtype=np.int64)
        known = np.flatnonzero(self.to_policy >= 0)
        self.to_sim = np.full(len(enc.item_ids), -1, dtype=np.int64)
        self.to_sim[self.to_policy[known]] = known
        self.leaf = np.array([enc.leaf_index.get(str(c), -1) for c in sim.leaf_ids],
                             dtype=np.int64)
        self.n_leaves = enc.n_leaves

    def translate(self, obs: Any) -> Any:
        """``obs`` in the policy's item and leaf codes."""
        history = self.to_policy[np.asarray(obs.history, dtype=np.int64)]
        candidates = self.to_policy[np.asarray(obs.candidates, dtype=np.int64)]
        interest = np.zeros(self.n_leaves)
        mapped = self.leaf >= 0
        np.add.at(interest, self.leaf[mapped], np.asarray(obs.interest)[mapped])
        return replace(obs, history=history[history >= 0],
                       candidates=candidates[candidates >= 0], interest=interest)

    def select(self, obs: Any, k: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        slate, propensity = self.policy.select(self.translate(obs), k, rng)
        return self.to_sim[slate], propensity

    def update(self, obs: Any, slate: np.ndarray, outcome: Any) -> None:
        return None


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
    # the learning curve: mean reward per user over (up to) twenty equal blocks
    ends = np.linspace(0, episodes, min(CURVE_BLOCKS, episodes) + 1).round().astype(int)
    running = 0.0
    for episode in tqdm(range(episodes), desc=name, disable=not progress, unit="user"):
        policy.epsilon = epsilon_at(episode, episodes, *epsilon)
        obs = sim.reset()
        while obs is not None:
            slate, _ = policy.select(obs, k, rng)
            outcome = sim.step(slate)
            policy.update(obs, slate, outcome)
            running += float(outcome.reward)
            log.steps += 1
            obs = None if outcome.churned else outcome.observation
        log.episodes += 1
        if log.episodes == ends[len(log.curve) + 1]:
            log.curve.append(running / (ends[len(log.curve) + 1] - ends[len(log.curve)]))
            running = 0.0
    policy.epsilon = 0.0
    log.seconds = time.perf_counter() - start
    return log
