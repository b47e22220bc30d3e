"""Baseline policies for the shop simulator, each reporting its propensities.

A policy picks ``k`` distinct items from ``obs.candidates`` and says, per position, the
probability that it put that item at that position (the marginal over its own
randomness), so that logs of its impressions can be used for off-policy evaluation.
Only :class:`OraclePolicy` reads the simulator's truth; the others see observations,
logged popularity and the feedback they are given.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from recsdk.simulate.simulator import Observation, Outcome, ShopSimulator


@runtime_checkable
class Policy(Protocol):
    def select(self, obs: Observation, k: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """k distinct item indices from obs.candidates and, per position, the propensity:
        the probability the policy put that item at that position (1.0 for a
        deterministic policy)."""

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None: ...


def _check_k(obs: Observation, k: int) -> None:
    if k < 1 or k > len(obs.candidates):
        raise ValueError(f"k must lie in [1, {len(obs.candidates)}] (the candidates), got {k}")


def top_k_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first, ties to the earlier position: the
    first k of a stable descending sort, in O(n) plus a sort of k."""
    n = len(scores)
    if k >= n:
        return np.argsort(-scores, kind="stable")
    kth = np.partition(scores, n - k)[n - k]  # the k-th highest score
    above = np.flatnonzero(scores > kth)
    tied = np.flatnonzero(scores == kth)[:k - len(above)]
    top = np.concatenate([above, tied])
    return top[np.lexsort((top, -scores[top]))]


def _top_k(candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The k best candidates, best first; ties go to the earlier candidate."""
    return candidates[top_k_positions(scores, k)]


class RandomPolicy:
    """Uniform over ordered k-subsets of the candidates: every item has probability
    1/N of being at any given position."""

    def select(self, obs: Observation, k: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        _check_k(obs, k)
        slate = rng.choice(obs.candidates, size=k, replace=False)
        return slate, np.full(k, 1.0 / len(obs.candidates))

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        return None


class PopularityPolicy:
    """The k candidates most often seen in the shop's logs, the same for everyone."""

    def __init__(self, sim: ShopSimulator) -> None:
        self.popularity = np.asarray(sim.item_popularity, float)

    def select(self, obs: Observation, k: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        _check_k(obs, k)
        return _top_k(obs.candidates, self.popularity[obs.candidates], k), np.ones(k)

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        return None


class ClickEstimate:
    """A click-through estimate per (context, item), learned from feedback.

    The context is the user's top observed leaf (``obs.interest``; one more context for
    users without history) when ``context="leaf"``, or one global context ("item").
    Exposure counts each impression by its examination probability 1/p**position_bias
    (the position-based model the shop is known to follow), so that items shown low are
    not blamed for being unseen. The estimate is a Beta-Bernoulli posterior mean,
    ``(clicks + s * prior) / (exposure + s)``. The prior is ``prior_ctr`` everywhere, or,
    with ``informed=True``, a click model from logged data: ``prior_ctr`` scaled by the
    user's observed interest in the item's leaf and the item's logged popularity within
    its leaf (both relative to their maximum).
    """

    def __init__(self, sim: ShopSimulator, context: str = "leaf", prior_ctr: float = 0.1,
                 prior_strength: float = 2.0, informed: bool = False,
                 position_bias: float | None = None) -> None:
        if context not in ("leaf", "item"):
            raise ValueError(f'context must be "leaf" or "item", got {context!r}')
        if not 0.0 < prior_ctr < 1.0 or prior_strength <= 0:
            raise ValueError(f"prior_ctr must lie in (0, 1) and prior_strength be positive, "
                             f"got {prior_ctr} and {prior_strength}")
        self.context = context
        self.prior_ctr, self.prior_strength, self.informed = prior_ctr, prior_strength, informed
        self.position_bias = sim.params.position_bias if position_bias is None else position_bias
        self.item_leaf = np.asarray(sim.item_leaf)
        self.n_leaves = sim.n_leaves
        n_contexts = sim.n_leaves + 1 if context == "leaf" else 1
        self.clicks = np.zeros((n_contexts, sim.n_items))
        self.exposure = np.zeros((n_contexts, sim.n_items))
        pop = np.asarray(sim.item_popularity, float)
        leaf_max = np.zeros(sim.n_leaves)
        np.maximum.at(leaf_max, self.item_leaf, pop)
        self.relative_popularity = np.sqrt(pop / np.where(leaf_max > 0, leaf_max, 1.0)[
            self.item_leaf]) if informed else None

    def context_of(self, obs: Observation) -> int:
        if self.context == "item":
            return 0
        return int(np.argmax(obs.interest)) if obs.interest.sum() > 0 else self.n_leaves

    def prior(self, obs: Observation, items: np.ndarray) -> np.ndarray:
        if not self.informed:
            return np.full(len(items), self.prior_ctr)
        smooth = 1.0 / self.n_leaves
        leaf = (obs.interest[self.item_leaf[items]] + smooth) / (obs.interest.max() + smooth)
        return self.prior_ctr * leaf * self.relative_popularity[items]

    def predict(self, obs: Observation, items: np.ndarray) -> np.ndarray:
        c = self.context_of(obs)
        s = self.prior_strength
        return ((self.clicks[c, items] + s * self.prior(obs, items))
                / (self.exposure[c, items] + s))

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        c = self.context_of(obs)
        slate = np.asarray(slate)
        exam = np.arange(1, len(slate) + 1, dtype=float) ** -self.position_bias
        self.clicks[c, slate] += outcome.clicks
        self.exposure[c, slate] += exam


class EpsilonGreedyPolicy:
    """Slot by slot: with probability ``epsilon`` a uniformly random remaining candidate,
    otherwise the remaining candidate with the highest estimated click probability
    (:class:`ClickEstimate`, updated online from every outcome). Propensities are the
    exact marginals (:func:`epsilon_greedy_propensity`)."""

    def __init__(self, sim: ShopSimulator, epsilon: float = 0.1, context: str = "leaf",
                 prior_ctr: float = 0.1, prior_strength: float = 2.0,
                 informed: bool = False) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)
        self.estimate = ClickEstimate(sim, context, prior_ctr, prior_strength, informed)

    def select(self, obs: Observation, k: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        _check_k(obs, k)
        candidates = obs.candidates
        n = len(candidates)
        # only the k best matter to the greedy picks: a better free one always remains
        best = top_k_positions(self.estimate.predict(obs, candidates), k)
        if self.epsilon == 0.0:
            return candidates[best], np.ones(k)
        rank_of = {int(b): r for r, b in enumerate(best)}
        taken: set[int] = set()
        chosen = np.empty(k, dtype=np.int64)
        ranks = np.empty(k, dtype=np.int64)
        explore = rng.random(k) < self.epsilon
        top = 0
        for slot in range(k):
            if explore[slot]:  # uniform over the free candidates, by rejection (few taken)
                pos = int(rng.integers(n))
                while pos in taken:
                    pos = int(rng.integers(n))
            else:
                while int(best[top]) in taken:
                    top += 1
                pos = int(best[top])
            taken.add(pos)
            chosen[slot] = pos
            ranks[slot] = rank_of.get(pos, k)
        table = epsilon_greedy_table(n, k, self.epsilon)
        return candidates[chosen], table[ranks, np.arange(k)]

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        self.estimate.update(obs, slate, outcome)


class GreedyPolicy(EpsilonGreedyPolicy):
    """:class:`EpsilonGreedyPolicy` with ``epsilon=0``: always the best estimate."""

    def __init__(self, sim: ShopSimulator, context: str = "leaf", prior_ctr: float = 0.1,
                 prior_strength: float = 2.0, informed: bool = False) -> None:
        super().__init__(sim, 0.0, context, prior_ctr, prior_strength, informed)


class MyopicPolicy(GreedyPolicy):
    """The highest predicted click now: a click model from logged data (the user's
    observed leaf interest times the item's logged popularity in its leaf) refined online
    per (top leaf, item) from feedback; it never looks past the next click."""

    def __init__(self, sim: ShopSimulator, prior_ctr: float = 0.1,
                 prior_strength: float = 5.0) -> None:
        super().__init__(sim, "leaf", prior_ctr, prior_strength, informed=True)


class OraclePolicy:
    """The true expected immediate reward (``sim.item_rewards``), best first; with
    ``max_per_leaf`` at most that many items of one leaf per list (a diversified oracle,
    which the response model rewards over a user's lifetime). For bounds and regret."""

    def __init__(self, sim: ShopSimulator, max_per_leaf: int | None = None) -> None:
        if max_per_leaf is not None and max_per_leaf < 1:
            raise ValueError(f"max_per_leaf must be a positive integer or None, got "
                             f"{max_per_leaf}")
        self.sim = sim
        self.max_per_leaf = max_per_leaf

    def select(self, obs: Observation, k: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        _check_k(obs, k)
        candidates = obs.candidates
        rewards = self.sim.item_rewards(obs, candidates)
        if self.max_per_leaf is None:
            return _top_k(candidates, rewards, k), np.ones(k)
        order = candidates[np.argsort(-rewards, kind="stable")]
        leaf = self.sim.item_leaf[order]
        # rank of each item within its leaf, in reward order
        first = np.argsort(leaf, kind="stable")
        sorted_leaf = leaf[first]
        start = np.r_[0, np.flatnonzero(sorted_leaf[1:] != sorted_leaf[:-1]) + 1]
        counts = np.diff(np.r_[start, len(leaf)])
        within = np.empty(len(leaf), dtype=np.int64)
        within[first] = np.arange(len(leaf)) - np.repeat(start, counts)
        chosen = order[within < self.max_per_leaf][:k]
        if len(chosen) < k:  # too few leaves: fill with the best of the rest
            rest = order[within >= self.max_per_leaf][:k - len(chosen)]
            chosen = np.concatenate([chosen, rest])
        return chosen, np.ones(k)

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        return None


@lru_cache(maxsize=256)
def epsilon_greedy_table(n: int, k: int, epsilon: float) -> np.ndarray:
    """``table[r, p]``: probability that slot-by-slot epsilon-greedy over ``n`` candidates
    puts the item of greedy rank ``r`` (0-based) at position ``p`` (0-based); row ``k``
    holds the value for every rank >= k (such an item can only be reached by exploring).

    Exact, by a Markov chain per rank: the state is how many better-ranked items are still
    free (``a``). At a slot with ``m`` free items the item is taken with probability
    ``(1-eps)[a=0] + eps/m``; otherwise ``a`` drops by one with probability
    ``(1-eps)[a>0] + eps*a/m`` (the greedy pick or a random pick above it) and stays with
    ``eps*(m-1-a)/m``.
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    table = np.zeros((k + 1, k))
    states = np.zeros((k, k))  # states[r, a]: P(item of rank r free and a better free)
    states[np.arange(k), np.arange(k)] = 1.0
    a = np.arange(k, dtype=float)
    survive_far = 1.0
    for p in range(k):
        m = n - p
        take = (1 - epsilon) * (a == 0) + epsilon / m
        table[:k, p] = states @ take
        table[k, p] = survive_far * epsilon / m
        survive_far *= 1 - epsilon / m
        down = (1 - epsilon) * (a > 0) + epsilon * a / m
        stay = epsilon * np.maximum(m - 1 - a, 0) / m
        moved = np.zeros_like(states)
        moved[:, :-1] = states[:, 1:] * down[1:]
        states = states * stay + moved
    table.setflags(write=False)
    return table
