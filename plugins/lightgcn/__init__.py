"""The ``lightgcn`` plugin: LightGCN (He et al., SIGIR 2020) trained with BPR.

LightGCN learns a layer-0 embedding per user and item and propagates it over the
symmetric-normalised user-item graph (:mod:`.model`); a user's score for an item is the
inner product of their final embeddings (the mean of layers 0..K). Training is
mini-batch Adam on the BPR loss with seeded, vectorised negative sampling, on the
device of the run (CUDA when present, with bf16 autocast there), and stops early on
NDCG@10 over a validation split carved from the training data
(:mod:`recsdk_plugins.deep_training`); by default it then trains again on all the
training data for the best number of epochs.

Serving needs no graph: the final embeddings are stored as arrays. A user with events
newer than the training data, or one the model never saw, is folded in: the user's
current row (:meth:`recsdk.interactions.UserRows.request_row`) is propagated through
the trained item embeddings the way the graph propagates a user
(:func:`fold_in_rows`), so a new click changes the next list without retraining.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from recsdk_plugins.deep_training import (
    DeepRowsPlugin,
    TrainingReport,
    autocast,
    fit_with_early_stopping,
    masked_scores,
    ndcg_at_k,
    seed_everything,
    torch_threads,
    train_then_refit,
)
from recsdk_plugins.lightgcn.params import LightGCNParams

from recsdk import hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset, lookup_codes
from recsdk.errors import ConfigurationError
from recsdk.interactions import (
    UserRows,
    candidate_dot,
    candidate_scores,
    cosine_to_item,
)
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.retrieval import RequestVectors, build_retriever, load_retriever
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, Retrieved

log = logging.getLogger(__name__)

NAME = "lightgcn"
WEIGHTS_ARTIFACT = "lightgcn.pt"
INDEX_ARTIFACT = "hnsw.faiss"
#: user vectors kept per request id: retrieval and scoring of one request fold in once
#: users scored at once while validating (a users x items float32 block)
VALIDATION_CHUNK = 1024
#: validation NDCG cut-off (the project's protocol: NDCG@10)
VALIDATION_K = 10


def fold_in_rows(rows: sp.csr_matrix, item_layers: np.ndarray,
                 item_degree: np.ndarray) -> np.ndarray:
    """Final embeddings of users given only their rows, as the graph would build them.

    A user's layer ``k + 1`` is ``sum_i w_ui e_i^(k) / sqrt(d_u d_i)`` over the row's
    items (``w_ui`` the row's cells, ``d_i`` the items' weighted degrees in the
    training graph, ``d_u`` the row's sum),
    and the final embedding the mean of layers 0..K. A user the model is asked to
    fold in has no trained layer 0, which counts as zero. ``item_layers`` holds the
    items' layers 0..K-1 (K x items x factors); NaN rows for empty ``rows``.
    """
    k, _, factors = item_layers.shape
    if k == 0:
        raise ValueError("a model with no layers has no graph to fold a user in through")
    weights = sp.csr_matrix(rows, dtype=np.float32)
    d_u = np.asarray(weights.sum(axis=1)).ravel()
    scale = np.zeros_like(d_u)
    np.power(d_u, -0.5, out=scale, where=d_u > 0)
    inv_item = np.zeros(len(item_degree), dtype=np.float32)
    np.power(item_degree, -0.5, out=inv_item, where=item_degree > 0)
    norm = sp.diags(scale) @ weights @ sp.diags(inv_item)
    out = np.zeros((rows.shape[0], factors), dtype=np.float32)
    for layer in range(k):
        out += norm @ item_layers[layer]
    out /= k + 1
    out[d_u == 0] = np.nan
    return out


class LightGCN(DeepRowsPlugin):
    """LightGCN embeddings: scores are inner products of final user and item vectors."""

    NAME = NAME
    Params = LightGCNParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._vectors = RequestVectors()

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self.recsdk_configure(context)
        rows = UserRows.fit(dataset, self.weighting, NAME)
        p = self.params
        threads = p.get("num_threads") or None
        with torch_threads(threads):
            model, report, refit = self._train_with_validation(rows.matrix)
            self._set_model(rows, model)
        self.report_, self.refit_report_ = report, refit
        self.retriever_ = build_retriever(dataset.item_ids, self.item_embeddings_, self.params)

    def _train_with_validation(self, matrix: sp.csr_matrix) -> tuple[
            Any, TrainingReport, TrainingReport | None]:
        return train_then_refit(matrix, self._train, self.params, name=NAME,
                                seed=self._seed)

    def _train(self, matrix: sp.csr_matrix, validation: sp.csr_matrix | None,
               epochs: int) -> tuple[Any, TrainingReport]:
        """A model trained on ``matrix`` (seeded), early-stopped on ``validation``."""
        import torch
        from recsdk_plugins.lightgcn.model import (
            LightGCNModel,
            TripleSampler,
            normalized_adjacency,
            sparse_tensor,
        )

        p = self.params
        device = self._device
        seed_everything(self._seed)
        n_users, n_items = matrix.shape
        model = LightGCNModel(n_users, n_items, int(p.get("factors", 64)),
                              int(p.get("layers", 3)),
                              sparse_tensor(normalized_adjacency(matrix), device)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(p.get("learning_rate", 1e-2)))
        sampler = TripleSampler(matrix, self._seed)
        batch = int(p.get("batch_size", 4096))
        reg = float(p.get("regularization", 1e-3))

        def train_epoch(epoch: int) -> float:
            users, positives, negatives = (torch.from_numpy(a).to(device)
                                           for a in sampler.epoch())
            total = 0.0
            for start in range(0, len(users), batch):
                stop = start + batch
                optimizer.zero_grad(set_to_none=True)
                with autocast(device):
                    loss = model.bpr_loss(users[start:stop], positives[start:stop],
                                          negatives[start:stop], reg)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * (min(stop, len(users)) - start)
            return total / max(len(users), 1)

        validate = None
        if validation is not None:
            def validate() -> float:
                return self._validation_ndcg(model, matrix, validation)

        report = fit_with_early_stopping(
            model, train_epoch, validate, name=NAME, device=device, max_epochs=epochs,
            eval_every=int(p.get("eval_every", 5)), patience=int(p.get("patience", 5)),
            progress=bool(p.get("progress", False)))
        return model, report

    def _validation_ndcg(self, model: Any, train: sp.csr_matrix,
                         validation: sp.csr_matrix) -> float:
        """NDCG@10 of the validation items, training items filtered, over users who
        have validation items."""
        import torch

        users = np.flatnonzero(np.diff(validation.indptr))
        with torch.no_grad(), autocast(self._device):
            user_final, item_final = model()
            total = 0.0
            for start in range(0, len(users), VALIDATION_CHUNK):
                chunk = users[start:start + VALIDATION_CHUNK]
                index = torch.from_numpy(chunk).to(user_final.device)
                scores = (user_final[index] @ item_final.T).float().cpu().numpy()
                total += len(chunk) * ndcg_at_k(masked_scores(scores, train[chunk]),
                                                validation[chunk], VALIDATION_K)
        return total / max(len(users), 1)

    def _set_model(self, rows: UserRows, model: Any) -> None:
        """Keep what serving needs from a trained model, computed on the CPU so that a
        model trained on a GPU and one loaded later give the same numbers."""
        import torch

        model = model.to("cpu").eval()
        model.adjacency = model.adjacency.to("cpu")
        with torch.no_grad():
            layers = model.layer_embeddings()
            final = torch.stack(layers, dim=0).mean(dim=0)
        n_users = model.n_users
        self.rows_ = rows
        self.weights_ = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.user_embeddings_ = np.ascontiguousarray(final[:n_users].numpy(), np.float32)
        self.item_embeddings_ = np.ascontiguousarray(final[n_users:].numpy(), np.float32)
        self.item_layers_ = np.ascontiguousarray(
            torch.stack([e[n_users:] for e in layers[:-1]], dim=0).numpy(), np.float32) \
            if len(layers) > 1 else np.zeros((0, model.n_items, final.shape[1]), np.float32)
        self._after_embeddings()

    def _after_embeddings(self) -> None:
        """Derived caches: item degrees (fold-in), unit item vectors (similarity), users
        with a training row."""
        self.user_layer0_ = np.asarray(self.weights_["user_embedding"].numpy(), np.float32)
        matrix = self.rows_.matrix
        self.item_degree_ = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)
        self.has_row_ = np.diff(matrix.indptr) > 0
        norms = np.linalg.norm(self.item_embeddings_, axis=1, keepdims=True)
        self.item_unit_ = np.divide(self.item_embeddings_, norms,
                                    out=np.zeros_like(self.item_embeddings_),
                                    where=norms > 0)

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        """Final embeddings and the items' layers as arrays (serving needs no torch
        model), the trained layer-0 weights as a torch state_dict."""
        if not hasattr(self, "item_embeddings_"):
            return None
        artifacts.save_torch(WEIGHTS_ARTIFACT, self.weights_)
        if getattr(self, "retriever_", None) is not None:
            self.retriever_.save_index(artifacts, INDEX_ARTIFACT)
        return {"user_embeddings": self.user_embeddings_,
                "item_embeddings": self.item_embeddings_,
                "item_layers": self.item_layers_, **self.rows_.state()}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        self.rows_ = UserRows.from_state(state, dataset, self.weighting)
        self.user_embeddings_ = np.asarray(state["user_embeddings"], dtype=np.float32)
        self.item_embeddings_ = np.asarray(state["item_embeddings"], dtype=np.float32)
        self.item_layers_ = np.asarray(state["item_layers"], dtype=np.float32)
        self.weights_ = artifacts.load_torch(WEIGHTS_ARTIFACT)
        shapes = {k: tuple(v.shape) for k, v in self.weights_.items()}
        expected = {"user_embedding": self.user_embeddings_.shape,
                    "item_embedding": self.item_embeddings_.shape}
        if shapes != expected:
            raise ConfigurationError(
                f"plugins.{NAME}: the stored weights {shapes} do not match the stored "
                f"embeddings {expected}; the run's artifacts are inconsistent")
        self._after_embeddings()
        self.retriever_ = load_retriever(dataset.item_ids, self.item_embeddings_, self.params,
                                         artifacts, INDEX_ARTIFACT, NAME)

    # ---- users -----------------------------------------------------------------------

    def user_vector(self, request: RecommendationRequest) -> np.ndarray | None:
        """A known user with nothing new: the trained final embedding; otherwise the
        fold-in of the user's current row; None without a usable history."""
        rows = self.rows_
        code = rows.user_code(request.user_id)
        if (code is not None and self.has_row_[code]
                and not rows.new_events(request.user_id, request.history).any()):
            return self.user_embeddings_[code]
        row = rows.request_row(request.user_id, request.history)
        if row.nnz == 0:
            return None
        return self.fold_in(row, code)

    def fold_in(self, row: sp.csr_matrix, code: int | None) -> np.ndarray:
        """A final user embedding from a current row: the graph's propagation through
        the trained item layers, plus the user's own trained layer 0 for a known user
        (for a known user's training row this is the trained final embedding). With no
        layers, the mean of the row's item embeddings weighted by the row."""
        n_layers = len(self.item_layers_)
        if n_layers == 0:
            weights = np.asarray(row.data, dtype=np.float64)
            return (weights @ self.item_embeddings_[row.indices] / weights.sum()).astype(
                np.float32)
        vector = fold_in_rows(row, self.item_layers_, self.item_degree_)[0]
        if code is not None:
            vector = vector + self.user_layer0_[code] / (n_layers + 1)
        return vector

    def request_vector(self, request: RecommendationRequest) -> np.ndarray | None:
        """:meth:`user_vector` once per request (retrieval and scoring both ask)."""
        return self._vectors.get(request.request_id, lambda: self.user_vector(request))

    # ---- scoring ---------------------------------------------------------------------

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "item_embeddings_"):
            return None
        vector = self.request_vector(request)
        if vector is None:
            return None
        return candidate_dot(self.item_embeddings_, vector, candidates)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        """Trained final embeddings; NaN for unknown users and users with no training row."""
        if not hasattr(self, "item_embeddings_"):
            return None
        codes = lookup_codes(self.rows_.user_index, user_ids)
        safe = np.maximum(codes, 0)
        users = self.user_embeddings_[safe]
        out = candidate_scores(users @ self.item_embeddings_.T, candidates)
        out[(codes < 0) | ~self.has_row_[safe]] = np.nan
        return out

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Cosine between final item embeddings."""
        if not hasattr(self, "item_unit_"):
            return None
        return cosine_to_item(self.item_unit_, self.rows_.item_index.get(str(item_id)),
                              candidates)

    @hookimpl
    def recsdk_retrieve_candidates(self, request: RecommendationRequest,
                                   n: int) -> Retrieved | None:
        retriever = getattr(self, "retriever_", None)
        if retriever is None or not hasattr(self, "item_embeddings_"):
            return None
        return retriever.retrieve(self.request_vector(request), n)
