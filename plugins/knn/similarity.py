"""Sparse top-K similarities between weighted vectors, in bounded memory.

For a query vector ``q`` (the target item, or the user asking) and another vector
``v`` (a candidate neighbour), with ``q.v`` their dot product, ``|q|^2`` and ``|v|^2``
their squared norms and ``shrink >= 0``:

* ``cosine``:            ``s(q, v) = q.v / (|q| |v| + shrink)``
* ``asymmetric_cosine``: ``s(q, v) = q.v / (|q|^(2 alpha) |v|^(2 (1 - alpha)) + shrink)``
  (Aiolli 2013; on 0/1 data ``|U(q) & U(v)| / (|U(q)|^alpha |U(v)|^(1 - alpha))``,
  ``alpha = 0.5`` is the cosine)
* ``jaccard``:           ``s(q, v) = q.v / (|q|^2 + |v|^2 - q.v + shrink)``
  (the Tanimoto form; on 0/1 data exactly ``|U(q) & U(v)| / |U(q) | U(v)|``)

A vector is never its own neighbour. Only the ``k`` largest positive similarities of
each query are kept (ties go to the lower index). The product ``Q V^T`` is formed a
block of query rows at a time, sized so that a block holds at most ``BLOCK_CELLS``
cells even when dense: memory stays ``O(BLOCK_CELLS + n_queries * k)`` whatever the
catalogue size, and the work is proportional to the co-occurrences, not to ``n^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

SIMILARITIES = ("cosine", "asymmetric_cosine", "jaccard")
#: Cells (queries x others) of one block of the similarity product, dense worst case.
BLOCK_CELLS = 2**23


@dataclass(frozen=True)
class Similarity:
    """One of :data:`SIMILARITIES` with its ``alpha`` (asymmetric cosine) and ``shrink``."""

    kind: str = "cosine"
    alpha: float = 0.5
    shrink: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.kind!r}; choose from {SIMILARITIES}")

    def scale(self, dots: np.ndarray, query_sq: np.ndarray,
              other_sq: np.ndarray) -> np.ndarray:
        """Similarities from dot products and the squared norms of both sides."""
        if self.kind == "cosine":
            denom = np.sqrt(query_sq) * np.sqrt(other_sq)
        elif self.kind == "asymmetric_cosine":
            denom = np.power(query_sq, self.alpha) * np.power(other_sq, 1.0 - self.alpha)
        else:
            denom = query_sq + other_sq - dots
        denom = denom + self.shrink
        return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)


def squared_norms(vectors: sp.csr_matrix) -> np.ndarray:
    """Squared Euclidean norm of every row."""
    squared = vectors.multiply(vectors)
    return np.asarray(squared.sum(axis=1), dtype=np.float64).ravel()


def top_k_rows(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``matrix`` with only each row's ``k`` largest positive entries left."""
    m = sp.csr_matrix(matrix)
    m.data[m.data <= 0] = 0.0
    m.eliminate_zeros()
    counts = np.diff(m.indptr)
    if not len(counts) or counts.max(initial=0) <= k:
        return m
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((m.indices, -m.data, rows))  # by row, value down, index up
    rank = np.arange(m.nnz) - m.indptr[rows[order]]
    keep = order[rank < k]
    kept = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
    kept.sort_indices()
    return kept


def neighbours(queries: sp.csr_matrix, others_t: sp.csr_matrix, query_sq: np.ndarray,
               other_sq: np.ndarray, similarity: Similarity, k: int,
               self_columns: np.ndarray | None = None,
               block_cells: int = BLOCK_CELLS) -> sp.csr_matrix:
    """Each query's ``k`` nearest others: a ``n_queries x n_others`` CSR matrix.

    ``queries``: queries x features; ``others_t``: features x others (the others'
    vectors as columns, CSR so that a query row touches only the features it has).
    ``self_columns[i]``: the column that is query ``i`` itself (never its neighbour),
    -1 for none.
    """
    n_queries, n_others = queries.shape[0], others_t.shape[1]
    block = max(1, block_cells // max(n_others, 1))
    parts = []
    for start in range(0, n_queries, block):
        stop = min(start + block, n_queries)
        dots = sp.csr_matrix(queries[start:stop] @ others_t, dtype=np.float64)
        rows = np.repeat(np.arange(stop - start), np.diff(dots.indptr))
        dots.data = similarity.scale(dots.data, query_sq[start + rows], other_sq[dots.indices])
        if self_columns is not None:
            own = self_columns[start:stop][rows]
            dots.data[dots.indices == own] = 0.0
        parts.append(top_k_rows(dots, k).astype(np.float32))
    if not parts:
        return sp.csr_matrix((n_queries, n_others), dtype=np.float32)
    return sp.csr_matrix(sp.vstack(parts, format="csr"))
