"""Evaluation metrics on top-k lists, vectorised over users.

Lists are an ``(n_users, k)`` array of item codes, best first, ``-1`` where a list is
shorter than ``k``. Relevance is binary (an item in the user's test set is relevant).
Accuracy functions return one value per user so callers can average, bootstrap or plot
them; formulas are in ``docs/evaluation.md`` and follow RecBole and trec_eval.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Upper bound on pairs held in memory at once by the diversity measures.
PAIR_CHUNK = 2_000_000


def hit_matrix(ranked: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """``hits[u, j]``: is the item at position ``j`` of user ``u``'s list relevant to ``u``."""
    n_items = relevant.shape[1]
    if not relevant.has_canonical_format:
        relevant = relevant.copy()
        relevant.sum_duplicates()
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    truth_keys = rows * n_items + relevant.indices  # sorted: canonical CSR is row-major
    listed = ranked >= 0
    keys = np.arange(len(ranked), dtype=np.int64)[:, None] * n_items + np.where(listed, ranked, 0)
    if len(truth_keys) == 0:
        return np.zeros(ranked.shape, dtype=bool)
    found = np.searchsorted(truth_keys, keys)
    return (truth_keys[np.minimum(found, len(truth_keys) - 1)] == keys) & listed


def precision(hits: np.ndarray) -> np.ndarray:
    """Relevant items in the top k over k (a short list still divides by k)."""
    return hits.sum(axis=1) / hits.shape[1]


def recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Relevant items in the top k over all of the user's relevant items."""
    return hits.sum(axis=1) / n_relevant


def f1(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user harmonic mean of precision and recall (0 when both are 0)."""
    p, r = precision(hits), recall(hits, n_relevant)
    total = p + r
    return np.divide(2 * p * r, total, out=np.zeros_like(total), where=total > 0)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """DCG with a log2 discount over the ideal DCG of min(|relevant|, k) hits at the top."""
    k = hits.shape[1]
    discounts = _discounts(k)
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    return (hits @ discounts) / ideal


def average_precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Sum of precision at each hit's position, over min(|relevant|, k) (RecBole's MAP@k)."""
    k = hits.shape[1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return (precision_at * hits).sum(axis=1) / np.minimum(n_relevant, k)


def reciprocal_rank(hits: np.ndarray) -> np.ndarray:
    """1 / position of the first hit within the top k, 0 without a hit."""
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def hit_rate(hits: np.ndarray) -> np.ndarray:
    """1 when the top k holds at least one relevant item."""
    return hits.any(axis=1).astype(float)


def auc(hits: np.ndarray, listed_negative: np.ndarray, n_relevant: np.ndarray,
        n_negative: np.ndarray) -> np.ndarray:
    """Share of (relevant, non-relevant) candidate pairs the list puts in the right order.

    The top k is ranked; every candidate outside it ties below it (a tie counts one
    half), as in the Mann-Whitney form of the ROC AUC. ``listed_negative`` marks list
    positions holding a non-relevant candidate. NaN where a user has no negative.
    """
    negatives_above = np.cumsum(listed_negative, axis=1) - listed_negative
    n_hits = hits.sum(axis=1)
    ranked_pairs = np.where(hits, n_negative[:, None] - negatives_above, 0).sum(axis=1)
    tied_pairs = 0.5 * (n_relevant - n_hits) * (n_negative - listed_negative.sum(axis=1))
    pairs = (n_relevant * n_negative).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (ranked_pairs + tied_pairs) / pairs, np.nan)


def coverage(ranked: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    return len(np.unique(ranked[ranked >= 0])) / n_items


def _mean_over_list(ranked: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-user mean of ``values[item]`` over the listed items; NaN for an empty list."""
    listed = ranked >= 0
    total = np.where(listed, values[np.where(listed, ranked, 0)], 0.0).sum(axis=1)
    count = listed.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def self_information(popularity: np.ndarray, n_users: int) -> np.ndarray:
    """-log2 of the share of training users who had each item (an unseen item counts as 1)."""
    return -np.log2(np.maximum(popularity, 1.0) / n_users)


def novelty(ranked: np.ndarray, popularity: np.ndarray, n_users: int) -> np.ndarray:
    """Per-user mean self-information of the recommended items (higher: less obvious)."""
    return _mean_over_list(ranked, self_information(popularity, n_users))


def average_popularity(ranked: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per-user mean training popularity of the recommended items (ARP)."""
    return _mean_over_list(ranked, popularity.astype(float))


def exposure(ranked: np.ndarray, n_items: int) -> np.ndarray:
    """How many lists each item appears in."""
    return np.bincount(ranked[ranked >= 0], minlength=n_items).astype(float)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 equal, towards 1 concentrated."""
    x = np.sort(np.asarray(values, dtype=float))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def _pair_chunks(ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    k = ranked.shape[1]
    first, second = np.triu_indices(k, 1)
    rows = max(1, PAIR_CHUNK // max(len(first), 1))
    return first, second, rows


def category_diversity(ranked: np.ndarray, categories: sp.csr_matrix) -> np.ndarray:
    """Per-user mean Jaccard distance between the category sets of listed item pairs.

    ``categories`` is items x categories (binary). With one category per item this is
    the share of pairs in different categories. Items without a category are left out;
    NaN for a list with fewer than two categorised items.
    """
    categories = sp.csr_matrix(categories, dtype=np.float64)
    sizes = np.asarray(categories.sum(axis=1)).ravel()
    first, second, rows = _pair_chunks(ranked)
    out = np.full(len(ranked), np.nan)
    for start in range(0, len(ranked), rows):
        chunk = ranked[start:start + rows]
        codes = np.where(chunk >= 0, chunk, 0)
        a, b = codes[:, first], codes[:, second]
        shared = np.asarray(
            categories[a.ravel()].multiply(categories[b.ravel()]).sum(axis=1)
        ).reshape(a.shape)
        known = (chunk[:, first] >= 0) & (chunk[:, second] >= 0) & (sizes[a] > 0) & (sizes[b] > 0)
        union = np.where(known, sizes[a] + sizes[b] - shared, 1.0)
        distance = np.where(known, 1.0 - shared / union, 0.0)
        pairs = known.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + rows] = np.where(pairs > 0, distance.sum(axis=1) / pairs, np.nan)
    return out


def embedding_diversity(ranked: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Per-user mean cosine distance (1 - cos) between listed item pairs.

    ``vectors`` has one row per item code; a row of NaN marks an item without a vector,
    which is left out. NaN for a list with fewer than two such items.
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, vectors / norms, np.nan)
    has_vector = np.isfinite(unit).all(axis=1)
    unit = np.nan_to_num(unit)
    first, second, rows = _pair_chunks(ranked)
    out = np.full(len(ranked), np.nan)
    for start in range(0, len(ranked), rows):
        chunk = ranked[start:start + rows]
        codes = np.where(chunk >= 0, chunk, 0)
        usable = (chunk >= 0) & has_vector[codes]
        listed = unit[codes]
        cosine = np.einsum("nid,njd->nij", listed, listed)[:, first, second]
        known = usable[:, first] & usable[:, second]
        pairs = known.sum(axis=1)
        total = np.where(known, 1.0 - cosine, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + rows] = np.where(pairs > 0, total / pairs, np.nan)
    return out


def rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error of rating predictions."""
    from sklearn.metrics import root_mean_squared_error  # slow import: only when used

    return float(root_mean_squared_error(truth, predicted))


def mae(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error of rating predictions."""
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(truth, predicted))
