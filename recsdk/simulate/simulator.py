"""A shop's users answering shown lists: clicks and purchases with position bias, satiety,
boredom, and a return-or-churn decision after each visit.

The response model (every equation and knob: docs/simulator.md) is built so that the
list with the most expected clicks now is not the best list for a user's lifetime value:
showing one leaf again and again satiates (clicks there fall for a while) and bores (the
user leaves the visit sooner and comes back less often), and purchases of dearer items
in a user's secondary interests are worth more than clicks in the first one.

One episode is one user's life: up to ``horizon_visits`` visits of up to
``lists_per_visit`` lists. State (satiety, boredom, the visit's clicks) belongs to the
episode; every episode starts from the user's logged history. Randomness comes from two
generators seeded by ``seed``: one draws the users that arrive, one the responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from recsdk.simulate.model import ShopTruth, truth_from_dataset, truth_from_shop

if TYPE_CHECKING:
    from recsdk.data.synthetic import SyntheticShop
    from recsdk.dataset import InteractionDataset


@dataclass(frozen=True)
class SimulatorParams:
    """Every knob of the response model; docs/simulator.md gives the equations.

    Logits are on the log-odds scale; ``a`` below is a user's affinity for a leaf (the
    planted preference mixed with ``exploration``), ``L`` the number of leaves.
    """

    slate_size: int = 10            # items per shown list
    lists_per_visit: int = 3        # max lists a user sees in one visit (fewer if they leave)
    horizon_visits: int = 10        # max visits per user (episode ends earlier on churn)
    position_bias: float = 1.0      # examination prob of position p (1-based): 1 / p**this
    click_value: float = 1.0        # reward of a click
    purchase_value: str | float = "price"  # reward of a purchase: item price, or a constant
    # -- clicks and purchases
    exploration: float = 0.1        # a = (1 - exploration) * preference + exploration / L
    click_bias: float = -3.2        # click logit of an item with a * L = 1 and appeal 1
    preference_weight: float = 0.8  # + preference_weight * log(a * L)
    popularity_weight: float = 0.5  # + popularity_weight * log(appeal): Zipf within the leaf
    purchase_bias: float = -2.6     # purchase-given-click logit at the reference price, a * L = 1
    purchase_preference_weight: float = 0.3  # + this * log(a * L)
    price_sensitivity: float = 0.5  # - this * log(price / median price): dearer sells less often
    # -- satiety: exposure, clicks and purchases fill a leaf's and an item's satiety
    satiety_weight: float = 1.0     # click logit - satiety_weight * (leaf satiety + item satiety)
    leaf_exposure_satiety: float = 0.15   # per shown item, times its examination probability
    leaf_click_satiety: float = 0.3
    leaf_purchase_satiety: float = 1.0
    item_exposure_satiety: float = 0.3
    item_click_satiety: float = 1.0
    item_purchase_satiety: float = 4.0
    satiety_decay: float = 0.8      # satiety kept from one list to the next
    satiety_recovery: float = 0.3   # satiety kept from one visit to the next
    # -- boredom: lists off the user's interests, or of one leaf, make the user leave
    leave_bias: float = -2.5        # leave logit after a list, with no boredom and no click
    boredom_weight: float = 1.2     # + boredom_weight * boredom
    repetition_weight: float = 2.0  # boredom gained by a one-leaf list (0 for all-distinct)
    click_relief: float = 0.5       # - click_relief * clicks on this list
    boredom_decay: float = 0.6      # boredom kept from one list to the next
    boredom_recovery: float = 0.5   # boredom kept from one visit to the next
    # -- return or churn after each visit
    return_bias: float = 2.0        # return logit of a visit with no click and no boredom
    satisfaction_weight: float = 1.0  # + this * log1p(clicks + purchase_satisfaction * purchases)
    purchase_satisfaction: float = 2.0
    boredom_churn_weight: float = 0.8  # - this * boredom at the end of the visit

    def __post_init__(self) -> None:
        for name in ("slate_size", "lists_per_visit", "horizon_visits"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("exploration", "satiety_decay", "satiety_recovery", "boredom_decay",
                     "boredom_recovery"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.position_bias < 0:
            raise ValueError(f"position_bias must be >= 0, got {self.position_bias}")
        if isinstance(self.purchase_value, str):
            if self.purchase_value != "price":
                raise ValueError(f'purchase_value must be "price" or a number, got '
                                 f"{self.purchase_value!r}")
        elif not np.isfinite(float(self.purchase_value)):
            raise ValueError(f"purchase_value must be finite, got {self.purchase_value!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not np.isfinite(value):
                raise ValueError(f"{f.name} must be finite, got {value!r}")

    def examination(self, k: int | None = None) -> np.ndarray:
        """Examination probability of positions 1..k (default: slate_size)."""
        k = self.slate_size if k is None else k
        return np.arange(1, k + 1, dtype=float) ** -self.position_bias


@dataclass(frozen=True)
class Observation:
    """What a policy may see; never the planted truth."""

    user: int                       # user index (0..n_users-1)
    visit: int                      # 0-based visit number in this episode
    step: int                       # 0-based list number within the visit
    history: np.ndarray             # items the user clicked, oldest first (logged + simulated)
    candidates: np.ndarray          # items the policy may show (default: every item)
    interest: np.ndarray            # (n_leaves,) leaf shares of ``history`` (sums to 1, or zeros)
    episode_step: int = 0           # 0-based list number within the episode


@dataclass(frozen=True)
class Outcome:
    """The user's answer to one list."""

    clicks: np.ndarray              # bool (slate_size,)
    purchases: np.ndarray           # bool (slate_size,)
    reward: float                   # click_value * clicks + purchase rewards
    visit_over: bool                # the user left this visit
    churned: bool                   # the episode is over: the user does not come back
    observation: Observation | None  # the next observation (None when the episode is over)
    horizon_reached: bool = False   # the episode ended at horizon_visits, not by the user
    examined: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # positions seen


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class ShopSimulator:
    """Users of a shop answering lists; see the module docstring and docs/simulator.md."""

    def __init__(self, shop: SyntheticShop, params: SimulatorParams | None = None,
                 seed: int = 0) -> None:
        self._setup(truth_from_shop(shop), params, seed)

    @classmethod
    def from_dataset(cls, dataset: InteractionDataset, params: SimulatorParams | None = None,
                     seed: int = 0) -> ShopSimulator:
        """Calibrated from logged data (no planted truth): preferences estimated from each
        user's interactions by leaf category, item appeal from popularity within leaf."""
        sim = cls.__new__(cls)
        sim._setup(truth_from_dataset(dataset), params, seed)
        return sim

    # ---- construction --------------------------------------------------------------------

    def _setup(self, truth: ShopTruth, params: SimulatorParams | None, seed: int) -> None:
        params = SimulatorParams() if params is None else params
        if not isinstance(params, SimulatorParams):
            raise TypeError(f"params must be SimulatorParams, got {type(params).__name__}")
        if params.slate_size > truth.n_items:
            raise ValueError(f"slate_size {params.slate_size} exceeds the {truth.n_items} "
                             "items of the shop")
        self.truth = truth
        self.params = params
        self.n_users, self.n_items, self.n_leaves = truth.n_users, truth.n_items, truth.n_leaves
        self.item_ids = truth.item_ids
        self.user_ids = truth.user_ids
        self.leaf_ids = truth.leaf_ids
        self.item_leaf = _frozen(truth.item_leaf.copy())
        self.item_price = _frozen(truth.item_price.copy())
        self.item_popularity = _frozen(truth.popularity.copy())
        self._all_items = _frozen(np.arange(self.n_items, dtype=np.int64))
        self._candidates = self._all_items
        self._exam = params.examination()
        reference = float(np.median(truth.item_price))
        self._log_price = np.log(truth.item_price / reference)
        self._log_appeal = np.log(truth.appeal)
        self._value = (truth.item_price if params.purchase_value == "price"
                       else np.full(self.n_items, float(params.purchase_value)))
        self._user = -1
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart both generators (arrivals and responses) from ``seed``; ends any episode."""
        self.seed = seed
        self._arrivals = np.random.default_rng([seed, 0])
        self._responses = np.random.default_rng([seed, 1])
        self._user = -1
        self._done = True

    def set_candidates(self, items: np.ndarray | None) -> None:
        """Restrict what policies may show from the next observation on (e.g. to items in
        stock); None restores every item."""
        if items is None:
            self._candidates = self._all_items
            return
        items = np.unique(self._items(np.asarray(items)))
        if len(items) < self.params.slate_size:
            raise ValueError(f"candidates must hold at least slate_size="
                             f"{self.params.slate_size} distinct items, got {len(items)}")
        self._candidates = _frozen(items.astype(np.int64))

    # ---- episodes ------------------------------------------------------------------------

    def reset(self, user: int | None = None) -> Observation:
        """Start an episode for ``user`` (drawn uniformly by the arrivals generator when
        None) from the user's logged history, with no satiety or boredom."""
        if user is None:
            user = int(self._arrivals.integers(self.n_users))
        elif isinstance(user, bool) or not isinstance(user, int | np.integer) \
                or not 0 <= user < self.n_users:
            raise ValueError(f"user must be an index in [0, {self.n_users}), got {user!r}")
        user = int(user)
        p = self.params
        pref = self.truth.user_preferences(user)
        # a user with no known taste is indifferent: every leaf at 1/L
        self._affinity = ((1 - p.exploration) * pref + p.exploration / self.n_leaves
                          if pref.sum() > 0 else np.full(self.n_leaves, 1.0 / self.n_leaves))
        log_al = np.log(self._affinity * self.n_leaves)
        self._click_base = (p.click_bias + p.preference_weight * log_al[self.truth.item_leaf]
                            + p.popularity_weight * self._log_appeal)
        self._buy_p = _sigmoid(p.purchase_bias
                               + p.purchase_preference_weight * log_al[self.truth.item_leaf]
                               - p.price_sensitivity * self._log_price)
        # what a click on each item is worth in expectation (purchase odds do not change)
        self._click_worth = p.click_value + self._buy_p * self._value
        self._rewards: np.ndarray | None = None  # every item's expected reward, this state
        self._match = self._affinity / self._affinity.max()
        self._leaf_satiety = np.zeros(self.n_leaves)
        self._item_satiety = np.zeros(self.n_items)
        self._boredom = 0.0
        seed_history = self.truth.user_history(user)
        self._history = np.empty(max(64, 2 * len(seed_history)), dtype=np.int64)
        self._history[:len(seed_history)] = seed_history
        self._n_history = len(seed_history)
        self._leaf_counts = np.bincount(self.truth.item_leaf[seed_history],
                                        minlength=self.n_leaves).astype(float)
        self._user, self._visit, self._step, self._episode_step = user, 0, 0, 0
        self._visit_clicks = self._visit_purchases = 0
        self._done = False
        self._obs = self._observation()
        return self._obs

    def _observation(self) -> Observation:
        total = self._leaf_counts.sum()
        interest = self._leaf_counts / total if total > 0 else np.zeros(self.n_leaves)
        history = self._history[:self._n_history].view()
        history.setflags(write=False)
        return Observation(user=self._user, visit=self._visit, step=self._step,
                           history=history, candidates=self._candidates,
                           interest=_frozen(interest), episode_step=self._episode_step)

    @property
    def observation(self) -> Observation | None:
        """The current observation (None between episodes)."""
        return None if self._done else self._obs

    # ---- the truth, for oracles and regret -----------------------------------------------

    def _check_state(self, obs: Observation) -> None:
        if self._done:
            raise RuntimeError("no episode in progress: call reset() first")
        if obs is not self._obs and (obs.user != self._user or obs.visit != self._visit
                                     or obs.step != self._step
                                     or obs.episode_step != self._episode_step):
            raise ValueError("the truth is only known for the current observation "
                             f"(user {self._user}, visit {self._visit}, step {self._step}); "
                             f"got user {obs.user}, visit {obs.visit}, step {obs.step}")

    def _items(self, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items)
        if items.ndim != 1 or (items.size and not np.issubdtype(items.dtype, np.integer)):
            raise ValueError(f"items must be a 1-D array of item indices, got shape "
                             f"{items.shape} and dtype {items.dtype}")
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            bad = items[(items < 0) | (items >= self.n_items)]
            raise ValueError(f"item indices must lie in [0, {self.n_items}), got {bad[:5]}")
        return items

    def _click_p(self, items: np.ndarray) -> np.ndarray:
        satiety = self._leaf_satiety[self.truth.item_leaf[items]] + self._item_satiety[items]
        return _sigmoid(self._click_base[items] - self.params.satiety_weight * satiety)

    def click_probabilities(self, obs: Observation, items: np.ndarray) -> np.ndarray:
        """TRUE probability each item is clicked if shown at position 1 now (for oracles
        and regret; policies under evaluation must not call it)."""
        self._check_state(obs)
        return self._click_p(self._items(items))

    def purchase_probabilities(self, obs: Observation, items: np.ndarray) -> np.ndarray:
        """TRUE probability each item is bought once clicked."""
        self._check_state(obs)
        return self._buy_p[self._items(items)]

    def item_rewards(self, obs: Observation, items: np.ndarray) -> np.ndarray:
        """TRUE expected immediate reward of each item shown at position 1 now."""
        self._check_state(obs)
        items = self._items(items)
        if self._rewards is None:  # computed once per state: oracle and regret both ask
            self._rewards = _frozen(self._click_p(self._all_items) * self._click_worth)
        return self._rewards if items is self._all_items else self._rewards[items]

    def expected_reward(self, obs: Observation, slate: np.ndarray) -> float:
        """TRUE expected immediate reward of showing ``slate`` now (position bias included)."""
        slate = self._validate_slate(slate, obs)
        return float(self._exam @ self.item_rewards(obs, slate))

    # ---- one list ------------------------------------------------------------------------

    def _validate_slate(self, slate: np.ndarray, obs: Observation | None = None) -> np.ndarray:
        if self._done:
            raise RuntimeError("no episode in progress: call reset() first")
        slate = np.asarray(slate)
        k = self.params.slate_size
        if slate.ndim != 1 or len(slate) != k:
            raise ValueError(f"slate must be a 1-D array of slate_size={k} item indices, "
                             f"got shape {slate.shape}")
        if not np.issubdtype(slate.dtype, np.integer):
            raise ValueError(f"slate must hold integer item indices, got dtype {slate.dtype}")
        if slate.min() < 0 or slate.max() >= self.n_items:
            bad = slate[(slate < 0) | (slate >= self.n_items)]
            raise ValueError(f"slate item indices must lie in [0, {self.n_items}), "
                             f"got {bad.tolist()}")
        ordered = np.sort(slate)
        repeated = ordered[1:] == ordered[:-1]
        if repeated.any():
            raise ValueError(f"slate items must be distinct; repeated: "
                             f"{np.unique(ordered[1:][repeated]).tolist()}")
        candidates = (obs or self._obs).candidates
        if candidates is not self._all_items and len(candidates) != self.n_items:
            outside = slate[~np.isin(slate, candidates)]
            if len(outside):
                raise ValueError(f"slate items not among the candidates: {outside.tolist()}")
        return slate.astype(np.int64, copy=False)

    def step(self, slate: np.ndarray) -> Outcome:
        """Show ``slate`` (distinct candidate item indices, best position first) to the
        current user; returns clicks, purchases, the reward and the next observation."""
        slate = self._validate_slate(slate)
        p, rng = self.params, self._responses
        k = len(slate)
        leaves = self.truth.item_leaf[slate]
        click_p = self._click_p(slate)
        buy_p = self._buy_p[slate]
        draws = rng.random((3, k))
        examined = draws[0] < self._exam
        clicks = examined & (draws[1] < click_p)
        purchases = clicks & (draws[2] < buy_p)
        n_clicks, n_buys = int(clicks.sum()), int(purchases.sum())
        reward = p.click_value * n_clicks + float(self._value[slate][purchases].sum())
        # satiety: what was shown (as likely seen), clicked and bought fills up
        self._leaf_satiety *= p.satiety_decay
        self._item_satiety *= p.satiety_decay
        leaf_fill = (p.leaf_exposure_satiety * self._exam + p.leaf_click_satiety * clicks
                     + p.leaf_purchase_satiety * purchases)
        self._leaf_satiety += np.bincount(leaves, weights=leaf_fill, minlength=self.n_leaves)
        self._item_satiety[slate] += (p.item_exposure_satiety * self._exam
                                      + p.item_click_satiety * clicks
                                      + p.item_purchase_satiety * purchases)
        # boredom: off-interest lists and lists of few leaves
        match = float(self._exam @ self._match[leaves]) / float(self._exam.sum())
        shares = np.bincount(leaves, minlength=self.n_leaves) / k
        herfindahl = float(shares @ shares)
        repetition = (herfindahl - 1.0 / k) / (1.0 - 1.0 / k) if k > 1 else 0.0
        self._boredom = (p.boredom_decay * self._boredom + (1.0 - match)
                         + p.repetition_weight * repetition)
        if n_clicks:
            clicked = slate[clicks]
            end = self._n_history + n_clicks
            if end > len(self._history):
                self._history = np.concatenate([self._history[:self._n_history],
                                                np.empty(max(end, 2 * len(self._history)),
                                                         np.int64)])
            self._history[self._n_history:end] = clicked
            self._n_history = end
            self._leaf_counts += np.bincount(leaves[clicks], minlength=self.n_leaves)
        self._visit_clicks += n_clicks
        self._visit_purchases += n_buys
        leave_p = _sigmoid(p.leave_bias + p.boredom_weight * self._boredom
                           - p.click_relief * n_clicks)
        visit_over = bool(rng.random() < leave_p) or self._step + 1 >= p.lists_per_visit
        churned = horizon = False
        if visit_over:
            satisfaction = self._visit_clicks + p.purchase_satisfaction * self._visit_purchases
            return_p = _sigmoid(p.return_bias + p.satisfaction_weight * np.log1p(satisfaction)
                                - p.boredom_churn_weight * self._boredom)
            churned = bool(rng.random() >= return_p)
            horizon = not churned and self._visit + 1 >= p.horizon_visits
            self._leaf_satiety *= p.satiety_recovery
            self._item_satiety *= p.satiety_recovery
            self._boredom *= p.boredom_recovery
            self._visit += 1
            self._step = 0
            self._visit_clicks = self._visit_purchases = 0
        else:
            self._step += 1
        self._episode_step += 1
        self._rewards = None
        done = churned or horizon
        self._done = done
        self._obs = None if done else self._observation()
        return Outcome(clicks=clicks, purchases=purchases, reward=reward,
                       visit_over=visit_over, churned=done, observation=self._obs,
                       horizon_reached=horizon, examined=examined)
