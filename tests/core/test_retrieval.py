"""Embedding retrieval: exact search, the faiss HNSW index, and its trip through the store."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from recsdk import retrieval
from recsdk.registry import ModelRegistry
from recsdk.retrieval import (
    AUTO_HNSW_MIN_ITEMS,
    EF_REFERENCE_ITEMS,
    EmbeddingRetriever,
    HnswIndex,
    build_retriever,
    resolve_index_kind,
    scaled_ef_search,
)
from recsdk.storage import models
from recsdk.storage.database import make_engine


def vectors(n: int = 2000, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) * rng.lognormal(0, 0.3, (n, 1))).astype(np.float32)


def recall(index: HnswIndex, data: np.ndarray, queries: np.ndarray, n: int) -> float:
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :n]
    found = index.search(queries, n)[0]
    return float(np.mean([len(set(a) & set(b)) / n for a, b in zip(found, exact,
                                                                    strict=True)]))


def test_hnsw_recall_on_random_vectors_is_high():
    data = vectors()
    queries = np.random.default_rng(1).normal(size=(50, 16)).astype(np.float32)
    index = HnswIndex.build(data, m=16, ef_construction=100, ef_search=128)
    assert len(index) == 2000 and index.dim == 16
    assert recall(index, data, queries, 20) >= 0.95


def test_index_round_trip_through_the_artifact_store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    models.Base.metadata.create_all(engine)
    registry = ModelRegistry(engine, tmp_path / "artifacts", inline_max_bytes=1 << 20)
    run = registry.begin_run("cfg", ["p"])
    data = vectors(500)
    index = HnswIndex.build(data, m=8, ef_construction=40, ef_search=50)
    index.save(registry.writer(run, "plugin:p"), "items.faiss")
    loaded = HnswIndex.load(registry.reader(run, "plugin:p"), "items.faiss", ef_search=50)
    queries = vectors(10, seed=5)
    for got, expected in zip(loaded.search(queries, 10), index.search(queries, 10),
                             strict=True):
        assert np.array_equal(got, expected)
    # the file is faiss's own format, checked by sha256 when read
    path = next((tmp_path / "artifacts").rglob("items.faiss"))
    assert path.read_bytes()[:4] in (b"IHNf", b"IHNs")
    engine.dispose()


def test_zero_vectors_stay_out_of_the_graph_and_hits_keep_their_positions(tmp_path):
    """Items without a training interaction have all-zero factors: left out of the graph
    (they strand its greedy search), while hits are still numbered in the full order,
    also after a trip through the artifact store."""
    data = vectors(2000)
    empty = np.random.default_rng(3).random(2000) < 0.6
    data[empty] = 0.0
    index = HnswIndex.build(data, m=8, ef_construction=40, ef_search=64)
    assert len(index) == int((~empty).sum())
    assert np.array_equal(index.members, np.flatnonzero(~empty))
    queries = np.random.default_rng(4).normal(size=(50, 16)).astype(np.float32)
    found = index.search(queries, 20)[0]
    assert not empty[found.ravel()].any()
    assert recall(index, data, queries, 20) >= 0.95
    ids = [f"i{n}" for n in range(2000)]
    got = EmbeddingRetriever(ids, data, index).retrieve(queries[0], 5)
    assert got.ids == EmbeddingRetriever(ids, data).retrieve(queries[0], 5).ids

    engine = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    models.Base.metadata.create_all(engine)
    registry = ModelRegistry(engine, tmp_path / "artifacts", inline_max_bytes=1 << 20)
    run = registry.begin_run("cfg", ["p"])
    index.save(registry.writer(run, "plugin:p"), "items.faiss")
    loaded = HnswIndex.load(registry.reader(run, "plugin:p"), "items.faiss", ef_search=64)
    assert np.array_equal(loaded.search(queries, 20)[0], found)
    engine.dispose()


def test_retriever_with_an_index_rescored_exactly_and_exact_fallback():
    data = vectors(300)
    ids = [f"i{n}" for n in range(300)]
    query = vectors(1, seed=9)[0]
    exact = EmbeddingRetriever(ids, data).retrieve(query, 10)
    approx = EmbeddingRetriever(ids, data, HnswIndex.build(data, 16, 100, 100)).retrieve(
        query, 10)
    assert approx.ids == exact.ids
    assert np.allclose(approx.scores, exact.scores, atol=1e-5)
    assert EmbeddingRetriever(ids, data).retrieve(np.full(16, np.nan), 10) is None
    with pytest.raises(ValueError, match="index holds 300"):
        EmbeddingRetriever(ids[:10], data[:10], HnswIndex.build(data, 8, 20, 20))


def test_index_kind_resolution():
    assert resolve_index_kind("auto", 100) == "none"
    assert resolve_index_kind("auto", AUTO_HNSW_MIN_ITEMS) == "hnsw"
    assert resolve_index_kind("auto", 500, min_items=100) == "hnsw"
    assert resolve_index_kind("exact", 10) == "exact"
    with pytest.raises(ValueError, match="index must be one of"):
        resolve_index_kind("ivf", 10)


def test_search_list_grows_with_the_index_past_the_reference_size():
    assert scaled_ef_search(512, 10, 0.5) == 512
    assert scaled_ef_search(512, EF_REFERENCE_ITEMS, 0.5) == 512
    # ten times the reference size, square-root growth: 512 * sqrt(10) = 1619.1, rounded up
    assert scaled_ef_search(512, 10 * EF_REFERENCE_ITEMS, 0.5) == 1620
    assert scaled_ef_search(512, 10 * EF_REFERENCE_ITEMS, 1.0) == 5120
    assert scaled_ef_search(512, 10 * EF_REFERENCE_ITEMS, 0.0) == 512


@pytest.mark.parametrize(("ef", "growth", "named"), [
    (0, 0.5, "hnsw_ef_search"), (64, -0.1, "hnsw_ef_growth"), (64, 1.5, "hnsw_ef_growth"),
    (64, float("nan"), "hnsw_ef_growth"),
])
def test_bad_search_list_settings_are_refused_by_name(ef, growth, named):
    with pytest.raises(ValueError, match=named):
        scaled_ef_search(ef, 1000, growth)
    with pytest.raises(ValueError, match=named):
        HnswIndex.build(vectors(50), 8, 20, ef, growth)


def test_the_index_searches_with_the_grown_list(monkeypatch):
    data = vectors(2000)
    index = HnswIndex.build(data, 8, 40, ef_search=20, ef_growth=0.5)
    assert index.effective_ef_search == 20  # 2,000 items: below the reference size
    monkeypatch.setattr(retrieval, "EF_REFERENCE_ITEMS", 500)
    assert index.effective_ef_search == 40  # four times the (patched) reference: x2
    queries = vectors(20, seed=3)
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :20]
    wide = HnswIndex(index.index, ef_search=20, ef_growth=1.0)  # 80 at 2,000 items
    assert wide.effective_ef_search == 80
    found = wide.search(queries, 20)[0]
    assert np.mean([len(set(a) & set(b)) / 20 for a, b in zip(found, exact,
                                                              strict=True)]) >= 0.95


def test_build_retriever_passes_the_growth_to_the_index():
    data = vectors(300)
    ids = [f"i{n}" for n in range(300)]
    got = build_retriever(ids, data, {"index": "hnsw", "hnsw_m": 8,
                                      "hnsw_ef_construction": 20, "hnsw_ef_search": 30,
                                      "hnsw_ef_growth": 0.25})
    assert got is not None and got.index is not None
    assert (got.index.ef_search, got.index.ef_growth) == (30, 0.25)


def test_a_read_index_maps_its_file_so_processes_share_its_pages(tmp_path):
    data = vectors(3000, dim=32)
    path = tmp_path / "items.faiss"
    HnswIndex.build(data, m=8, ef_construction=40, ef_search=50).write(path)
    loaded = HnswIndex.read(path, ef_search=50)
    maps = Path("/proc/self/maps").read_text() if sys.platform == "linux" else ""
    if not maps or not hasattr(retrieval._faiss(), "IO_FLAG_MMAP_IFC"):
        pytest.skip("needs Linux's /proc and a faiss that maps indexes")
    assert str(path) in maps
    queries = vectors(5, dim=32, seed=3)
    assert loaded.search(queries, 10)[0].shape == (5, 10)
