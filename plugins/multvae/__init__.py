"""The ``multvae`` plugin: Mult-VAE (Liang et al., WWW 2018), a variational autoencoder
of users' rows with a multinomial likelihood.

The network (:mod:`.model`, imported only once torch is required) encodes a user's
L2-normalised row into a Gaussian latent and decodes it to a softmax over all items;
training maximises the ELBO with the KL term annealed from 0 up to ``anneal_cap``, with
dropout on the input row, on the device of the run (CUDA when present, bf16 autocast
there). The network kept is an exponential moving average of the trained weights
(``ema_decay``), which on small data scores higher and steadier than the last step's
weights. Early stopping watches its NDCG@10 on a validation split carved from the
training matrix (:mod:`recsdk_plugins.deep_training`); by default the model is then
trained again on all the training data for the best number of epochs.

Serving is the encoder's fold-in by construction: a user's scores are the decoder's
logits at ``z = mu(x)`` for the user's row *now* (:meth:`UserRows.request_row`: the
training row plus newer events, or the whole history of a user the model never saw),
so a new click changes the next list and strangers are served without retraining.
Items without a training interaction score NaN (the softmax only learnt to push them
down), so the blend falls back to other plugins for them.
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
    averaged_copy,
    fit_with_early_stopping,
    masked_scores,
    ndcg_at_k,
    seed_everything,
    torch_threads,
    train_then_refit,
    update_average,
)
from recsdk_plugins.multvae.params import MultVAEParams

from recsdk import hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.interactions import UserRows, candidate_scores
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

log = logging.getLogger(__name__)

NAME = "multvae"
WEIGHTS_ARTIFACT = "multvae.pt"
#: validation NDCG cut-off (the project's protocol: NDCG@10)
VALIDATION_K = 10
#: users scored at once (a users x items float32 block)
SCORE_CHUNK = 1024


class MultVAE(DeepRowsPlugin):
    """Mult-VAE scores: decoder logits of the user's current row, encoded to its mean."""

    NAME = NAME
    Params = MultVAEParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.report_: TrainingReport | None = None
        self.refit_report_: TrainingReport | None = None

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self.recsdk_configure(context)
        rows = UserRows.fit(dataset, self.weighting, NAME)
        with torch_threads(self.params.get("num_threads") or None):
            model, report, refit = self._train_with_validation(rows.matrix)
        self._set_model(rows, model)
        self.report_, self.refit_report_ = report, refit

    def _train_with_validation(self, matrix: sp.csr_matrix) -> tuple[
            Any, TrainingReport, TrainingReport | None]:
        return train_then_refit(matrix, self._train, self.params, name=NAME,
                                seed=self._seed)

    def architecture(self, n_items: int) -> Any:
        from recsdk_plugins.multvae.model import Architecture

        p = self.params
        return Architecture(n_items, tuple(int(h) for h in p.get("hidden", [600])),
                            int(p.get("latent", 200)), float(p.get("dropout", 0.5)))

    def _train(self, matrix: sp.csr_matrix, validation: sp.csr_matrix | None,
               epochs: int) -> tuple[Any, TrainingReport]:
        """A model trained on ``matrix`` (seeded), early-stopped on ``validation``."""
        import torch
        from recsdk_plugins.multvae.model import (
            MultVAEModel,
            annealed_beta,
            dense_rows,
        )

        p = self.params
        device = self._device
        seed_everything(self._seed)
        model = MultVAEModel(self.architecture(matrix.shape[1])).to(device)
        optimizer = torch.optim.Adam(model.parameters(),
                                     lr=float(p.get("learning_rate", 1e-3)),
                                     weight_decay=float(p.get("weight_decay", 0.0)))
        users = np.flatnonzero(np.diff(matrix.indptr))
        rng = np.random.default_rng(self._seed)
        batch = int(p.get("batch_size", 128))
        cap, anneal_steps = float(p.get("anneal_cap", 0.2)), int(p.get("anneal_steps", 0))
        decay = float(p.get("ema_decay", 0.99))
        # the network that is validated, kept and served: a running average of the
        # trained weights (ema_decay > 0), or the trained network itself
        kept = averaged_copy(model, decay)
        steps = 0

        def train_epoch(epoch: int) -> float:
            nonlocal steps
            total = 0.0
            model.train()
            order = rng.permutation(users)
            for start in range(0, len(order), batch):
                chunk = order[start:start + batch]
                x = dense_rows(matrix, chunk, device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device):
                    loss = model.loss(x, annealed_beta(steps, cap, anneal_steps))
                loss.backward()
                optimizer.step()
                if kept is not model:
                    update_average(kept, model, decay)
                steps += 1
                total += float(loss.detach()) * len(chunk)
            return total / max(len(users), 1)

        validate = None
        if validation is not None:
            def validate() -> float:
                return self._validation_ndcg(kept, matrix, validation)

        report = fit_with_early_stopping(
            kept, train_epoch, validate, name=NAME, device=device, max_epochs=epochs,
            eval_every=int(p.get("eval_every", 5)), patience=int(p.get("patience", 5)),
            progress=bool(p.get("progress", False)))
        return kept, report

    def _validation_ndcg(self, model: Any, train: sp.csr_matrix,
                         validation: sp.csr_matrix) -> float:
        """NDCG@10 of the validation items, training items filtered, over users who
        have validation items."""
        from recsdk_plugins.multvae.model import score_rows

        users = np.flatnonzero(np.diff(validation.indptr))
        with autocast(self._device):
            scores = score_rows(model, train[users], self._device, SCORE_CHUNK)
        return ndcg_at_k(masked_scores(scores, train[users]), validation[users],
                         VALIDATION_K)

    def _set_model(self, rows: UserRows, model: Any) -> None:
        """Keep the network on the CPU for serving (one user's forward pass is small, and
        a model trained on a GPU and the same model loaded later give the same numbers)."""
        self.net_ = model.to("cpu").eval()
        self.arch_ = model.arch
        self.weights_ = {k: v.detach().clone() for k, v in self.net_.state_dict().items()}
        self.rows_ = rows
        self._after_model()

    def _after_model(self) -> None:
        import torch

        self.known_ = np.diff(sp.csc_matrix(self.rows_.matrix).indptr) > 0
        with torch.no_grad():
            vectors = self.net_.item_vectors().numpy().astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.item_unit_ = np.divide(vectors, norms, out=np.zeros_like(vectors),
                                    where=norms > 0)

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        """The network's state_dict through the artifact store; its shape and the
        training rows (the fold-in's starting point) as arrays."""
        if not hasattr(self, "net_"):
            return None
        artifacts.save_torch(WEIGHTS_ARTIFACT, self.weights_)
        return {"architecture": self.arch_.as_array(), **self.rows_.state()}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        from recsdk_plugins.multvae.model import Architecture, MultVAEModel

        self.rows_ = UserRows.from_state(state, dataset, self.weighting)
        arch = Architecture.from_array(state["architecture"])
        if arch.n_items != self.rows_.n_items:
            raise ConfigurationError(
                f"plugins.{NAME}: the stored network has {arch.n_items} items but the stored "
                f"training rows {self.rows_.n_items}; the run's artifacts are inconsistent")
        net = MultVAEModel(arch)
        try:
            net.load_state_dict(artifacts.load_torch(WEIGHTS_ARTIFACT))
        except RuntimeError as exc:
            raise ConfigurationError(
                f"plugins.{NAME}: the stored weights do not fit the stored architecture "
                f"{arch}: {exc}") from exc
        self.net_, self.arch_ = net.eval(), arch
        self.weights_ = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self._after_model()

    # ---- scoring ---------------------------------------------------------------------

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        """Decoder logits of ``rows`` (users x items); NaN for items never trained on."""
        from recsdk_plugins.multvae.model import score_rows

        out = score_rows(self.net_, sp.csr_matrix(rows, dtype=np.float32), "cpu",
                         SCORE_CHUNK).astype(np.float64)
        out[:, ~self.known_] = np.nan
        return out

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        """The fold-in: the user's row now, encoded and decoded."""
        if not hasattr(self, "net_"):
            return None
        row = self.rows_.request_row(request.user_id, request.history)
        if row.nnz == 0:
            return None  # no usable history: abstain, the fallback serves the user
        return candidate_scores(self.scores(row)[0], candidates)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        """Training rows encoded and decoded; NaN for users without one."""
        if not hasattr(self, "net_"):
            return None
        rows, _ = self.rows_.batch_rows(user_ids)
        out = self.scores(rows)
        out[np.diff(rows.indptr) == 0] = np.nan
        return candidate_scores(out, candidates)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Cosine between the decoder's output vectors of the items."""
        if not hasattr(self, "net_"):
            return None
        code = self.rows_.item_index.get(str(item_id))
        if code is None or code >= len(self.known_) or not self.known_[code]:
            return None
        sims = (self.item_unit_ @ self.item_unit_[code]).astype(np.float64)
        sims[~self.known_] = np.nan
        return candidate_scores(sims, candidates)
