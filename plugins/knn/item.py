"""``item_knn``: item-based collaborative filtering (Sarwar et al. 2001).

Each item is a vector over users (the weighted users x items matrix ``X`` from
:mod:`recsdk.interactions`, columns), row-weighted (``none``/``tfidf``/``bm25``,
:mod:`recsdk_plugins.knn.weighting`). ``S[h, t] = s(t, h)`` is the similarity of
target item ``t`` to item ``h`` (:mod:`recsdk_plugins.knn.similarity`, ``t`` the
query), kept only for the ``neighbours`` most similar ``h`` of each ``t``. A user's
score for ``t`` is ``score(u, t) = sum_h x_uh S[h, t]`` with ``x_u`` the user's row at
request time (training row plus newer history), so a new event changes the next list
without retraining.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
from recsdk_plugins.knn.base import KNNPlugin, batched_scores, knn_params, no_signal
from recsdk_plugins.knn.similarity import neighbours, squared_norms

from recsdk import hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset
from recsdk.interactions import (
    SPARSE_SCORING_SHARE,
    UserRows,
    candidate_scores,
    sorted_lookup,
)
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

#: Defaults: ``recsdk tune`` on the ML-100K training split (docs/algorithms/knn.md).
ItemKNNParams = knn_params("ItemKNNParams", similarity="asymmetric_cosine", alpha=0.3,
                           shrink=10.0, neighbours=200, weighting="tfidf")
#: Users scored per block in the batch path (bounds the dense score block).
BATCH_CELLS = 2**24


def item_similarities(rows: sp.csr_matrix, plugin: KNNPlugin) -> sp.csr_matrix:
    """The items x items top-K similarity matrix ``S`` (rows: neighbours h, columns:
    targets t) of the users x items matrix ``rows``."""
    items = sp.csr_matrix(rows.T, dtype=np.float64)
    weighted = plugin.row_weighting(items).apply(items)
    sq = squared_norms(weighted)
    by_target = neighbours(weighted, sp.csr_matrix(weighted.T), sq, sq, plugin.similarity,
                           int(plugin.params["neighbours"]),
                           self_columns=np.arange(items.shape[0]))
    return sp.csr_matrix(by_target.T)


class ItemKNN(KNNPlugin):
    """Item-item neighbourhood: the user's items vote for their nearest items."""

    Params = ItemKNNParams
    default_name = "item_knn"

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        rows = self.fit_rows(dataset, context)
        similarity = item_similarities(rows.matrix, self)
        self.rows_, self.similarity_, self._by_target = rows, similarity, None

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "similarity_"):
            return None
        s = self.similarity_
        return {**self.rows_.state(), "sim_indptr": s.indptr, "sim_indices": s.indices,
                "sim_data": s.data, "sim_shape": np.array(s.shape, dtype=np.int64)}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        shape = tuple(int(n) for n in state["sim_shape"])
        similarity = sp.csr_matrix((np.asarray(state["sim_data"], dtype=np.float32),
                                    np.asarray(state["sim_indices"]),
                                    np.asarray(state["sim_indptr"])), shape=shape)
        self.rows_ = UserRows.from_state(state, dataset, self.weighting)
        self.similarity_, self._by_target = similarity, None

    # ---- scoring ---------------------------------------------------------------------

    def _scores(self, user_rows: sp.csr_matrix) -> np.ndarray:
        # float32 like S: a float64 row would make scipy copy all of S to float64
        rows = sp.csr_matrix(user_rows, dtype=np.float32)
        return np.asarray((rows @ self.similarity_).toarray(), dtype=np.float64)

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "similarity_"):
            return None
        row = self.rows_.request_row(request.user_id, request.history)
        if row.nnz == 0:
            return None
        n = self.similarity_.shape[1]
        if len(candidates) >= SPARSE_SCORING_SHARE * n:
            scores = self._scores(row)
            if no_signal(scores)[0]:
                return None
            return candidate_scores(scores, candidates)[0]
        # a few candidates (retrieval): read them off the sparse product, no dense row
        product = sp.csr_matrix(sp.csr_matrix(row, dtype=np.float32) @ self.similarity_)
        product.sum_duplicates()
        if not (product.data > 0).any():
            return None
        codes = np.asarray(candidates.codes, dtype=np.int64)
        known = (codes >= 0) & (codes < n)
        out = np.full(len(codes), np.nan)
        out[known] = sorted_lookup(product.indices.astype(np.int64),
                                   product.data.astype(np.float64), codes[known], 0.0)
        return out

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "similarity_"):
            return None
        def score(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
            rows, known = self.rows_.batch_rows(batch)
            return self._scores(rows), known

        step = max(1, BATCH_CELLS // max(self.rows_.n_items, 1))
        return batched_scores(user_ids, candidates, step, score)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Column ``t = item_id`` of ``S``: its ``neighbours`` most similar items."""
        if not hasattr(self, "similarity_"):
            return None
        code = self.rows_.item_index.get(item_id)
        if code is None:
            return None
        if self._by_target is None:
            self._by_target = sp.csr_matrix(self.similarity_.T)
        column = self._by_target[code]
        if column.nnz == 0:
            return None
        return candidate_scores(column.toarray().astype(np.float64), candidates)[0]
