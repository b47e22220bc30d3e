"""Row-vector helpers shared by the feature blocks: unit rows, weighted cosine, npz packing.

Blocks are dense ``float32`` arrays or scipy CSR matrices (TF-IDF and multi-hot blocks
are mostly zeros). Keeping them apart, instead of one concatenated matrix, lets each
block keep its own format and lets a missing block (no image) count as unknown.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

Matrix = np.ndarray | sp.csr_matrix


def row_norms(matrix: Matrix) -> np.ndarray:
    """Euclidean norm of every row."""
    if sp.issparse(matrix):
        return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return np.linalg.norm(matrix, axis=1)


def unit_rows(matrix: Matrix) -> Matrix:
    """Rows scaled to length one; all-zero rows stay zero (so they score zero)."""
    norms = row_norms(matrix)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms, dtype=np.float64),
                      where=norms > 0).astype(np.float32)
    if sp.issparse(matrix):
        return sp.csr_matrix(sp.diags(scale) @ matrix, dtype=np.float32)
    return (np.asarray(matrix, dtype=np.float32) * scale[:, None]).astype(np.float32)


def dot_rows(left: Matrix, right: Matrix) -> np.ndarray:
    """``left @ right.T`` as a dense float64 array."""
    out = left @ right.T
    if sp.issparse(out):
        out = out.toarray()
    return np.asarray(out, dtype=np.float64)


def has_rows(matrix: Matrix) -> np.ndarray:
    """Which rows hold any non-zero value.

    Reads the matrix without changing it: a loaded run's matrices are memory-mapped
    read-only (and shared by the serving processes), so no ``eliminate_zeros``."""
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
        seen = np.concatenate(([0], np.cumsum(csr.data != 0)))
        return seen[csr.indptr[1:]] > seen[csr.indptr[:-1]]
    return np.any(np.asarray(matrix) != 0, axis=1)


def weighted_cosine(queries: Mapping[str, Matrix], items: Mapping[str, Matrix],
                    weights: Mapping[str, float],
                    items_present: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Cosine over the concatenation of unit blocks scaled by ``sqrt(weight)``.

    Equal to ``sum_b w_b cos_b / sum_b w_b`` taken over the blocks that both sides
    have (a zero block on either side drops out of numerator and denominator), so an
    item without an image is compared on its other blocks instead of being penalised.
    Both sides must already have unit rows; ``items_present`` may pass precomputed
    :func:`has_rows` of the item blocks. Returns NaN where no block is shared.
    """
    names = [b for b, w in weights.items() if w > 0 and b in queries and b in items]
    if not names:
        raise ValueError("no feature block is shared by queries and items")
    shape = (queries[names[0]].shape[0], items[names[0]].shape[0])
    total = np.zeros(shape)
    present = np.zeros(shape)
    for name in names:
        q, x = queries[name], items[name]
        total += weights[name] * dot_rows(q, x)
        has_x = items_present[name] if items_present is not None else has_rows(x)
        present += weights[name] * np.outer(has_rows(q), has_x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present > 0, total / present, np.nan)


def weighted_mean_rows(matrix: Matrix, rows: np.ndarray, weights: np.ndarray) -> Matrix:
    """One row: the ``weights``-weighted mean of ``matrix[rows]`` (a profile vector)."""
    w = sp.csr_matrix((weights.astype(np.float32), (np.zeros(len(rows), dtype=np.int64),
                                                     rows)), shape=(1, matrix.shape[0]))
    out = w @ matrix
    return sp.csr_matrix(out) if sp.issparse(out) else np.asarray(out, dtype=np.float32)


def pack(prefix: str, matrix: Matrix) -> dict[str, np.ndarray]:
    """Arrays that :func:`unpack` turns back into ``matrix`` (for ``.npz`` state)."""
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
        return {f"{prefix}.data": csr.data, f"{prefix}.indices": csr.indices,
                f"{prefix}.indptr": csr.indptr, f"{prefix}.shape": np.array(csr.shape)}
    return {f"{prefix}.dense": np.asarray(matrix)}


def unpack(prefix: str, state: Mapping[str, np.ndarray]) -> Matrix:
    if f"{prefix}.dense" in state:
        return np.asarray(state[f"{prefix}.dense"])
    shape = tuple(int(s) for s in state[f"{prefix}.shape"])
    return sp.csr_matrix((state[f"{prefix}.data"], state[f"{prefix}.indices"],
                          state[f"{prefix}.indptr"]), shape=shape)


def packed_names(state: Mapping[str, np.ndarray], prefix: str) -> list[str]:
    """Names ``x`` for which ``{prefix}x.dense`` or ``{prefix}x.shape`` is in ``state``."""
    out = set()
    for key in state:
        if key.startswith(prefix) and key.endswith((".dense", ".shape")):
            out.add(key[len(prefix):].rsplit(".", 1)[0])
    return sorted(out)


def stack_rows(blocks: list[Matrix]) -> Matrix:
    """Vertical stack of same-kind matrices."""
    if any(sp.issparse(b) for b in blocks):
        return sp.csr_matrix(sp.vstack([sp.csr_matrix(b) for b in blocks]))
    return np.vstack(blocks)
