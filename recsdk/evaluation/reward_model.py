"""The reward model of the doubly robust estimator: a shrunk mean per (item, position).

``q(a, k) = (S_ak + m * mu_k) / (N_ak + m)``: the mean logged reward of item ``a`` at
position ``k``, shrunk towards the position's mean ``mu_k`` by ``m`` pseudo-observations
(an unseen item gets ``mu_k``; an unseen position the overall mean). It ignores the
user on purpose: it needs nothing but the log, never fails on new users, and DR stays
unbiased with any reward model as long as the propensities are right; a better model
only lowers the variance.

It is cross-fitted (Chernozhukov et al., 2018): requests are split into folds and each
fold's predictions come from the model fitted on the other folds, so that a request's
own reward never enters its prediction (which would bias the residual term towards 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Pseudo-observations of the position mean behind each (item, position) mean.
DEFAULT_SHRINKAGE = 10.0
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class ItemPositionRewardModel:
    """Predicted reward per (item code, position code), from one set of logged rows."""

    table: np.ndarray  # (n_items, n_positions)
    position_mean: np.ndarray  # (n_positions,)
    overall: float

    @classmethod
    def fit(cls, items: np.ndarray, positions: np.ndarray, rewards: np.ndarray,
            n_items: int, n_positions: int,
            shrinkage: float = DEFAULT_SHRINKAGE) -> ItemPositionRewardModel:
        """``items`` and ``positions`` are codes in ``range(n_items)``/``range(n_positions)``."""
        if shrinkage < 0:
            raise ValueError(f"shrinkage must be at least 0, got {shrinkage!r}")
        overall = float(rewards.mean()) if len(rewards) else 0.0
        counts = np.bincount(positions, minlength=n_positions).astype(float)
        sums = np.bincount(positions, rewards, minlength=n_positions)
        position_mean = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
        cell = items.astype(np.int64) * n_positions + positions
        n = np.bincount(cell, minlength=n_items * n_positions).reshape(n_items, n_positions)
        s = np.bincount(cell, rewards, minlength=n_items * n_positions).reshape(
            n_items, n_positions)
        denominator = n + shrinkage
        table = np.where(denominator > 0,
                         (s + shrinkage * position_mean) / np.where(denominator > 0,
                                                                    denominator, 1),
                         position_mean)
        return cls(table, position_mean, overall)

    def predict(self, items: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Predictions for item and position codes; -1 (unknown) gets the position mean
        or the overall mean."""
        items, positions = np.asarray(items), np.asarray(positions)
        out = np.full(len(items), self.overall)
        known_position = (positions >= 0) & (positions < self.table.shape[1])
        out[known_position] = self.position_mean[positions[known_position]]
        known = known_position & (items >= 0) & (items < self.table.shape[0])
        out[known] = self.table[items[known], positions[known]]
        return out


def folds_of(n_requests: int, folds: int, seed: int) -> np.ndarray:
    """A fold number per request: a seeded permutation dealt round-robin."""
    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {folds}")
    if n_requests < 2:
        raise ValueError("the doubly robust estimator needs at least 2 requests "
                         "(its reward model is cross-fitted)")
    folds = min(folds, n_requests)
    out = np.empty(n_requests, dtype=np.int64)
    out[np.random.default_rng(seed).permutation(n_requests)] = np.arange(n_requests) % folds
    return out


def cross_fit(request_codes: np.ndarray, items: np.ndarray, positions: np.ndarray,
              rewards: np.ndarray, n_items: int, n_positions: int, *,
              folds: int = DEFAULT_FOLDS, shrinkage: float = DEFAULT_SHRINKAGE,
              seed: int = 0) -> list[tuple[np.ndarray, ItemPositionRewardModel]]:
    """Per fold: which requests it holds (a boolean mask over request codes) and the
    model fitted on every other fold's rows."""
    request_codes = np.asarray(request_codes)
    fold = folds_of(int(request_codes.max()) + 1, folds, seed)
    row_fold = fold[request_codes]
    out = []
    for f in range(int(fold.max()) + 1):
        train = row_fold != f
        model = ItemPositionRewardModel.fit(items[train], positions[train], rewards[train],
                                            n_items, n_positions, shrinkage)
        out.append((fold == f, model))
    return out
