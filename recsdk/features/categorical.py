"""Multi-hot blocks for an item's category path (with every ancestor) and its tags.

Encoding the whole path, not only the leaf, makes two items in sibling leaves of one
department similar (they share the department's and the root's columns) while items
of the same leaf are the most similar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.catalog import CategoryTree
from recsdk.errors import NotTrainedError


def _multi_hot(rows: Sequence[Iterable[str]], index: Mapping[str, int]) -> sp.csr_matrix:
    indptr = [0]
    indices: list[int] = []
    for row in rows:
        cols = sorted({index[v] for v in row if v in index})
        indices.extend(cols)
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, np.asarray(indices, dtype=np.int32), np.asarray(indptr)),
                         shape=(len(rows), len(index)))


def normalise_tags(value: Any) -> list[str]:
    """Tags as lower-case stripped strings; accepts a list, a comma string or nothing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [t.strip().lower() for t in value if str(t).strip()]


def item_tags(items: pd.DataFrame) -> list[list[str]]:
    if "tags" not in items:
        return [[] for _ in range(len(items))]
    return [normalise_tags(v) for v in items["tags"].tolist()]


def item_paths(items: pd.DataFrame, tree: CategoryTree) -> list[list[str]]:
    """Root-first category path of every item (empty when it has no category)."""
    if "category_id" not in items:
        return [[] for _ in range(len(items))]
    cache: dict[Any, list[str]] = {}
    out = []
    for category in items["category_id"].tolist():
        key = None if category is None or pd.isna(category) else str(category)
        if key not in cache:
            cache[key] = tree.path(key) if key is not None else []
        out.append(cache[key])
    return out


class CategoryPathEncoder:
    """One column per category node; an item has a one at its leaf and every ancestor."""

    name = "category"

    def fit(self, paths: Sequence[Sequence[str]], tree: CategoryTree) -> CategoryPathEncoder:
        nodes = set(tree.parents) | {n for p in paths for n in p}
        self.nodes_ = np.array(sorted(nodes), dtype=str)
        self._index = {n: i for i, n in enumerate(self.nodes_)}
        return self

    def transform(self, paths: Sequence[Sequence[str]]) -> sp.csr_matrix:
        if not hasattr(self, "nodes_"):
            raise NotTrainedError("CategoryPathEncoder.transform called before fit")
        return _multi_hot(paths, self._index)

    def state(self) -> dict[str, np.ndarray]:
        return {"nodes": self.nodes_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> CategoryPathEncoder:
        self.nodes_ = np.asarray(state["nodes"]).astype(str)
        self._index = {n: i for i, n in enumerate(self.nodes_)}
        return self


class TagEncoder:
    """One column per tag seen at fit time (at least ``min_count`` items), weighted by
    its inverse document frequency: "sale" on half the catalogue says less about an
    item than "trail-running" does. Tags unseen at fit time are dropped."""

    name = "tags"

    def __init__(self, min_count: int = 1) -> None:
        self.min_count = min_count

    def fit(self, tags: Sequence[Sequence[str]]) -> TagEncoder:
        counts = pd.Series([t for row in tags for t in set(row)], dtype=object).value_counts()
        kept = counts[counts >= self.min_count]
        self.vocabulary_ = np.array(sorted(map(str, kept.index)), dtype=str)
        self._index = {t: i for i, t in enumerate(self.vocabulary_)}
        df = kept.reindex(self.vocabulary_).to_numpy(dtype=float) if len(kept) else np.zeros(0)
        self.idf_ = np.log((1 + len(tags)) / (1 + df)) + 1  # scikit-learn's smooth idf
        return self

    def transform(self, tags: Sequence[Sequence[str]]) -> sp.csr_matrix:
        if not hasattr(self, "vocabulary_"):
            raise NotTrainedError("TagEncoder.transform called before fit")
        weights = sp.diags(self.idf_.astype(np.float32))
        return sp.csr_matrix(_multi_hot(tags, self._index) @ weights, dtype=np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"vocabulary": self.vocabulary_, "idf": self.idf_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> TagEncoder:
        self.vocabulary_ = np.asarray(state["vocabulary"]).astype(str)
        self.idf_ = np.asarray(state["idf"], dtype=np.float64)
        self._index = {t: i for i, t in enumerate(self.vocabulary_)}
        return self
