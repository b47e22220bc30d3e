"""The blocked top-K similarity: block size never changes the answer; ties are stable."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from recsdk_plugins.knn.similarity import Similarity, neighbours, squared_norms, top_k_rows


def random_vectors(n: int, d: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n, d)) < 0.3) * rng.integers(1, 4, size=(n, d))
    return sp.csr_matrix(dense.astype(np.float64))


@pytest.mark.parametrize("kind", ["cosine", "asymmetric_cosine", "jaccard"])
@pytest.mark.parametrize("block_cells", [1, 7, 40, 10_000])
def test_block_size_does_not_change_the_neighbours(kind: str, block_cells: int) -> None:
    vectors = random_vectors(23, 11, seed=5)
    sq = squared_norms(vectors)
    sim = Similarity(kind, alpha=0.3, shrink=1.5)
    others_t = sp.csr_matrix(vectors.T)
    own = np.arange(23)
    reference = neighbours(vectors, others_t, sq, sq, sim, 4, own, block_cells=10**9)
    blocked = neighbours(vectors, others_t, sq, sq, sim, 4, own, block_cells=block_cells)
    np.testing.assert_array_equal(blocked.toarray(), reference.toarray())
    assert (np.diff(reference.indptr) <= 4).all() and reference.diagonal().sum() == 0


def test_top_k_rows_keeps_the_largest_positive_and_breaks_ties_by_index() -> None:
    m = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, -1.0, 0.5],
                                [0.0, -2.0, 0.0, 0.0, 0.1]]))
    kept = top_k_rows(m, 2).toarray()
    np.testing.assert_array_equal(kept, [[0.5, 0.9, 0, 0, 0], [0, 0, 0, 0, 0.1]])


def test_squared_norms() -> None:
    m = sp.csr_matrix(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(squared_norms(m), [25.0, 0.0])
