"""The ``cfgan`` plugin: CFGAN (Chae et al., CIKM 2018), a GAN over purchase vectors.

A generator maps a user's purchase vector to a real-valued vector over every item and
is trained against a discriminator that tells real vectors from generated ones, both
conditioned on the user's vector; the ZP variant's zero reconstruction and partial
masking (:mod:`.model`) make the generator keep unseen items low, so its output ranks
them. Training runs on the device of the run, seeded, and stops early on NDCG@10 over
a validation split carved from the training data (:mod:`recsdk_plugins.deep_training`);
by default it then trains again on all the training data for the best number of
epochs. With ``ensemble = n``, n generators are trained this way under the seeds
``seed`` to ``seed + n - 1`` and their outputs averaged: the adversarial game ends
differently under each seed, and on MovieLens-100K the average is steadier and better
than any one of them (docs/algorithms/cfgan.md, "Seed ensemble").

Serving runs the generator on the user's current row (the training row plus events
newer than the training data, or a stranger's whole history:
:meth:`recsdk.interactions.UserRows.request_row`), so a new click changes the next
list and users unseen at training are served without retraining.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
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
        generators, reports = [], []
        with torch_threads(self.params.get("num_threads") or None):
            for member in range(int(self.params.get("ensemble", 1))):
                seed = self._seed + member
                model, report, refit = train_then_refit(
                    vectors, partial(self._train, seed=seed), self.params, name=NAME,
                    seed=seed)
                generators.append(model.generator)
                reports.append((report, refit))
        #: (early-stopped run, refit) reports of each generator, in seed order
        self.member_reports_ = reports
        self.report_, self.refit_report_ = reports[0]
        self._set_generators(rows, generators)

    def _train(self, vectors: sp.csr_matrix, validation: sp.csr_matrix | None,
               epochs: int, seed: int) -> tuple[Any, TrainingReport]:
        """A model trained on ``vectors`` under ``seed``, early-stopped on ``validation``."""
        from recsdk_plugins.cfgan.model import AdversarialTrainer, CFGANModel, generate

        p = self.params
        device = self._device
        seed_everything(seed)
        model = CFGANModel(vectors.shape[1], p["generator_layers"],
                           p["discriminator_layers"]).to(device)
        trainer = AdversarialTrainer(
            model, vectors, seed=seed, device=device, batch_size=p["batch_size"],
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

    def _set_generators(self, rows: UserRows, generators: list[Any]) -> None:
        """Keep the generators on the CPU (serving scores one row at a time there) and
        the training rows for the request rows."""
        self.rows_ = rows
        self.generators_ = [g.to("cpu").eval() for g in generators]

    @property
    def weights_(self) -> list[dict[str, Any]]:
        """Each generator's weights as a plain state_dict (detached tensors sharing the
        generator's storage: what is saved, not a second copy kept in memory)."""
        return [g.state_dict() for g in self.generators_]

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        """Each generator's state_dict through the artifact store, the rows as arrays."""
        if not hasattr(self, "generators_"):
            return None
        for member, weights in enumerate(self.weights_):
            artifacts.save_torch(weights_artifact(member), weights)
        return {"generator_layers": np.asarray(self.params["generator_layers"], np.int64),
                "ensemble": np.asarray(len(self.generators_), np.int64), **self.rows_.state()}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        from recsdk_plugins.cfgan.model import Generator

        rows = UserRows.from_state(state, dataset, self.weighting)
        layers = [int(n) for n in state["generator_layers"]]
        generators = []
        # runs saved before ``ensemble`` existed hold one generator and no count
        for member in range(int(state.get("ensemble", 1))):
            weights = artifacts.load_torch(weights_artifact(member))
            generator = Generator(rows.n_items, layers)
            expected = {k: tuple(v.shape) for k, v in generator.state_dict().items()}
            stored = {k: tuple(v.shape) for k, v in weights.items()}
            if stored != expected:
                raise ConfigurationError(
                    f"plugins.{NAME}: the stored generator weights {stored} do not match a "
                    f"generator of {rows.n_items} items and hidden layers {layers} "
                    f"({expected}); the run's artifacts are inconsistent")
            generator.load_state_dict(weights)
            generators.append(generator)
        self._set_generators(rows, generators)

    # ---- scoring ---------------------------------------------------------------------

    def generate_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        """Generated vectors (users x items; the generators' mean) for weighted rows of
        the training matrix's form; NaN rows where a row is empty (nothing to condition
        on)."""
        from recsdk_plugins.cfgan.model import generate, purchase_vectors

        vectors = purchase_vectors(rows)
        out = np.mean([generate(g, vectors).astype(np.float64) for g in self.generators_],
                      axis=0)
        out[np.diff(sp.csr_matrix(rows).indptr) == 0] = np.nan
        return out

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        """The generator on the user's row now; None with no history the model knows."""
        if not hasattr(self, "generators_"):
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
        if not hasattr(self, "generators_"):
            return None
        rows, known = self.rows_.batch_rows(user_ids)
        out = candidate_scores(self.generate_rows(rows), candidates)
        out[~known] = np.nan
        return out


def weights_artifact(member: int) -> str:
    """The artifact holding generator ``member``'s weights (the first keeps the name
    runs saved before ``ensemble`` used)."""
    return WEIGHTS_ARTIFACT if member == 0 else f"generator-{member}.pt"
