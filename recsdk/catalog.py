"""An in-memory, read-only snapshot of the catalogue for the request path.

Reranking needs availability, categories and dedupe keys for thousands of items per
request; reading them from the database each time would dominate latency. The SDK
builds a new snapshot whenever items change and swaps it in atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CategoryTree:
    """Categories with their parents; answers ancestor paths."""

    parents: Mapping[str, str | None] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def path(self, category_id: str | None) -> list[str]:
        """Root-first path of ids ending at ``category_id`` (empty for None)."""
        out: list[str] = []
        seen: set[str] = set()
        node = category_id
        while node is not None and node not in seen:
            seen.add(node)
            out.append(node)
            node = self.parents.get(node)
        return out[::-1]

    def children(self, category_id: str | None) -> list[str]:
        return sorted(c for c, p in self.parents.items() if p == category_id)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> CategoryTree:
        parents = {str(r.id): (None if pd.isna(r.parent_id) else str(r.parent_id))
                   for r in frame.itertuples()}
        names = {str(r.id): str(r.name) for r in frame.itertuples()}
        return cls(parents, names)


@dataclass(frozen=True)
class Catalog:
    """Items as parallel arrays, indexed by position; ``index`` maps id to position."""

    ids: np.ndarray
    category: np.ndarray
    available: np.ndarray
    group: np.ndarray
    price: np.ndarray
    tree: CategoryTree = field(default_factory=CategoryTree)
    index: Mapping[str, int] = field(default_factory=dict)
    frame: pd.DataFrame | None = None
    version: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, item_ids: Any) -> np.ndarray:
        """Positions of ``item_ids`` in the catalogue, -1 where unknown."""
        get = self.index.get
        return np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64,
                           count=len(item_ids))

    def category_of(self, item_id: str) -> str | None:
        pos = self.index.get(item_id)
        return None if pos is None else self.category[pos]

    @classmethod
    def empty(cls) -> Catalog:
        return cls.from_frames(pd.DataFrame(columns=["id"]), pd.DataFrame(
            columns=["id", "name", "parent_id"]))

    @classmethod
    def from_frames(cls, items: pd.DataFrame, categories: pd.DataFrame,
                    version: str = "") -> Catalog:
        n = len(items)
        ids = items["id"].astype(str).to_numpy(dtype=object) if n else np.array([], object)

        def column(name: str, default: Any) -> pd.Series:
            if name in items:
                return items[name]
            return pd.Series([default] * n, dtype=object)

        active = column("active", True).fillna(True).astype(bool).to_numpy()
        stock = pd.to_numeric(column("stock", None), errors="coerce").to_numpy(dtype=float)
        available = active & ~(stock <= 0)
        category = column("category_id", None).to_numpy(dtype=object)
        attrs = column("attributes", None)
        group = np.array(
            [(a or {}).get("group_id", i) if isinstance(a, dict) else i
             for a, i in zip(attrs, ids, strict=True)], dtype=object,
        )
        price = pd.to_numeric(column("price", None), errors="coerce").to_numpy(dtype=float)
        return cls(
            ids=ids, category=category, available=available, group=group, price=price,
            tree=CategoryTree.from_frame(categories),
            index={i: p for p, i in enumerate(ids)}, frame=items, version=version,
        )
