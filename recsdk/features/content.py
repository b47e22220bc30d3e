"""The fitted state of content-based scoring: every item's feature blocks, and how to
score profiles and items against them.

One immutable-after-build object, so the plugin can swap a refitted model in with a
single assignment while requests keep reading the old one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.catalog import Catalog
from recsdk.errors import ConfigurationError
from recsdk.features.items import ItemFeatureBuilder
from recsdk.features.vectors import (
    Matrix,
    has_rows,
    pack,
    packed_names,
    stack_rows,
    unit_rows,
    unpack,
    weighted_cosine,
)

#: Users scored per matrix product in batch scoring.
USER_BATCH = 256
#: Items featurised on the request path are remembered up to this many.
COLD_CACHE_SIZE = 10_000


def aligned_items(catalog: Catalog, item_ids: Sequence[str]) -> pd.DataFrame:
    """Catalogue rows in the order of ``item_ids`` (rows of unknown items are empty)."""
    frame = catalog.frame if catalog.frame is not None else pd.DataFrame({"id": []})
    frame = frame.assign(id=frame["id"].astype(str)).drop_duplicates("id", keep="last")
    wanted = pd.Index([str(i) for i in item_ids], name="id")
    return frame.set_index("id").reindex(wanted).reset_index()


def log_scaled(counts: np.ndarray) -> np.ndarray:
    """log(1 + count) scaled to [0, 1]."""
    logged = np.log1p(np.nan_to_num(counts, nan=0.0))
    top = logged.max() if len(logged) else 0.0
    return logged / top if top > 0 else logged


def _as_matrix(value: object) -> Matrix:
    return sp.csr_matrix(value) if sp.issparse(value) else np.asarray(value, dtype=np.float32)


@dataclass
class ContentModel:
    """Item blocks in vocabulary order, the training histories and the fitted builder."""

    builder: ItemFeatureBuilder
    item_ids: np.ndarray
    blocks: dict[str, Matrix]
    popularity: np.ndarray
    user_ids: np.ndarray
    user_items: sp.csr_matrix
    item_index: dict[str, int] = field(init=False)
    user_index: dict[str, int] = field(init=False)
    present: dict[str, np.ndarray] = field(init=False)
    _cold: dict[str, dict[str, Matrix]] = field(default_factory=dict, init=False, repr=False)
    _cold_catalog: object = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_index = {str(i): n for n, i in enumerate(self.item_ids)}
        self.user_index = {str(u): n for n, u in enumerate(self.user_ids)}
        self.present = {b: has_rows(m) for b, m in self.blocks.items()}

    # ---- rows of items ---------------------------------------------------------------

    def rows(self, item_ids: Sequence[str], codes: np.ndarray | None,
             catalog: Catalog | None) -> tuple[dict[str, Matrix], dict[str, np.ndarray]]:
        """Blocks of ``item_ids`` (fitted rows, else featurised from ``catalog`` now) and
        which rows each block has. ``codes``: their vocabulary codes, when known."""
        if codes is None:
            codes = np.fromiter((self.item_index.get(str(i), -1) for i in item_ids),
                                dtype=np.int64, count=len(item_ids))
        n_fitted = len(self.item_ids)
        if len(codes) == n_fitted and np.array_equal(codes, np.arange(n_fitted)):
            return self.blocks, self.present  # full ranking: no copy of the blocks
        codes = np.where(codes < n_fitted, codes, -1)
        fitted = codes >= 0
        if fitted.all():
            blocks = {b: m[codes] for b, m in self.blocks.items()}
            return blocks, {b: self.present[b][codes] for b in blocks}
        cold = self._cold_rows([str(i) for i in np.asarray(item_ids, dtype=object)[~fitted]],
                               catalog)
        order = np.argsort(np.concatenate([np.flatnonzero(fitted), np.flatnonzero(~fitted)]),
                           kind="stable")
        blocks = {b: stack_rows([m[codes[fitted]], cold[b]])[order]
                  for b, m in self.blocks.items()}
        return blocks, {b: has_rows(m) for b, m in blocks.items()}

    def _cold_rows(self, item_ids: list[str], catalog: Catalog | None) -> dict[str, Matrix]:
        """Blocks of items outside the fitted vocabulary, cached per catalogue snapshot."""
        with self._lock:
            if catalog is not self._cold_catalog:
                self._cold, self._cold_catalog = {}, catalog
            missing = [i for i in dict.fromkeys(item_ids) if i not in self._cold]
            known = [i for i in missing if catalog is not None and i in catalog.index]
            if known:
                computed = self.builder.transform(aligned_items(catalog, known),
                                                  catalog.tree).blocks
                for row, item_id in enumerate(known):
                    self._cold[item_id] = {b: m[row:row + 1] for b, m in computed.items()}
            for item_id in missing:
                self._cold.setdefault(item_id, self._blank())
            rows = {b: stack_rows([self._cold[i][b] for i in item_ids]) for b in self.blocks}
            if len(self._cold) > COLD_CACHE_SIZE:
                self._cold = {}
            return rows

    def _blank(self) -> dict[str, Matrix]:
        return {b: (sp.csr_matrix((1, m.shape[1]), dtype=np.float32) if sp.issparse(m)
                    else np.zeros((1, m.shape[1]), dtype=np.float32))
                for b, m in self.blocks.items()}

    # ---- scoring ---------------------------------------------------------------------

    def profile(self, item_ids: Sequence[str], weights: np.ndarray,
                catalog: Catalog | None) -> dict[str, Matrix] | None:
        """Unit profile vectors: the weighted mean of the items' blocks (items with a
        weight of zero or less left out); None when no item has any feature."""
        keep = weights > 0
        if not keep.any():
            return None
        ids = [str(i) for i, k in zip(item_ids, keep, strict=True) if k]
        rows, present = self.rows(ids, None, catalog)
        if not any(p.any() for p in present.values()):
            return None
        w = sp.csr_matrix(weights[keep].astype(np.float32)[None, :])
        return {b: unit_rows(_as_matrix(w @ m)) for b, m in rows.items()}

    def score(self, query: Mapping[str, Matrix], item_ids: Sequence[str],
              codes: np.ndarray | None, catalog: Catalog | None,
              block_weights: Mapping[str, float]) -> np.ndarray:
        """Weighted cosine of each query row with each item (NaN: nothing shared)."""
        rows, present = self.rows(item_ids, codes, catalog)
        return weighted_cosine(query, rows, block_weights, present)

    def score_users(self, user_ids: Sequence[str], item_ids: Sequence[str],
                    codes: np.ndarray, block_weights: Mapping[str, float]) -> np.ndarray:
        """Training users' profiles against items, in batches; NaN rows for unknown users."""
        rows, present = self.rows(item_ids, codes, None)
        out = np.full((len(user_ids), len(item_ids)), np.nan)
        users = np.array([self.user_index.get(str(u), -1) for u in user_ids], dtype=np.int64)
        known = np.flatnonzero(users >= 0)
        for start in range(0, len(known), USER_BATCH):
            batch = known[start:start + USER_BATCH]
            history = self.user_items[users[batch]]
            profiles = {b: unit_rows(_as_matrix(history @ m)) for b, m in self.blocks.items()}
            out[batch] = weighted_cosine(profiles, rows, block_weights, present)
        return out

    def prior(self, codes: np.ndarray) -> np.ndarray:
        """Log-popularity in [0, 1] of each code (0 for items new since the fit)."""
        out = np.zeros(len(codes))
        fitted = (codes >= 0) & (codes < len(self.popularity))
        out[fitted] = self.popularity[codes[fitted]]
        return out

    # ---- state -----------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        out = {f"builder.{k}": v for k, v in self.builder.state().items()}
        for name, matrix in self.blocks.items():
            out.update(pack(f"block.{name}", matrix))
        out.update(pack("user_items", self.user_items))
        out["item_ids"] = self.item_ids.astype(str)
        out["popularity"] = self.popularity
        out["user_ids"] = self.user_ids.astype(str)
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], builder: ItemFeatureBuilder,
                   vocabulary: np.ndarray) -> ContentModel:
        """Restore :meth:`state` into ``builder`` (an unfitted one with the plugin's
        parameters); ``vocabulary`` is the item vocabulary the SDK loaded."""
        item_ids = np.asarray(state["item_ids"]).astype(str)
        if not np.array_equal(item_ids, np.asarray(vocabulary).astype(str)):
            raise ConfigurationError(
                f"saved content state has {len(item_ids)} items, the vocabulary has "
                f"{len(vocabulary)}: the state belongs to another training run")
        builder.load_state({k[len("builder."):]: v for k, v in state.items()
                            if k.startswith("builder.")})
        return cls(
            builder=builder, item_ids=item_ids.astype(object),
            blocks={name: unpack(f"block.{name}", state)
                    for name in packed_names(state, "block.")},
            popularity=np.asarray(state["popularity"], dtype=np.float64),
            user_ids=np.asarray(state["user_ids"]).astype(object),
            user_items=sp.csr_matrix(unpack("user_items", state), dtype=np.float32),
        )
