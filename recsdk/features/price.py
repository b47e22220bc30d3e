"""Price features: log price, its z-score within the item's category, quantile buckets
and the discount rate.

A 30-euro item is cheap among laptops and dear among socks, so besides the global log
price the z-score within the category says where an item sits in its own market.
Buckets (global quantiles of log price) make "similar price range" a cosine feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.errors import NotTrainedError

#: A category needs this many priced items before its own mean and spread are used.
MIN_ITEMS_PER_CATEGORY = 3


def prices(items: pd.DataFrame, column: str) -> np.ndarray:
    """A price column as float; missing, negative or non-numeric values are NaN."""
    if column not in items:
        return np.full(len(items), np.nan)
    values = pd.to_numeric(items[column], errors="coerce").to_numpy(dtype=float)
    return np.where(values >= 0, values, np.nan)


def discount_rate(price: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``1 - price / original_price`` in [0, 1]; 0 when there is no usable original."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # inf: not usable
        rate = 1.0 - price / original
    ok = np.isfinite(rate) & (original > 0)
    return np.where(ok, np.clip(rate, 0.0, 1.0), 0.0)


class PriceEncoder:
    """Learns global quantile edges and per-category log-price mean and spread."""

    name = "price"

    def __init__(self, n_buckets: int = 10) -> None:
        self.n_buckets = n_buckets

    def fit(self, price: np.ndarray, category: Sequence[str | None]) -> PriceEncoder:
        log_price = np.log1p(price)
        known = np.isfinite(log_price)
        if not known.any():
            log_price = np.zeros(1)
            known = np.ones(1, dtype=bool)
            category = [None]
        quantiles = np.linspace(0, 1, self.n_buckets + 1)[1:-1]
        self.edges_ = np.unique(np.quantile(log_price[known], quantiles)).astype(np.float64)
        self.global_mean_ = float(log_price[known].mean())
        self.global_std_ = float(log_price[known].std()) or 1.0
        frame = pd.DataFrame({"category": pd.Series(category, dtype=object)[known].astype(str),
                              "log_price": log_price[known]})
        stats = frame.groupby("category")["log_price"].agg(["mean", "std", "count"])
        stats = stats[(stats["count"] >= MIN_ITEMS_PER_CATEGORY) & (stats["std"] > 0)]
        self.categories_ = stats.index.to_numpy(dtype=str)
        self.category_mean_ = stats["mean"].to_numpy(np.float64)
        self.category_std_ = stats["std"].to_numpy(np.float64)
        self._index = {c: i for i, c in enumerate(self.categories_)}
        return self

    def _check(self) -> None:
        if not hasattr(self, "edges_"):
            raise NotTrainedError("PriceEncoder used before fit")

    def z_in_category(self, price: np.ndarray, category: Sequence[str | None]) -> np.ndarray:
        """Log price standardised within the category (globally for small categories)."""
        self._check()
        pos = np.fromiter((self._index.get(str(c), -1) for c in category), dtype=np.int64,
                          count=len(category))
        mean = np.full(len(pos), self.global_mean_)
        std = np.full(len(pos), self.global_std_)
        known = pos >= 0
        mean[known] = self.category_mean_[pos[known]]
        std[known] = self.category_std_[pos[known]]
        return (np.log1p(price) - mean) / std

    def bucket(self, price: np.ndarray) -> np.ndarray:
        """Quantile bucket 0..n-1 of each price; -1 where the price is unknown."""
        self._check()
        out = np.searchsorted(self.edges_, np.log1p(price), side="right")
        return np.where(np.isfinite(price), out, -1)

    @property
    def n_columns(self) -> int:
        return len(self.edges_) + 1

    def transform(self, price: np.ndarray) -> sp.csr_matrix:
        """One-hot quantile bucket; an unknown price gives an all-zero row."""
        buckets = self.bucket(price)
        rows = np.flatnonzero(buckets >= 0)
        return sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, buckets[rows])),
            shape=(len(price), self.n_columns))

    def state(self) -> dict[str, np.ndarray]:
        self._check()
        return {"edges": self.edges_, "global": np.array([self.global_mean_, self.global_std_]),
                "categories": self.categories_, "category_mean": self.category_mean_,
                "category_std": self.category_std_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> PriceEncoder:
        self.edges_ = np.asarray(state["edges"], dtype=np.float64)
        self.global_mean_, self.global_std_ = (float(v) for v in state["global"])
        self.categories_ = np.asarray(state["categories"]).astype(str)
        self.category_mean_ = np.asarray(state["category_mean"], dtype=np.float64)
        self.category_std_ = np.asarray(state["category_std"], dtype=np.float64)
        self._index = {c: i for i, c in enumerate(self.categories_)}
        return self
