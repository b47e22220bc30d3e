"""Embedding retrieval: any model with user and item vectors can serve as a retriever.

A plugin that learns item vectors (matrix factorisation, a two-tower model) answers
``recsdk_retrieve_candidates`` with ``EmbeddingRetriever.retrieve``: the ``n`` items
whose vectors have the highest inner product with the user's vector. Exact search
here; an ANN index (faiss) can replace :meth:`EmbeddingRetriever.search` for
catalogues where a full matrix-vector product per request is too slow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsdk.types import Retrieved


class EmbeddingRetriever:
    """Top-``n`` items by inner product between a query vector and item vectors."""

    def __init__(self, item_ids: Sequence[str], item_vectors: np.ndarray) -> None:
        vectors = np.asarray(item_vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(item_ids):
            raise ValueError(f"item_vectors must be (n_items={len(item_ids)}, dim); got "
                             f"shape {vectors.shape}")
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.item_vectors = vectors

    def search(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the best ``n`` items, best first (exact)."""
        scores = self.item_vectors @ np.asarray(query, dtype=np.float32)
        n = min(n, len(scores))
        if n <= 0:
            return np.array([], dtype=np.int64), np.array([], dtype=np.float32)
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]

    def retrieve(self, query: np.ndarray | None, n: int) -> Retrieved | None:
        """The retriever's answer for one user; None (abstain) without a query vector."""
        if query is None or not np.all(np.isfinite(query)):
            return None
        top, scores = self.search(query, n)
        return Retrieved(list(self.item_ids[top]), [float(s) for s in scores])
