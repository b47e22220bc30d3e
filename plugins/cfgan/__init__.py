"""The ``cfgan`` plugin: CFGAN (Chae et al., CIKM 2018), a GAN over purchase vectors.

A generator maps a user's purchase vector to a real-valued vector over every item and
is trained against a discriminator that tells real vectors from generated ones, both
conditioned on the user's vector; the ZP variant's zero reconstruction and partial
masking (:mod:`.model`) make the generator keep unseen items low, so its output ranks
them. Training runs on the device of the run, seeded, and stops early on NDCG@10 over
a validation split carved from the training data (:mod:`recsdk_plugins.deep_training`);
by default it then trains again on all the training data for the best number of
epochs.

Serving runs the generator on the user's current row (the training row plus events
newer than the training data, or a stranger's whole history:
:meth:`recsdk.interactions.UserRows.request_row`), so a new click changes the next
list and users unseen at training are served without retraining.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from recsdk_plugins.cfgan.params import CFGANParams
from recsdk_plugins.deep_training import (
    DeepRowsPlugin,
    TrainingReport,
    fit_with_early_stopping,
    masked_scores,
    ndcg_at_k,
    seed_everything,
    torch_threads,
    train_then_refit,
)

from recsdk import hookimpl
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.interactions import UserRows, candidate_scores
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

NAME = "cfgan"
WEIGHTS_ARTIFACT = "generator.pt"
#: validation NDCG cut-off (the project's protocol: NDCG@10)
VALIDATION_K = 10


class CFGAN(DeepRowsPlugin):
    """CFGAN's generator scores every item from the user's current purchase vector."""

    NAME = NAME
    Params = CFGANParams

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        from recsdk_plugins.cfgan.model import purchase_vectors

        self.recsdk_configure(context)
        rows = UserRows.fit(dataset, self.weighting, NAME)
        vectors = purchase_vectors(rows.matrix)
        with torch_threads(self.params.get("num_threads") or None):
            model, self.report_, self.refit_report_ = train_then_refit(
                vectors, self._train, self.params, name=NAME, seed=self._seed)
        self._set_generator(rows, model.generator)

    def _train(self, vectors: sp.csr_matrix, validation: sp.csr_matrix | None,
               epochs: int) -> tuple[Any, TrainingReport]:
        """A model trained on ``vectors`` (seeded), early-stopped on ``validation``."""
        from recsdk_plugins.cfgan.model import AdversarialTrainer, CFGANModel, generate

        p = self.params
        device = self._device
        seed_everything(self._seed)
        model = CFGANModel(vectors.shape[1], p["generator_layers"],
                           p["discriminator_layers"]).to(device)
        trainer = AdversarialTrainer(
            model, vectors, seed=self._seed, device=device, batch_size=p["batch_size"],
            zr_share=p["zr_share"], pm_share=p["pm_share"], zr_weight=p["zr_weight"],
            generator_lr=p["generator_learning_rate"],
            discriminator_lr=p["discriminator_learning_rate"],
            weight_decay=p["weight_decay"], discriminator_steps=p["discriminator_steps"],
            generator_steps=p["generator_steps"])

        validate = None
        if validation is not None:
            users = np.flatnonzero(np.diff(validation.indptr))

            def validate() -> float:
                scores = generate(model.generator, vectors[users], device)
                return ndcg_at_k(masked_scores(scores, vectors[users]), validation[users],
                                 VALIDATION_K)

        report = fit_with_early_stopping(
            model, lambda epoch: trainer.epoch(), validate, name=NAME, device=device,
            max_epochs=epochs, eval_every=int(p.get("eval_every", 5)),
            patience=int(p.get("patience", 5)), progress=bool(p.get("progress", False)))
        return model, report

    def _set_generator(self, rows: UserRows, generator: Any) -> None:
        """Keep the generator on the CPU (serving scores one row at a time there), its
        weights as a plain state_dict, and the training rows for the request rows."""
        self.rows_ = rows
        self.generator_ = generator.to("cpu").eval()
        self.weights_ = {k: v.detach().clone() for k, v in self.generator_.state_dict().items()}

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        """The generator's state_dict through the artifact store, the rows as arrays."""
        if not hasattr(self, "generator_"):
            return None
        artifacts.save_torch(WEIGHTS_ARTIFACT, self.weights_)
        return {"generator_layers": np.asarray(self.params["generator_layers"], np.int64),
                **self.rows_.state()}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        from recsdk_plugins.cfgan.model import Generator

        rows = UserRows.from_state(state, dataset, self.weighting)
        layers = [int(n) for n in state["generator_layers"]]
        weights = artifacts.load_torch(WEIGHTS_ARTIFACT)
        generator = Generator(rows.n_items, layers)
        expected = {k: tuple(v.shape) for k, v in generator.state_dict().items()}
        stored = {k: tuple(v.shape) for k, v in weights.items()}
        if stored != expected:
            raise ConfigurationError(
                f"plugins.{NAME}: the stored generator weights {stored} do not match a "
                f"generator of {rows.n_items} items and hidden layers {layers} "
                f"({expected}); the run's artifacts are inconsistent")
        generator.load_state_dict(weights)
        self._set_generator(rows, generator)

    # ---- scoring ---------------------------------------------------------------------

    def generate_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """Generated vectors (users x items) for weighted rows of the training matrix's
        form; NaN rows where a row is empty (nothing to condition on)."""
        from recsdk_plugins.cfgan.model import generate, purchase_vectors

        out = generate(self.generator_, purchase_vectors(rows)).astype(np.float64)
        out[np.diff(sp.csr_matrix(rows).indptr) == 0] = np.nan
        return out

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        """The generator on the user's row now; None with no history the model knows."""
        if not hasattr(self, "generator_"):
            return None
        row = self.rows_.request_row(request.user_id, request.history)
        if row.nnz == 0:
            return None
        return candidate_scores(self.generate_rows(row), candidates)[0]

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        """The generator on the users' training rows; NaN for unknown users and users
        with no training row."""
        if not hasattr(self, "generator_"):
            return None
        rows, known = self.rows_.batch_rows(user_ids)
        out = candidate_scores(self.generate_rows(rows), candidates)
        out[~known] = np.nan
        return out
