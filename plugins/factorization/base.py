"""What the three factorisation plugins share: fit on implicit, state, scoring, retrieval.

A subclass names its model (``NAME``), builds the implicit estimator
(:meth:`FactorizationPlugin.make_model`) or trains its own factors in implicit's layout
(:meth:`FactorizationPlugin.train`, ``bpr``'s Adam solver), says which factor columns are the latent
dimensions (the rest are implicit's bias columns) and how to fold a user in.
Everything else, from the weighted matrix to the ANN index, is here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset, lookup_codes
from recsdk.interactions import (
    SPARSE_SCORING_SHARE,
    UserRows,
    Weighting,
    candidate_dot,
    candidate_scores,
    cosine_to_item,
)
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.retrieval import RequestVectors, build_retriever, load_retriever
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, Retrieved

log = logging.getLogger(__name__)

INDEX_ARTIFACT = "hnsw.faiss"
#: user vectors kept per request id, so that retrieval and scoring of one request
#: fold a user in once; a few dozen covers the requests in flight at once


def use_gpu(device: str) -> bool:
    """implicit's CUDA models when its CUDA extension loaded and the device is a GPU.

    pip's implicit 0.7.3 wheel carries the extension; it loads (``HAS_CUDA``) once
    ``rmm-cu13`` 26.4 is installed on a CUDA 13 machine (docs/algorithms/factorization.md).
    """
    import implicit.gpu

    return bool(implicit.gpu.HAS_CUDA) and str(device).startswith("cuda")


class FactorizationPlugin(Plugin):
    """User and item factors from implicit; scores are their inner products."""

    NAME: ClassVar[str] = "factorization"
    #: the model has a CUDA implementation in implicit
    HAS_GPU: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
        self._device = "cpu"
        self._seed = 0
        self._vectors = RequestVectors()

    # ---- what a model says ------------------------------------------------------------

    def make_model(self, gpu: bool, seed: int) -> Any:
        """The implicit estimator for these parameters."""
        raise NotImplementedError

    def confidence(self, matrix: sp.csr_matrix, gpu: bool) -> sp.csr_matrix:
        """The matrix the implicit estimator is fitted on (the weighted matrix)."""
        return matrix

    def latent_dims(self, n_columns: int) -> int:
        """How many leading factor columns are latent (the others are bias columns)."""
        return n_columns

    def fold_in(self, row: sp.csr_matrix) -> np.ndarray | None:
        """A user vector (same layout as ``user_factors_`` rows) from a current row."""
        raise NotImplementedError

    def fold_in_batch(self, rows: sp.csr_matrix) -> np.ndarray:
        """User vectors of many rows (NaN where a row gives none)."""
        out = np.full((rows.shape[0], self.item_factors_.shape[1]), np.nan)
        for u in range(rows.shape[0]):
            vector = self.fold_in(rows[u]) if rows[u].nnz else None
            if vector is not None:
                out[u] = vector
        return out

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def weighting(self) -> Weighting:
        return Weighting.from_params(self.params, self._event_weights)

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self._event_weights = dict(context.settings.event_weights)
        self._device = context.device_setting
        self._seed = int(context.seed)

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self.recsdk_configure(context)
        rows = UserRows.fit(dataset, self.weighting, self.NAME)
        gpu = self.HAS_GPU and use_gpu(context.device)
        user_factors, item_factors = self.train(rows.matrix, gpu, self._seed)
        self._set_factors(rows, user_factors, item_factors, dataset.item_ids)

    def _set_factors(self, rows: UserRows, user_factors: np.ndarray,
                     item_factors: np.ndarray, item_ids: np.ndarray) -> None:
        """The fitted state from trained factors, whoever trained them (implicit, the
        Adam solver, Spark MLlib): the same arrays, caches and retrieval index."""
        self.rows_ = rows
        self.user_factors_ = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(item_factors, dtype=np.float32)
        if self.params.get("refit_users"):
            self._refit_users(rows.matrix)
        self._after_factors()
        self.retriever_ = build_retriever(item_ids, self.item_factors_, self.params)

    def train(self, matrix: sp.csr_matrix, gpu: bool,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
        """User and item factors fitted on ``matrix`` (by default, implicit's model)."""
        from threadpoolctl import threadpool_limits

        # implicit's own advice: its threads, not BLAS's, parallelise the solves
        with threadpool_limits(1, "blas"):
            model = self.make_model(gpu, seed)
            model.fit(self.confidence(matrix, gpu), show_progress=False)
        if gpu:
            model = model.to_cpu()
        log.info("plugin %s: trained on the %s", self.NAME, "GPU" if gpu else "CPU")
        return model.user_factors, model.item_factors

    def _refit_users(self, matrix: sp.csr_matrix) -> None:
        """Each user's factors replaced by the fold-in optimum against the trained items
        (SGD stops short of it; users with no positive cell keep theirs)."""
        refit = self.fold_in_batch(matrix)
        ok = np.isfinite(refit).all(axis=1)
        self.user_factors_[ok] = refit[ok].astype(np.float32)

    def _after_factors(self, state: Mapping[str, np.ndarray] | None = None) -> None:
        """Caches derived from the factors (normalised item vectors for similarity).

        A run saved since they are part of its state serves the saved ones: memory-
        mapped, so serving processes share them instead of each computing a copy."""
        if state is not None and "item_unit" in state:
            self.item_unit_ = np.asarray(state["item_unit"], dtype=np.float32)
            return
        latent = self.item_factors_[:, :self.latent_dims(self.item_factors_.shape[1])]
        norms = np.linalg.norm(latent, axis=1, keepdims=True)
        self.item_unit_ = np.divide(latent, norms, out=np.zeros_like(latent),
                                    where=norms > 0)

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "item_factors_"):
            return None
        if getattr(self, "retriever_", None) is not None:
            self.retriever_.save_index(artifacts, INDEX_ARTIFACT)
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_,
                "item_unit": self.item_unit_, **self.rows_.state()}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        self.rows_ = UserRows.from_state(state, dataset, self.weighting)
        self.user_factors_ = np.asarray(state["user_factors"], dtype=np.float32)
        self.item_factors_ = np.asarray(state["item_factors"], dtype=np.float32)
        self._after_factors(state)
        self.retriever_ = load_retriever(dataset.item_ids, self.item_factors_, self.params,
                                         artifacts, INDEX_ARTIFACT, self.NAME)

    # ---- users -------------------------------------------------------------------------

    def user_vector(self, request: RecommendationRequest) -> np.ndarray | None:
        """Stored factors of a known user with nothing new; else the fold-in of the
        user's current row; None when there is no usable history."""
        rows = self.rows_
        history = request.history
        code = rows.user_code(request.user_id)
        if code is not None and not rows.new_events(request.user_id, history).any():
            return self.user_factors_[code].astype(np.float64)
        row = rows.request_row(request.user_id, history)
        if row.nnz == 0:
            return None
        return self.fold_in(row)

    def request_vector(self, request: RecommendationRequest) -> np.ndarray | None:
        """:meth:`user_vector`, computed once per request: the pipeline asks for it in
        retrieval and again in scoring, and a fold-in costs as much as the rest of the
        request."""
        return self._vectors.get(request.request_id, lambda: self.user_vector(request))

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "item_factors_"):
            return None
        vector = self.request_vector(request)
        if vector is None:
            return None
        query = vector.astype(np.float32)
        n_items = len(self.item_factors_)
        if len(candidates) >= SPARSE_SCORING_SHARE * n_items:
            return candidate_scores(self.item_factors_ @ query, candidates)
        return candidate_dot(self.item_factors_, query, candidates)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        """Stored factors (the histories are the training data); NaN for unknown users."""
        if not hasattr(self, "item_factors_"):
            return None
        codes = lookup_codes(self.rows_.user_index, user_ids)
        users = self.user_factors_[np.maximum(codes, 0)]
        out = candidate_scores(users @ self.item_factors_.T, candidates)
        out[codes < 0] = np.nan
        return out

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Cosine between the latent item factors."""
        if not hasattr(self, "item_unit_"):
            return None
        return cosine_to_item(self.item_unit_, self.rows_.item_index.get(str(item_id)),
                              candidates)

    @hookimpl
    def recsdk_retrieve_candidates(self, request: RecommendationRequest,
                                   n: int) -> Retrieved | None:
        retriever = getattr(self, "retriever_", None)
        if retriever is None:
            return None
        return retriever.retrieve(self.request_vector(request), n)
