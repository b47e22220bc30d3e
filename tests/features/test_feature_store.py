"""The item_features table: migration 0002, versioned vectors, incremental recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from recsdk.features.feature_store import FeatureStore, decode_vector, encode_vector
from recsdk.storage.migrate import current, upgrade
from recsdk.storage.models import Base
from recsdk.storage.store import Store


@pytest.fixture
def feature_store(tmp_path) -> FeatureStore:
    store = Store(f"sqlite:///{tmp_path / 'features.db'}")
    store.upgrade()
    yield FeatureStore(store)
    store.close()


class CountingEncoder:
    """Upper-case letter counts of a text; remembers which texts it was asked for."""

    def __init__(self, sparse: bool = False) -> None:
        self.sparse = sparse
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray | sp.csr_matrix:
        self.calls.append(list(texts))
        rows = np.array([[t.count(c) for c in "ABCD"] for t in texts], dtype=np.float32)
        return sp.csr_matrix(rows) if self.sparse else rows


def _sync(fs: FeatureStore, encoder: CountingEncoder, ids: list[str], texts: list[str],
          version: str = "v1"):
    return fs.sync("text:test", version, ids, texts, lambda pos: encoder([texts[p]
                                                                          for p in pos]))


def test_migration_0002_creates_the_table_and_matches_the_models(feature_store):
    engine = feature_store.engine
    assert current(engine) is not None
    columns = {c["name"] for c in inspect(engine).get_columns("item_features")}
    assert {"item_id", "name", "version", "content_hash", "vector", "updated_at"} <= columns
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    assert [d for d in diff if "item_features" in repr(d)] == []


def test_only_changed_items_are_recomputed(feature_store):
    encoder = CountingEncoder()
    ids = ["i1", "i2", "i3"]
    matrix, report = _sync(feature_store, encoder, ids, ["AAB", "C", "DD"])
    assert (report.computed, report.reused) == (3, 0)
    assert matrix.tolist() == [[2, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 2]]
    matrix, report = _sync(feature_store, encoder, [*ids, "i4"], ["AAB", "CC", "DD", "A"])
    assert (report.computed, report.reused) == (2, 2)
    assert encoder.calls[-1] == ["CC", "A"]  # only the changed and the new item
    assert matrix.tolist() == [[2, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2], [1, 0, 0, 0]]
    _, report = _sync(feature_store, encoder, ids, ["AAB", "CC", "DD"], version="v2")
    assert report.computed == 3  # a new extractor version invalidates everything
    stored, found = feature_store.load("text:test", ["i4", "i1", "nope"])
    assert found.tolist() == [True, True, False]
    assert stored.tolist() == [[1, 0, 0, 0], [2, 1, 0, 0], [0, 0, 0, 0]]


def test_sparse_vectors_round_trip(feature_store):
    encoder = CountingEncoder(sparse=True)
    first, _ = _sync(feature_store, encoder, ["a", "b"], ["ABBA", ""])
    again, report = _sync(feature_store, encoder, ["a", "b"], ["ABBA", ""])
    assert report.reused == 2 and sp.issparse(again)
    assert np.array_equal(again.toarray(), first.toarray())


def test_vectors_are_stored_as_numpy_files_never_pickles():
    fmt, dim, blob = encode_vector(np.array([[1.5, 2.0]], dtype=np.float32))
    assert (fmt, dim) == ("dense", 2) and blob.startswith(b"\x93NUMPY")
    assert decode_vector(fmt, dim, blob).tolist() == [[1.5, 2.0]]
    with pytest.raises(ValueError, match="unknown stored feature format"):
        decode_vector("pickle", 2, blob)


def test_delete_and_bad_input(feature_store):
    encoder = CountingEncoder()
    _sync(feature_store, encoder, ["a", "b"], ["A", "B"])
    assert feature_store.delete("text:test", ["a"]) == 1
    assert feature_store.load("text:test", ["a", "b"])[1].tolist() == [False, True]
    assert feature_store.delete() == 1
    with pytest.raises(ValueError, match="1 contents for 2 items"):
        feature_store.sync("x", "v", ["a", "b"], ["A"], encoder)
    with pytest.raises(ValueError, match="must not repeat"):
        feature_store.sync("x", "v", ["a", "a"], ["A", "A"], encoder)
    with pytest.raises(ValueError, match="encode returned 1 rows for 2"):
        feature_store.sync("x", "v", ["a", "b"], ["A", "B"], lambda pos: np.zeros((1, 4)))
    _sync(feature_store, encoder, ["a"], ["A"])
    with pytest.raises(ValueError, match="widths"):
        feature_store.sync("text:test", "v1", ["a", "c"], ["A", "C"],
                           lambda pos: np.zeros((len(pos), 7)))


def test_upgrade_is_idempotent(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'twice.db'}")
    upgrade(store.engine)
    upgrade(store.engine)
    assert "item_features" in inspect(store.engine).get_table_names()
    store.close()
