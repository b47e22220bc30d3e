"""The user state and the item (action) representation both Q models read.

A policy trained in the simulator has to act on live requests, so the state is built
only from what both worlds show: the user's engaged items (clicks, carts, purchases),
their leaf-category interests, which visit this is and how many items they engaged
with in it. :class:`UserState` is that state, built from a simulator
:class:`~recsdk.simulate.Observation` (:meth:`UserState.from_observation`) or from a
request (:meth:`ShopEncoder.request_state`).

:class:`ShopEncoder` holds the catalogue as the simulator indexes it (item leaf,
department, price, popularity) and turns a state and candidate items into

* tabular indices: a state class (visit bucket, engagement in this visit) and an
  action class per item (the item leaf's relation to the user's interests, how many
  items of its leaf the list already shows above it, its price band). The table is
  kept that small on purpose: 12 x 36 cells, each seen often enough in a few thousand
  simulated users for its mean to settle; items of one class are ordered by the
  upstream score;
* DQN inputs: a state vector, and per item a feature vector plus its leaf code (the
  network learns leaf embeddings).

An item's action depends on the items placed above it (``above``, their leaf codes):
a second or third item of one leaf is worth less than the first to a user who tires
of repetition, which an item-by-item value could not express otherwise. Lists are
therefore built position by position (:func:`.policy.build_list`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: engaged items whose leaves count as "recent" (satiety and boredom act on them)
RECENT = 3
#: interest in a leaf at or above which the leaf counts as one of the user's strong ones
STRONG_INTEREST = 0.25
#: history event types that count as engagement at serving time (the simulator's
#: history holds clicks and purchases)
ENGAGED_TYPES = ("click", "add_to_cart", "purchase")

VISIT_BUCKETS = 4      # visit 0, 1, 2, 3+
CLICK_BUCKETS = 3      # 0, 1, 2+ items engaged with in this visit
N_STATES = VISIT_BUCKETS * CLICK_BUCKETS
RELATIONS = 4          # other department, same department, weak leaf, strong leaf
ABOVE = 3              # 0, 1, 2+ items of the same leaf above in the list
BANDS = 3              # price tertiles
N_ACTIONS = RELATIONS * ABOVE * BANDS
#: DQN state vector: visit one-hot, click-bucket one-hot, focus, has-interest
STATE_DIM = VISIT_BUCKETS + CLICK_BUCKETS + 2
#: DQN item features (see :meth:`ShopEncoder.item_features`)
ITEM_DIM = 9


@dataclass(frozen=True)
class UserState:
    """What the Q policy knows about a user when it chooses a list."""

    interest: np.ndarray     # (n_leaves,) leaf affinities, summing to 1 (or zeros)
    recent: np.ndarray       # leaf codes of the last RECENT engaged items, oldest first
    seen: np.ndarray         # item indices the user engaged with
    visit: int               # visits before this one
    visit_clicks: int        # items engaged with in this visit so far

    @classmethod
    def from_observation(cls, obs: Any, item_leaf: np.ndarray,
                         visit_start: int) -> UserState:
        """The state of a simulator observation; ``visit_start`` is the history length
        when the visit began (what the user engaged with before it)."""
        history = np.asarray(obs.history, dtype=np.int64)
        return cls(interest=np.asarray(obs.interest, dtype=np.float64),
                   recent=item_leaf[history[-RECENT:]], seen=history,
                   visit=int(obs.visit), visit_clicks=max(len(history) - visit_start, 0))

    @property
    def focused(self) -> bool:
        """The recent engagement sits in one leaf (where satiety builds up)."""
        return len(self.recent) >= 2 and bool(np.all(self.recent == self.recent[-1]))

    @property
    def has_interest(self) -> bool:
        return bool(self.interest.sum() > 0)


class ShopEncoder:
    """Catalogue arrays in the simulator's item order, and the state/action codings."""

    def __init__(self, item_ids: Sequence[str], item_leaf: np.ndarray,
                 leaf_ids: Sequence[str], leaf_dept: np.ndarray, item_price: np.ndarray,
                 item_popularity: np.ndarray) -> None:
        self.item_ids = np.asarray(item_ids, dtype=str)
        self.item_leaf = np.asarray(item_leaf, dtype=np.int64)
        self.leaf_ids = np.asarray(leaf_ids, dtype=str)
        self.leaf_dept = np.asarray(leaf_dept, dtype=np.int64)
        self.item_price = np.asarray(item_price, dtype=np.float64)
        self.item_popularity = np.asarray(item_popularity, dtype=np.float64)
        n = len(self.item_ids)
        if not (len(self.item_leaf) == len(self.item_price) == len(self.item_popularity) == n):
            raise ValueError("item_ids, item_leaf, item_price and item_popularity must "
                             "have one entry per item")
        if n and (self.item_leaf.min() < 0 or self.item_leaf.max() >= len(self.leaf_ids)):
            raise ValueError("item_leaf holds a code outside leaf_ids")
        if len(self.leaf_dept) != len(self.leaf_ids):
            raise ValueError("leaf_dept must have one department code per leaf")
        self.n_leaves = len(self.leaf_ids)
        self.n_depts = int(self.leaf_dept.max()) + 1 if self.n_leaves else 0
        self.item_dept = self.leaf_dept[self.item_leaf] if n else np.zeros(0, np.int64)
        self.item_index = {str(i): p for p, i in enumerate(self.item_ids)}
        self.leaf_index = {str(c): p for p, c in enumerate(self.leaf_ids)}
        price = np.where(np.isfinite(self.item_price), self.item_price,
                         np.nanmedian(self.item_price) if n else 0.0)
        self.price_band = _bands(price)
        self.log_price = _standardised(np.log1p(np.maximum(price, 0.0)))
        self.log_popularity = _standardised(np.log(self.item_popularity + 1e-6))

    @classmethod
    def from_simulator(cls, sim: Any, catalog: Any) -> ShopEncoder:
        """The simulator's item order and leaf codes, with departments (the leaf's root
        ancestor) from the catalogue of the shop it was built from."""
        leaf_ids = np.asarray(sim.leaf_ids).astype(str)
        roots: dict[str, int] = {}
        dept = np.array([roots.setdefault((catalog.tree.path(c) or [c])[0], len(roots))
                         for c in leaf_ids], dtype=np.int64)
        return cls(sim.item_ids, sim.item_leaf, leaf_ids.astype(str), dept, sim.item_price,
                   sim.item_popularity)

    # ---- persistence -----------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        return {"item_ids": self.item_ids, "item_leaf": self.item_leaf,
                "leaf_ids": self.leaf_ids, "leaf_dept": self.leaf_dept,
                "item_price": self.item_price, "item_popularity": self.item_popularity}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> ShopEncoder:
        return cls(state["item_ids"], state["item_leaf"], state["leaf_ids"],
                   state["leaf_dept"], state["item_price"], state["item_popularity"])

    # ---- serving-side state ----------------------------------------------------------

    def request_state(self, item_ids: Sequence[str], types: Sequence[str],
                      session_ids: Sequence[str | None], session_id: str | None,
                      category_affinity: Mapping[str, float] | None) -> UserState:
        """The state of a live request: engaged history items (known ones), visits as
        distinct earlier sessions, engagement in the current session, and interests
        from the ``interest`` plugin's leaf affinities (else the engaged leaves'
        shares, as the simulator counts them)."""
        engaged = [(self.item_index[i], s) for i, t, s
                   in zip(item_ids, types, session_ids, strict=True)
                   if t in ENGAGED_TYPES and i in self.item_index]
        seen = np.array([p for p, _ in engaged], dtype=np.int64)
        earlier = {s for s in session_ids if s is not None and s != session_id}
        clicks = sum(1 for _, s in engaged if session_id is not None and s == session_id)
        interest = np.zeros(self.n_leaves)
        if category_affinity:
            for category, value in category_affinity.items():
                leaf = self.leaf_index.get(str(category))
                if leaf is not None and np.isfinite(value) and value > 0:
                    interest[leaf] = float(value)
        if interest.sum() <= 0 and len(seen):
            interest = np.bincount(self.item_leaf[seen], minlength=self.n_leaves).astype(float)
        if interest.sum() > 0:
            interest /= interest.sum()
        return UserState(interest=interest, recent=self.item_leaf[seen[-RECENT:]], seen=seen,
                         visit=len(earlier), visit_clicks=clicks)

    # ---- tabular coding --------------------------------------------------------------

    def state_index(self, state: UserState) -> int:
        visit = min(state.visit, VISIT_BUCKETS - 1)
        return visit * CLICK_BUCKETS + min(state.visit_clicks, CLICK_BUCKETS - 1)

    def above_counts(self, items: np.ndarray, above: np.ndarray) -> np.ndarray:
        """How many of the leaves placed above (``above``) each item's leaf is."""
        leaf = self.item_leaf[items]
        if len(above) == 0:
            return np.zeros(len(leaf), dtype=np.int64)
        counts = np.bincount(np.asarray(above, dtype=np.int64), minlength=self.n_leaves)
        return counts[leaf]

    def list_above(self, slate: np.ndarray) -> np.ndarray:
        """Per position of a shown list, the same-leaf items above it."""
        leaf = self.item_leaf[np.asarray(slate, dtype=np.int64)]
        same = leaf[:, None] == leaf[None, :]
        return np.tril(same, -1).sum(axis=1).astype(np.int64)

    def relation(self, state: UserState, items: np.ndarray) -> np.ndarray:
        """0 other department, 1 same department but a leaf without interest, 2 a weak
        leaf, 3 a strong leaf (interest >= STRONG_INTEREST)."""
        leaf = self.item_leaf[items]
        affinity = state.interest[leaf]
        dept_interest = np.bincount(self.leaf_dept, weights=state.interest,
                                    minlength=self.n_depts)
        return np.where(affinity >= STRONG_INTEREST, 3, np.where(
            affinity > 0, 2, np.where(dept_interest[self.item_dept[items]] > 0, 1, 0)))

    def action_index(self, state: UserState, items: np.ndarray,
                     above: np.ndarray) -> np.ndarray:
        """Action class of each item; ``above`` per item: same-leaf items above it."""
        items = np.asarray(items, dtype=np.int64)
        repeat = np.minimum(np.asarray(above, dtype=np.int64), ABOVE - 1)
        return (self.relation(state, items) * ABOVE + repeat) * BANDS + self.price_band[items]

    # ---- DQN coding ------------------------------------------------------------------

    def state_vector(self, state: UserState) -> np.ndarray:
        out = np.zeros(STATE_DIM, dtype=np.float32)
        out[min(state.visit, VISIT_BUCKETS - 1)] = 1.0
        out[VISIT_BUCKETS + min(state.visit_clicks, CLICK_BUCKETS - 1)] = 1.0
        out[-2] = float(state.focused)
        out[-1] = float(state.has_interest)
        return out

    def item_features(self, state: UserState, items: np.ndarray,
                      above: np.ndarray) -> np.ndarray:
        """Per item: the user's interest in its leaf and department, how many of the
        recent engagements share its leaf, whether the user engaged with it, its
        standardised log price and log popularity, its price band centred, and the
        same-leaf items above it (``above``, per item) as a count and as a flag."""
        items = np.asarray(items, dtype=np.int64)
        above = np.asarray(above, dtype=np.float64)
        leaf = self.item_leaf[items]
        dept_interest = np.bincount(self.leaf_dept, weights=state.interest,
                                    minlength=self.n_depts)
        recent = (leaf[:, None] == state.recent[None, :]).sum(axis=1) / RECENT
        return np.stack([state.interest[leaf], dept_interest[self.item_dept[items]], recent,
                         np.isin(items, state.seen).astype(float), self.log_price[items],
                         self.log_popularity[items], self.price_band[items] - 1.0,
                         above / ABOVE, (above > 0).astype(float)],
                        axis=1).astype(np.float32)

    # ---- the stand-in for upstream retrieval in training -----------------------------

    def prior(self, state: UserState, items: np.ndarray) -> np.ndarray:
        """What the upstream plugins would rank by, as the simulator's log-calibrated
        model sees it: popularity within the user's interests (plus a share for leaves
        the user never touched). Picks the candidate pool in training and breaks ties
        between items of one action class."""
        items = np.asarray(items, dtype=np.int64)
        smoothing = 1.0 / max(self.n_leaves, 1)
        return (state.interest[self.item_leaf[items]] + smoothing) \
            * (self.item_popularity[items] + 1e-9)


def _bands(values: np.ndarray) -> np.ndarray:
    """Tertile band (0, 1, 2) of each value by rank (ties share the lower band)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cuts = np.quantile(values, [1 / 3, 2 / 3])
    return np.searchsorted(cuts, values, side="right").clip(0, BANDS - 1).astype(np.int64)


def _standardised(values: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return values.astype(np.float32)
    sd = float(values.std())
    return ((values - values.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)
