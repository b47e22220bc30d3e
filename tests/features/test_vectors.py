"""Block vectors: unit rows, the weighted cosine over shared blocks, npz packing."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp

from recsdk.features.vectors import (
    has_rows,
    pack,
    packed_names,
    unit_rows,
    unpack,
    weighted_cosine,
)


def test_unit_rows_keep_zero_rows_zero():
    dense = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(dense, [[0.6, 0.8], [0.0, 0.0]])
    sparse = unit_rows(sp.csr_matrix([[0.0, 2.0], [0.0, 0.0]]))
    assert sp.issparse(sparse) and np.allclose(sparse.toarray(), [[0.0, 1.0], [0.0, 0.0]])
    assert has_rows(sparse).tolist() == [True, False]


def test_has_rows_reads_a_read_only_matrix_without_changing_it(tmp_path):
    """A loaded run's matrices are memory-mapped read-only: has_rows must not write
    (it once called eliminate_zeros, and the content plugin failed to load)."""
    parts = {"data": np.array([0.0, 2.0, 0.0, 1.0], dtype=np.float32),
             "indices": np.array([0, 1, 0, 1], dtype=np.int32),
             "indptr": np.array([0, 1, 2, 2, 4], dtype=np.int32)}
    mapped = {}
    for key, value in parts.items():
        np.save(tmp_path / f"{key}.npy", value)
        mapped[key] = np.load(tmp_path / f"{key}.npy", mmap_mode="r")
    matrix = sp.csr_matrix((mapped["data"], mapped["indices"], mapped["indptr"]),
                           shape=(4, 2))
    # row 0: an explicit zero only; row 2: empty; row 3: a zero and a value
    assert has_rows(matrix).tolist() == [False, True, False, True]
    assert matrix.nnz == 4 and np.shares_memory(matrix.data, mapped["data"])


def test_weighted_cosine_averages_over_shared_blocks():
    query = {"a": unit_rows(np.array([[1.0, 0.0]])), "b": unit_rows(np.array([[0.0, 1.0]]))}
    items = {
        "a": unit_rows(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])),
        "b": unit_rows(sp.csr_matrix([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])),
    }
    scores = weighted_cosine(query, items, {"a": 3.0, "b": 1.0})[0]
    assert scores[0] == pytest.approx(1.0)  # both blocks agree
    assert scores[1] == pytest.approx(3.0 / 4.0)  # only the heavier block agrees
    assert scores[2] == pytest.approx(1.0)  # block a unknown: judged on block b alone
    assert np.isnan(scores[3])  # nothing shared: cannot score
    # equal to cosine over the concatenation of sqrt(weight)-scaled unit blocks
    both = np.hstack([np.sqrt(3.0) * items["a"], items["b"].toarray()])[:2]
    q = np.hstack([np.sqrt(3.0) * query["a"], query["b"]])
    cos = (both @ q.T).ravel() / (np.linalg.norm(both, axis=1) * np.linalg.norm(q))
    assert np.allclose(scores[:2], cos)
    with pytest.raises(ValueError, match="no feature block"):
        weighted_cosine(query, items, {"c": 1.0})


def test_pack_round_trips_through_npz():
    state = {**pack("block.text", sp.csr_matrix([[0, 1.5], [2.0, 0]], dtype=np.float32)),
             **pack("block.image", np.eye(2, dtype=np.float32))}
    buf = io.BytesIO()
    np.savez(buf, **state)
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    assert packed_names(loaded, "block.") == ["image", "text"]
    assert np.array_equal(unpack("block.text", loaded).toarray(), [[0, 1.5], [2.0, 0]])
    assert np.array_equal(unpack("block.image", loaded), np.eye(2))
