"""``user_knn``: user-based collaborative filtering (neighbours of the asking user).

The request row ``x_u`` (training row plus newer history, or the whole history of a
user the model never saw) is row-weighted with the training users' term statistics
(:mod:`recsdk_plugins.knn.weighting`, users are the documents) and compared with
every training user ``v`` (:mod:`recsdk_plugins.knn.similarity`, ``u`` the query);
the user is never their own neighbour. With ``N(u)`` the ``neighbours`` most similar
users, ``score(u, i) = sum_{v in N(u)} s(u, v) x_vi`` on the unweighted rows.

Similar items (no user asks): the cosine-family similarity of the items' columns of
``X``, i.e. item co-occurrence through users, computed on the fly for the one item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from recsdk_plugins.knn.base import KNNPlugin, batched_scores, knn_params, no_signal
from recsdk_plugins.knn.similarity import BLOCK_CELLS, neighbours, squared_norms
from recsdk_plugins.knn.weighting import RowWeighting

from recsdk import hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset, lookup_codes
from recsdk.interactions import UserRows, candidate_scores
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

#: Defaults: ``recsdk tune`` on the ML-100K training split (docs/algorithms/knn.md).
UserKNNParams = knn_params("UserKNNParams", similarity="cosine", alpha=0.5, shrink=10.0,
                           neighbours=100, weighting="bm25")


#: The weighting statistics and derived matrices saved with a run (besides the rows).
_MATRICES = ("weighted_t", "items_t")


def _csr_state(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{prefix}_data": matrix.data, f"{prefix}_indices": matrix.indices,
            f"{prefix}_indptr": matrix.indptr,
            f"{prefix}_shape": np.array(matrix.shape, dtype=np.int64)}


def _csr_from_state(prefix: str, state: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    shape = tuple(int(n) for n in state[f"{prefix}_shape"])
    return sp.csr_matrix((state[f"{prefix}_data"], state[f"{prefix}_indices"],
                          state[f"{prefix}_indptr"]), shape=shape)


@dataclass(frozen=True)
class UserModel:
    """Everything ``user_knn`` serves from; derived from the rows alone. A run saves
    the derived arrays too, so that serving processes map them from the run's files
    (shared pages) instead of each computing copies several times the rows' size."""

    rows: UserRows
    row_weighting: RowWeighting
    weighted_t: sp.csr_matrix  # items x users, weighted
    user_sq: np.ndarray
    items_t: sp.csr_matrix  # items x users, unweighted (similar items)
    item_sq: np.ndarray

    @classmethod
    def build(cls, rows: UserRows, plugin: KNNPlugin) -> UserModel:
        matrix = sp.csr_matrix(rows.matrix, dtype=np.float64)
        weighting = plugin.row_weighting(matrix)
        weighted = weighting.apply(matrix)
        items_t = sp.csr_matrix(matrix.T)
        return cls(rows, weighting, sp.csr_matrix(weighted.T), squared_norms(weighted),
                   items_t, squared_norms(items_t))

    def state(self) -> dict[str, np.ndarray]:
        w = self.row_weighting
        out = {**self.rows.state(), "user_sq": self.user_sq, "item_sq": self.item_sq,
               "idf": w.idf, "weighting": np.array([w.kind]),
               "weighting_numbers": np.array([w.avg_length, w.k1, w.b])}
        for name in _MATRICES:
            out.update(_csr_state(name, getattr(self, name)))
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], rows: UserRows,
                   plugin: KNNPlugin) -> UserModel:
        """The saved model; rebuilt from the rows when the run predates saved derived
        arrays or the weighting parameters changed since it was trained."""
        p = plugin.params
        if "weighting" not in state:
            return cls.build(rows, plugin)
        avg_length, k1, b = (float(x) for x in state["weighting_numbers"])
        if (str(state["weighting"][0]), k1, b) != (p["weighting"], float(p["bm25_k1"]),
                                                   float(p["bm25_b"])):
            return cls.build(rows, plugin)
        weighting = RowWeighting(p["weighting"], state["idf"], avg_length, k1, b)
        return cls(rows, weighting, _csr_from_state("weighted_t", state), state["user_sq"],
                   _csr_from_state("items_t", state), state["item_sq"])


class UserKNN(KNNPlugin):
    """User-user neighbourhood: what the most similar users chose."""

    Params = UserKNNParams
    default_name = "user_knn"

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self.model_ = UserModel.build(self.fit_rows(dataset, context), self)

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        return self.model_.state() if hasattr(self, "model_") else None

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        rows = UserRows.from_state(state, dataset, self.weighting)
        self.model_ = UserModel.from_state(state, rows, self)

    # ---- scoring ---------------------------------------------------------------------

    def _scores(self, model: UserModel, rows: sp.csr_matrix,
                own_codes: np.ndarray) -> np.ndarray:
        """Scores over all items for request ``rows``; ``own_codes``: each row's own
        training user (-1 for none), never its neighbour."""
        weighted = model.row_weighting.apply(rows)
        near = neighbours(weighted, model.weighted_t, squared_norms(weighted), model.user_sq,
                          self.similarity, int(self.params["neighbours"]),
                          self_columns=own_codes)
        return np.asarray((near @ model.rows.matrix).toarray(), dtype=np.float64)

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        model = getattr(self, "model_", None)
        if model is None:
            return None
        row = model.rows.request_row(request.user_id, request.history)
        if row.nnz == 0:
            return None
        code = model.rows.user_index.get(request.user_id) if request.user_id else None
        scores = self._scores(model, row, np.array([-1 if code is None else code]))
        if no_signal(scores)[0]:
            return None
        return candidate_scores(scores, candidates)[0]

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        model = getattr(self, "model_", None)
        if model is None:
            return None
        def score(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
            rows, known = model.rows.batch_rows(batch)
            own = lookup_codes(model.rows.user_index, batch)
            return self._scores(model, rows, own), known

        n_users, n_items = model.rows.matrix.shape
        step = max(1, 2 * BLOCK_CELLS // max(n_users, n_items, 1))
        return batched_scores(user_ids, candidates, step, score)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Co-occurrence through users: ``s(i, j)`` on the items' unweighted columns."""
        model = getattr(self, "model_", None)
        if model is None:
            return None
        code = model.rows.item_index.get(item_id)
        if code is None:
            return None
        column = model.items_t[code]
        dots = np.asarray((column @ model.rows.matrix).toarray(), dtype=np.float64).ravel()
        dots[code] = 0.0
        scores = self.similarity.scale(dots, np.full_like(dots, model.item_sq[code]),
                                       model.item_sq)
        if not (scores > 0).any():
            return None
        return candidate_scores(scores[None, :], candidates)[0]
