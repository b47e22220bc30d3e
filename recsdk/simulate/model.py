"""What the simulator holds true about a shop: users' leaf preferences and items' appeal.

Two sources give the same :class:`ShopTruth`: a synthetic shop, whose preferences and
within-leaf popularity were planted by the generator, and a logged
:class:`~recsdk.dataset.InteractionDataset`, from which they are estimated (each user's
interactions by leaf category; each item's share of its leaf's interactions). The
response model (:mod:`recsdk.simulate.simulator`) only ever reads a ``ShopTruth``, so it
behaves the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.data.synthetic import SyntheticShop
from recsdk.dataset import InteractionDataset

#: Event types that put an item in a user's history (what the user chose, not was shown),
#: in order of preference: the first kind the log has is used (a purchase follows a click
#: of the same item, so clicks alone already list every choice once).
HISTORY_TYPES = (("click",), ("add_to_cart", "purchase"))
#: Leaf code of items without a category (from a dataset whose catalogue lacks them).
UNCATEGORISED = "(uncategorised)"


@dataclass(frozen=True)
class ShopTruth:
    """Arrays indexed by user and item codes (0..n-1).

    ``preferences`` is a users x leaves CSR matrix whose rows sum to 1 (or are empty for
    a user with no known taste); ``appeal`` is each item's popularity within its leaf
    relative to the leaf's most popular item (in (0, 1]); ``popularity`` is the observed
    share of events per item; ``history`` holds, per user, the items clicked or bought
    before the simulation starts, oldest first (CSR layout: ``history_ptr``).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    leaf_ids: np.ndarray
    item_leaf: np.ndarray
    item_price: np.ndarray
    appeal: np.ndarray
    popularity: np.ndarray
    preferences: sp.csr_matrix
    history: np.ndarray
    history_ptr: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_ids)

    def user_preferences(self, user: int) -> np.ndarray:
        """Dense (n_leaves,) preference row of ``user``."""
        row = np.zeros(self.n_leaves)
        lo, hi = self.preferences.indptr[user], self.preferences.indptr[user + 1]
        row[self.preferences.indices[lo:hi]] = self.preferences.data[lo:hi]
        return row

    def user_history(self, user: int) -> np.ndarray:
        return self.history[self.history_ptr[user]:self.history_ptr[user + 1]]


def truth_from_shop(shop: SyntheticShop) -> ShopTruth:
    """The planted truth of a generated shop: preferences, prices, Zipf appeal."""
    if not isinstance(shop, SyntheticShop):
        raise TypeError(f"ShopSimulator needs a SyntheticShop (recsdk.data.synthetic."
                        f"generate_shop), got {type(shop).__name__}; for logged data use "
                        "ShopSimulator.from_dataset")
    items = shop.items
    item_ids = items["id"].astype(str).to_numpy()
    leaf_ids, item_leaf = np.unique(items["category_id"].astype(str).to_numpy(),
                                    return_inverse=True)
    weight = shop.within_leaf_popularity()
    leaf_max = np.zeros(len(leaf_ids))
    np.maximum.at(leaf_max, item_leaf, weight)
    user_ids = shop.users["id"].astype(str).to_numpy()
    user_index = pd.Index(user_ids)
    leaf_index = pd.Index(leaf_ids)
    prefs = shop.preferences
    rows = user_index.get_indexer(prefs["user_id"].astype(str))
    cols = leaf_index.get_indexer(prefs["category_id"].astype(str))
    keep = (rows >= 0) & (cols >= 0)  # a preferred leaf without items cannot be shown
    preferences = _normalised_rows(rows[keep], cols[keep],
                                   prefs["weight"].to_numpy(float)[keep],
                                   len(user_ids), len(leaf_ids))
    item_index = pd.Index(item_ids)
    counts = np.zeros(len(item_ids))
    kept: list[tuple[np.ndarray, ...]] = []
    for events in shop.iter_events(1_000_000):  # streamed when the shop was not materialised
        ev_item = item_index.get_indexer(events["item_id"].astype(str))
        ev_user = user_index.get_indexer(events["user_id"].astype(str))
        counts += np.bincount(ev_item[ev_item >= 0], minlength=len(item_ids))
        types = events["type"].astype(str).to_numpy()
        keep = (ev_item >= 0) & (ev_user >= 0) & np.isin(types, sum(HISTORY_TYPES, ()))
        seconds = events["timestamp"].astype("int64").to_numpy()
        kept.append((ev_user[keep], ev_item[keep], seconds[keep], types[keep]))
    popularity = counts / counts.sum() if counts.sum() > 0 else np.full(len(item_ids),
                                                                          1.0 / len(item_ids))
    user, item, seconds, types = (np.concatenate(a) for a in zip(*kept, strict=True)) \
        if kept else (np.zeros(0, np.int64),) * 3 + (np.zeros(0, str),)
    chosen = _chosen(types, np.ones(len(types), bool))
    history, ptr = _histories(user[chosen], item[chosen], seconds[chosen], len(user_ids))
    return ShopTruth(user_ids=user_ids, item_ids=item_ids, leaf_ids=leaf_ids,
                     item_leaf=item_leaf.astype(np.int64),
                     item_price=items["price"].to_numpy(float),
                     appeal=weight / leaf_max[item_leaf], popularity=popularity,
                     preferences=preferences, history=history, history_ptr=ptr)


def truth_from_dataset(dataset: InteractionDataset) -> ShopTruth:
    """Truth estimated from logged interactions, for a shop without planted preferences.

    A user's preference for a leaf is the share of the user's positive interaction weight
    on items of that leaf; an item's appeal is its interaction weight (plus one, so that
    unseen items can still be clicked) relative to its leaf's most interacted item; an
    item without a catalogue price gets its leaf's median price (else the overall one).
    """
    if not isinstance(dataset, InteractionDataset):
        raise TypeError(f"from_dataset needs an InteractionDataset, got {type(dataset).__name__}")
    n_users, n_items = dataset.n_users, dataset.n_items
    if n_users == 0 or n_items == 0:
        raise ValueError(f"from_dataset needs users and items, got {n_users} users and "
                         f"{n_items} items")
    catalog = dataset.catalog
    item_ids = np.asarray(dataset.item_ids).astype(str)
    pos = catalog.positions(item_ids) if len(catalog) else np.full(n_items, -1)
    known = pos >= 0
    category = np.full(n_items, UNCATEGORISED, dtype=object)
    category[known] = [UNCATEGORISED if c is None or (isinstance(c, float) and np.isnan(c))
                       else str(c) for c in catalog.category[pos[known]]]
    leaf_ids, item_leaf = np.unique(category.astype(str), return_inverse=True)
    price = np.full(n_items, np.nan)
    price[known] = catalog.price[pos[known]]
    price = _fill_prices(price, item_leaf, len(leaf_ids))
    inter = dataset.interactions
    user = inter["user"].to_numpy(np.int64)
    item = inter["item"].to_numpy(np.int64)
    weight = np.clip(inter["weight"].to_numpy(float), 0.0, None)
    item_weight = np.bincount(item, weights=weight, minlength=n_items) + 1.0
    leaf_max = np.zeros(len(leaf_ids))
    np.maximum.at(leaf_max, item_leaf, item_weight)
    preferences = _normalised_rows(user, item_leaf[item], weight, n_users, len(leaf_ids))
    chosen = _chosen(inter["type"].astype(str).to_numpy(), weight > 0)
    history, ptr = _histories(user[chosen], item[chosen],
                              inter["timestamp"].to_numpy(float)[chosen], n_users)
    return ShopTruth(user_ids=np.asarray(dataset.user_ids).astype(str), item_ids=item_ids,
                     leaf_ids=leaf_ids, item_leaf=item_leaf.astype(np.int64),
                     item_price=price, appeal=item_weight / leaf_max[item_leaf],
                     popularity=_shares(item, n_items), preferences=preferences,
                     history=history, history_ptr=ptr)


def _normalised_rows(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray,
                     n_rows: int, n_cols: int) -> sp.csr_matrix:
    mat = sp.csr_matrix((weights, (rows, cols)), shape=(n_rows, n_cols), dtype=float)
    mat.sum_duplicates()
    mat.eliminate_zeros()
    totals = np.asarray(mat.sum(axis=1)).ravel()
    mat.data /= np.repeat(np.where(totals > 0, totals, 1.0), np.diff(mat.indptr))
    return mat


def _shares(codes: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n).astype(float)
    return counts / counts.sum() if counts.sum() > 0 else np.full(n, 1.0 / n)


def _chosen(types: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Rows of the first kind in HISTORY_TYPES the log has; a log without any of them
    (ratings, plain "interaction" rows) counts every row of positive weight."""
    for kinds in HISTORY_TYPES:
        chosen = np.isin(types, kinds)
        if chosen.any():
            return chosen
    return positive


def _histories(user: np.ndarray, item: np.ndarray, when: np.ndarray,
               n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the chosen items oldest first, in CSR layout."""
    order = np.lexsort((when, user))
    user, item = user[order], item[order]
    ptr = np.r_[0, np.cumsum(np.bincount(user, minlength=n_users))]
    return item.astype(np.int64), ptr.astype(np.int64)


def _fill_prices(price: np.ndarray, item_leaf: np.ndarray, n_leaves: int) -> np.ndarray:
    price = np.where(price > 0, price, np.nan)
    if np.isnan(price).all():
        return np.ones_like(price)  # no prices at all: every purchase is worth the same
    frame = pd.Series(price)
    leaf_median = frame.groupby(item_leaf).median().reindex(range(n_leaves)).to_numpy()
    filled = np.where(np.isnan(price), leaf_median[item_leaf], price)
    return np.where(np.isnan(filled), np.nanmedian(price), filled)
