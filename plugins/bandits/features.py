"""The bandits' context: one feature vector per (request, candidate item).

Every feature is scaled to about [0, 1] (price to [-1, 1]) so that one ``ridge`` and one
exploration scale suit them all. The same :func:`context_matrix` builds the context in
the plugins (from ``request.features["interest"]``, the catalogue and the ranking the
rerank chain hands over) and in the simulator benchmark (from its observation), so the
policy measured there is the one that serves.

============== ===================================================================
feature        meaning
============== ===================================================================
bias           1 (the intercept)
leaf           the user's affinity share of the item's leaf category
parent         ... of the leaf's parent category (the leaf when it has none)
root           ... of the item's top-level category
price          log(1 + price), standardised over the catalogue, clipped to +-3, / 3
price_match    exp(-|log(1 + price) - log(1 + user's mean order value)|); 0 unknown
popularity     log(1 + training interactions) / log(1 + the most any item has)
upstream_score the score the pipeline gave it, min-max scaled over the candidates
upstream_rank  1 / log2(1 + its 1-based rank in the pipeline's order)
known_user     1 when the user has an interest profile, else 0
recent         0.8 ** (events since the user last touched the item); 0 when not in
               the recent history (what a user just clicked is often not clicked again)
============== ===================================================================

An affinity share is the decayed event weight the interest model keeps for the node
divided by the user's total over top-level categories (so shares of one tree level sum
to 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsdk.catalog import Catalog

FEATURES: tuple[str, ...] = ("bias", "leaf", "parent", "root", "price", "price_match",
                             "popularity", "upstream_score", "upstream_rank", "known_user",
                             "recent")
#: per event since the user last touched an item, its ``recent`` feature is multiplied by
RECENCY_DECAY = 0.8
DIM = len(FEATURES)


def context_matrix(*, leaf: np.ndarray, parent: np.ndarray, root: np.ndarray,
                   price: np.ndarray, price_scale: tuple[float, float],
                   user_price: float | None, popularity: np.ndarray,
                   upstream_scores: np.ndarray, known_user: bool,
                   recent: np.ndarray | None = None) -> np.ndarray:
    """The n x :data:`DIM` contexts of ``n`` candidates given in the pipeline's order.

    ``price`` may hold NaN (unknown price: price features 0); ``price_scale`` is the
    mean and standard deviation of ``log(1 + price)`` over the catalogue;
    ``user_price`` the user's mean order value (None: none); ``popularity`` is already
    in [0, 1]; ``recent`` comes from :func:`recency` (None: zeros).
    """
    n = len(leaf)
    log_price = np.log1p(np.maximum(np.asarray(price, dtype=np.float64), 0.0))
    mean, std = price_scale
    known_price = np.isfinite(log_price)
    z = np.clip((log_price - mean) / max(std, 1e-9), -3.0, 3.0) / 3.0
    match = (np.exp(-np.abs(log_price - np.log1p(user_price)))
             if user_price is not None and np.isfinite(user_price) and user_price > 0
             else np.zeros(n))
    scores = np.asarray(upstream_scores, dtype=np.float64)
    finite = np.isfinite(scores)
    lo = scores[finite].min() if finite.any() else 0.0
    hi = scores[finite].max() if finite.any() else 0.0
    scaled = np.where(finite, (scores - lo) / (hi - lo), 0.0) if hi > lo else \
        finite.astype(np.float64)
    X = np.empty((n, DIM))
    X[:, 0] = 1.0
    X[:, 1] = leaf
    X[:, 2] = parent
    X[:, 3] = root
    X[:, 4] = np.where(known_price, z, 0.0)
    X[:, 5] = np.where(known_price, match, 0.0)
    X[:, 6] = popularity
    X[:, 7] = scaled
    X[:, 8] = 1.0 / np.log2(2.0 + np.arange(n))
    X[:, 9] = 1.0 if known_user else 0.0
    X[:, 10] = 0.0 if recent is None else recent
    return X


def recency(history: Sequence[object], items: Sequence[object]) -> np.ndarray:
    """Per item, ``RECENCY_DECAY ** (events after its newest occurrence in history)``
    (history oldest first), 0 when it does not occur."""
    newest: dict[object, int] = {}
    for position, item in enumerate(history):
        newest[item] = position
    last = len(history) - 1
    return np.fromiter((RECENCY_DECAY ** (last - newest[i]) if i in newest else 0.0
                        for i in items), dtype=np.float64, count=len(items))


def price_scale(prices: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of ``log(1 + price)`` over the known prices."""
    logs = np.log1p(np.maximum(np.asarray(prices, dtype=np.float64), 0.0))
    logs = logs[np.isfinite(logs)]
    if len(logs) == 0:
        return 0.0, 1.0
    return float(logs.mean()), float(logs.std()) or 1.0


def popularity_share(counts: np.ndarray) -> np.ndarray:
    """``log(1 + count) / log(1 + max count)``: in [0, 1], 0 everywhere when no counts."""
    logs = np.log1p(np.maximum(np.asarray(counts, dtype=np.float64), 0.0))
    top = logs.max(initial=0.0)
    return logs / top if top > 0 else np.zeros_like(logs)


@dataclass(frozen=True)
class CatalogContext:
    """What the plugins read per catalogue snapshot: paths, prices and the price scale."""

    version: object
    leaf: np.ndarray       # each item's category (None when it has none)
    parent: np.ndarray
    root: np.ndarray
    price: np.ndarray
    scale: tuple[float, float]

    @classmethod
    def build(cls, catalog: Catalog) -> CatalogContext:
        paths = {c: catalog.tree.path(c) for c in set(catalog.category) if c is not None}

        def level(pick: int) -> np.ndarray:
            """Each item's node at ``pick`` on its root-first path (the leaf's parent
            is the leaf itself for a top-level leaf); None without a category."""
            out = []
            for c in catalog.category:
                path = paths.get(c) if c is not None else None
                out.append(path[max(pick, -len(path))] if path else None)
            return np.asarray(out, dtype=object)

        return cls((id(catalog), catalog.version), level(-1), level(-2), level(0),
                   np.asarray(catalog.price, dtype=np.float64), price_scale(catalog.price))


def interest_shares(profile: Mapping[str, Any] | None, roots: Sequence[str]
                    ) -> tuple[dict[str, float], float | None]:
    """Affinity shares by category id, and the user's mean order value, from an
    ``interest`` profile (see :meth:`recsdk.features.interest.UserProfile.to_dict`);
    ``roots`` are the catalogue's top-level categories."""
    if not isinstance(profile, Mapping):
        return {}, None
    affinity = profile.get("category_affinity")
    if not isinstance(affinity, Mapping):
        affinity = {}
    values = {str(c): float(v) for c, v in affinity.items()
              if isinstance(v, int | float) and np.isfinite(v) and v > 0}
    total = sum(values.get(r, 0.0) for r in roots) or sum(values.values())
    shares = {c: v / total for c, v in values.items()} if total > 0 else {}
    purchase = profile.get("purchase")
    price = purchase.get("mean_order_value") if isinstance(purchase, Mapping) else None
    return shares, float(price) if isinstance(price, int | float) else None


def lookup(shares: Mapping[str, float], nodes: np.ndarray) -> np.ndarray:
    return np.fromiter((shares.get(c, 0.0) if c is not None else 0.0 for c in nodes),
                       dtype=np.float64, count=len(nodes))
