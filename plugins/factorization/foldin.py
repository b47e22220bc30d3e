"""Fold-in: a user vector from a user's current row, with the item factors held fixed.

A user who acted after training (or one the model never saw) has no stored factors,
or stale ones. Each model's own per-user objective, with the item side fixed, is
concave (or convex) in the user's vector, so it has one optimum, found here:

* ALS: the same weighted ridge regression an ALS half-step solves (Hu, Koren &
  Volinsky 2008, eq. 4; implicit's ``recalculate_user``), in closed form, batched;
* BPR: the BPR log-likelihood of the user's positives ranked over the other items
  (Rendle et al. 2009), with the L2 penalty of training, by L-BFGS;
* LMF: the logistic likelihood of Johnson (2014) with the negatives weighted as
  implicit samples them (``neg_prop`` per positive), by L-BFGS.

Negatives are all non-positive items up to ``MAX_NEGATIVES``, a seeded sample beyond,
so a request costs O(positives x MAX_NEGATIVES x factors) at most.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, log_expit

#: Negatives used per fold-in; more items than this are sampled (seeded).
MAX_NEGATIVES = 2048
#: L-BFGS iterations per fold-in: the problems are small and smooth.
MAX_ITERATIONS = 100
SEED = 0


def als_gram(item_factors: np.ndarray) -> np.ndarray:
    """Y'Y in float64: the part of every user's ALS system that does not depend on the
    user, O(items x factors^2); the plugin computes it once per model, not per request."""
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def als_fold_in(rows: sp.csr_matrix, item_factors: np.ndarray, regularization: float,
                alpha: float, gram: np.ndarray | None = None) -> np.ndarray:
    """ALS user factors of every row at once (one f x f solve per row).

    implicit's convention: confidence c = alpha x value for observed cells and 1
    elsewhere, preference 1 where observed: (YtY + Y_o'(C_o - I)Y_o + reg I) x = Y_o'c_o.
    ``gram``: Y'Y (:func:`als_gram`) when the caller keeps it; else computed here.
    """
    rows = sp.csr_matrix(rows, dtype=np.float64)
    f = item_factors.shape[1]
    base = (als_gram(item_factors) if gram is None else gram) + regularization * np.eye(f)
    out = np.zeros((rows.shape[0], f))
    for u in range(rows.shape[0]):
        lo, hi = rows.indptr[u], rows.indptr[u + 1]
        if lo == hi:
            continue
        yo = np.asarray(item_factors[rows.indices[lo:hi]], dtype=np.float64)
        c = alpha * rows.data[lo:hi]
        a = base + (yo.T * (c - 1.0)) @ yo
        out[u] = np.linalg.solve(a, yo.T @ c)
    return out


def _negatives(n_items: int, positives: np.ndarray) -> np.ndarray:
    mask = np.ones(n_items, dtype=bool)
    mask[positives] = False
    negatives = np.flatnonzero(mask)
    if len(negatives) > MAX_NEGATIVES:
        negatives = np.sort(np.random.default_rng(SEED).choice(
            negatives, MAX_NEGATIVES, replace=False))
    return negatives


def _sides(item_factors: np.ndarray, positives: np.ndarray, factors: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Latent factors and biases (float64) of the positives and of every other item;
    None without positives, or when no item is left to be a negative. Only the rows used
    are converted, not a float64 copy of every item's factors per request."""
    if not len(positives):
        return None
    q_all = np.asarray(item_factors)
    negatives = _negatives(len(q_all), positives)
    if not len(negatives):
        return None
    qp, qn = (np.asarray(q_all[i, :factors], dtype=np.float64) for i in (positives, negatives))
    bp, bn = (np.asarray(q_all[i, factors], dtype=np.float64) for i in (positives, negatives))
    return qp, qn, bp, bn


def bpr_fold_in(row: sp.csr_matrix, item_factors: np.ndarray, factors: int,
                regularization: float) -> np.ndarray | None:
    """BPR user vector ``[p, 1]`` (implicit's layout: items are ``[q, bias]``).

    Maximises mean over positives i and negatives j of ln sigmoid(s_i - s_j) minus
    reg/2 |p|^2, with s = Q p + b: the per-sample objective implicit's SGD follows.
    """
    positives = np.unique(row.indices[row.data > 0])
    sides = _sides(item_factors, positives, factors)
    if sides is None:
        return None
    qp, qn, bp, bn = sides
    scale = 1.0 / (len(qp) * len(qn))

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        x = (qp @ p + bp)[:, None] - (qn @ p + bn)[None, :]
        z = expit(-x)  # d ln sigmoid(x) / dx
        grad = scale * (z.sum(axis=1) @ qp - z.sum(axis=0) @ qn) - regularization * p
        value = scale * log_expit(x).sum() - 0.5 * regularization * p @ p
        return -value, -grad

    p = minimize(loss, np.zeros(factors), jac=True, method="L-BFGS-B",
                 options={"maxiter": MAX_ITERATIONS}).x
    return np.append(p, 1.0)


def lmf_fold_in(row: sp.csr_matrix, item_factors: np.ndarray, factors: int,
                regularization: float, neg_prop: int) -> np.ndarray | None:
    """LMF user vector ``[p, 1, user_bias]`` (implicit's layout: items ``[q, bias, 1]``).

    Maximises sum over positives of c_i ln sigmoid(x_i) plus w sum over negatives of
    ln sigmoid(-x_j) minus reg/2 |p|^2, x = Q p + b + user_bias, where c is the row's
    weight and w = neg_prop x positives / negatives: implicit's sampled negatives in
    expectation.
    """
    keep = row.data > 0
    positives, weights = row.indices[keep], row.data[keep].astype(np.float64)
    sides = _sides(item_factors, positives, factors)
    if sides is None:
        return None
    qp, qn, bp, bn = sides
    w = neg_prop * len(qp) / len(qn)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, bias = theta[:factors], theta[factors]
        xp, xn = qp @ p + bp + bias, qn @ p + bn + bias
        gp, gn = weights * expit(-xp), -w * expit(xn)
        value = (weights @ log_expit(xp) + w * log_expit(-xn).sum()
                 - 0.5 * regularization * p @ p)
        grad = np.append(gp @ qp + gn @ qn - regularization * p, gp.sum() + gn.sum())
        return -value, -grad

    theta = minimize(loss, np.zeros(factors + 1), jac=True, method="L-BFGS-B",
                     options={"maxiter": MAX_ITERATIONS}).x
    return np.concatenate([theta[:factors], [1.0], theta[factors:]])
