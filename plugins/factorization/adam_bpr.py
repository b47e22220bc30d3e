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
        """One Adam step on ``param[rows]`` (``grad`` is overwritten)."""
        c = self.c
        m, v = self.m[rows], self.v[rows]  # copies (fancy indexing): updated in place
        m *= c.beta1
        m += (1 - c.beta1) * grad
        grad *= grad
        v *= c.beta2
        v += (1 - c.beta2) * grad
        self.m[rows], self.v[rows] = m, v
        lr = c.learning_rate * np.sqrt(1 - c.beta2 ** t) / (1 - c.beta1 ** t)
        np.sqrt(v, out=v)
        v += c.eps
        m /= v
        m *= lr
        param[rows] -= m


def _sum_rows(index: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``index`` values and the sum of ``values`` rows per value (a sparse
    product: several times faster than ``np.add.at`` or ``reduceat``)."""
    rows, inverse = np.unique(index, return_inverse=True)
    scatter = sp.csr_matrix((np.ones(len(index), dtype=values.dtype),
                             (inverse, np.arange(len(index)))),
                            shape=(len(rows), len(index)))
    return rows, scatter @ values


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
    positives = _Positives(users, items, n_users, n_items)
    f = c.factors
    scale = c.init_scale / np.sqrt(f)
    # implicit's layout throughout: users [p, 1], items [q, b]; the users' last column
    # (and, without item_bias, the items') gets no gradient, so Adam never moves it
    p = np.ones((n_users, f + 1), dtype=np.float32)
    p[:, :f] = rng.standard_normal((n_users, f)) * scale
    q = np.zeros((n_items, f + 1), dtype=np.float32)
    q[:, :f] = rng.standard_normal((n_items, f)) * scale
    adam_p, adam_q = _LazyAdam(p.shape, c), _LazyAdam(q.shape, c)
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
                    bad = positives.has(u, j)
                    if not bad.any():
                        break
                    j[bad] = rng.integers(0, n_items, int(bad.sum()))
            pu, qi, qj = p[u], q[i], q[j]
            diff = qi - qj
            x = np.einsum("bf,bf->b", pu, diff)  # p'(q_i - q_j) + b_i - b_j
            # d/dx of -ln sigmoid(x) is -sigmoid(-x); the mean over the batch
            g = (-1.0 / (1.0 + np.exp(np.clip(x, -30, 30)))).astype(np.float32)
            g /= len(batch)
            reg = np.float32(c.regularization / len(batch))
            grad_p = g[:, None] * diff + reg * pu
            grad_p[:, f] = 0.0
            g_pu = g[:, None] * pu
            grad_q = np.concatenate([g_pu + reg * qi, reg * qj - g_pu])
            if not c.item_bias:
                grad_q[:, f] = 0.0
            t += 1
            rows, grad = _sum_rows(u, grad_p)
            adam_p.step(p, rows, grad, t)
            rows, grad = _sum_rows(np.concatenate([i, j]), grad_q)
            adam_q.step(q, rows, grad, t)
    return p, q


class _Positives:
    """Membership test for (user, item) cells: a bitmap when it is small, else a
    binary search in the sorted cell keys."""

    BITMAP_MAX_CELLS = 1 << 26  # 64 MiB of booleans

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int,
                 n_items: int) -> None:
        self.n_items = n_items
        keys = users * n_items + items
        if n_users * n_items <= self.BITMAP_MAX_CELLS:
            self.bitmap: np.ndarray | None = np.zeros(n_users * n_items, dtype=bool)
            self.bitmap[keys] = True
        else:
            self.bitmap = None
            self.keys = np.sort(keys)

    def has(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        if self.bitmap is not None:
            return self.bitmap[keys]
        if not len(self.keys):
            return np.zeros(len(keys), dtype=bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[pos] == keys
