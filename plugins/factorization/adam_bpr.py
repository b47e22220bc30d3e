"""BPR (Rendle et al. 2009) trained by mini-batch Adam (Kingma & Ba 2015), in numpy.

implicit's BPR is plain SGD, one triple at a time; on MovieLens it peaks early and
then overfits at every step size tried. The mini-batch Adam recipe of RecBole's BPR
(batches of (u, i, j) triples, uniform negatives, L2 on the batch's rows) trains
further before it overfits. This module is that recipe with no torch: each step
gathers the batch's rows, computes the BPR gradient in closed form and applies a
lazy Adam update to the rows the batch touched (torch's ``SparseAdam`` rule), so a
step costs O(batch x factors) however large the catalogue.

The factors come out in implicit's BPR layout, users ``[p, 1]`` and items
``[q, b]`` (``b`` = 0 without ``item_bias``), so scoring, fold-in, state and
retrieval are the same as for the implicit solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: rejection rounds for negatives the user has (then whatever was drawn is kept)
NEGATIVE_ROUNDS = 4


@dataclass(frozen=True)
class AdamBPRConfig:
    """What one training run needs besides the data."""

    factors: int
    epochs: int
    learning_rate: float
    regularization: float
    batch_size: int
    item_bias: bool
    verify_negative_samples: bool
    init_scale: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


class _LazyAdam:
    """Adam moments per row, updated only for the rows a batch touches."""

    def __init__(self, shape: tuple[int, ...], config: AdamBPRConfig) -> None:
        self.m = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        self.c = config

    def step(self, param: np.ndarray, rows: np.ndarray, grad: np.ndarray, t: int) -> None:
        c = self.c
        m = c.beta1 * self.m[rows] + (1 - c.beta1) * grad
        v = c.beta2 * self.v[rows] + (1 - c.beta2) * grad * grad
        self.m[rows], self.v[rows] = m, v
        lr = c.learning_rate * np.sqrt(1 - c.beta2 ** t) / (1 - c.beta1 ** t)
        param[rows] -= lr * m / (np.sqrt(v) + c.eps)


def _sum_rows(index: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``index`` values and the sum of ``values`` rows per value."""
    order = np.argsort(index, kind="stable")
    index = index[order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    return index[starts], np.add.reduceat(values[order], starts, axis=0)


def train_adam_bpr(matrix: sp.csr_matrix, config: AdamBPRConfig,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """User factors ``[p, 1]`` and item factors ``[q, b]`` of BPR on ``matrix``'s
    positive cells.

    Each epoch visits every positive cell once in a seeded random order; each cell's
    negative is an item drawn uniformly (redrawn, up to ``NEGATIVE_ROUNDS`` times,
    while the user has it, with ``verify_negative_samples``). The loss of a batch is
    the mean over its triples of -ln sigmoid(x_ui - x_uj) + reg/2 (|p_u|^2 + |q_i|^2 +
    |q_j|^2 + b_i^2 + b_j^2).
    """
    c = config
    rng = np.random.default_rng(seed)
    coo = sp.coo_matrix(matrix)
    keep = coo.data > 0
    users = coo.row[keep].astype(np.int64)
    items = coo.col[keep].astype(np.int64)
    n_users, n_items = matrix.shape
    keys = np.sort(users * n_items + items)
    f = c.factors
    scale = c.init_scale / np.sqrt(f)
    p = (rng.standard_normal((n_users, f)) * scale).astype(np.float32)
    q = (rng.standard_normal((n_items, f)) * scale).astype(np.float32)
    b = np.zeros(n_items, dtype=np.float32)
    adam_p, adam_q = _LazyAdam(p.shape, c), _LazyAdam(q.shape, c)
    adam_b = _LazyAdam(b.shape, c)
    n = len(users)
    t = 0
    for _ in range(c.epochs if n else 0):
        order = rng.permutation(n)
        for start in range(0, n, c.batch_size):
            batch = order[start:start + c.batch_size]
            u, i = users[batch], items[batch]
            j = rng.integers(0, n_items, len(batch))
            if c.verify_negative_samples:
                for _ in range(NEGATIVE_ROUNDS):
                    bad = _has(keys, u * n_items + j)
                    if not bad.any():
                        break
                    j[bad] = rng.integers(0, n_items, int(bad.sum()))
            pu, qi, qj = p[u], q[i], q[j]
            x = np.einsum("bf,bf->b", pu, qi - qj)
            if c.item_bias:
                x += b[i] - b[j]
            # d/dx of -ln sigmoid(x) is -sigmoid(-x); the mean over the batch
            g = (-1.0 / (1.0 + np.exp(np.clip(x, -30, 30)))).astype(np.float32)
            g /= len(batch)
            reg = np.float32(c.regularization / len(batch))
            grad_p = g[:, None] * (qi - qj) + reg * pu
            grad_qi = g[:, None] * pu + reg * qi
            grad_qj = -g[:, None] * pu + reg * qj
            t += 1
            rows, grad = _sum_rows(u, grad_p)
            adam_p.step(p, rows, grad, t)
            rows, grad = _sum_rows(np.concatenate([i, j]),
                                   np.concatenate([grad_qi, grad_qj]))
            adam_q.step(q, rows, grad, t)
            if c.item_bias:
                rows, grad = _sum_rows(np.concatenate([i, j]), np.concatenate(
                    [g + reg * b[i], -g + reg * b[j]]))
                adam_b.step(b, rows, grad, t)
    user_factors = np.hstack([p, np.ones((n_users, 1), dtype=np.float32)])
    item_factors = np.hstack([q, b[:, None]])
    return user_factors, item_factors


def _has(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which ``keys`` are in ``sorted_keys``."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys
