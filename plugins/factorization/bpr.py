"""``bpr``: Bayesian personalised ranking (Rendle et al. 2009), two solvers.

Maximises sum over (u, i, j) of ln sigmoid(x_ui - x_uj) - reg |theta|^2, i an item the
user chose and j one sampled from the rest, x_ui = p_u'q_i + b_i. Every positive cell
counts alike: the event weighting decides which cells are positive (a return can
cancel a purchase), not how much each counts.

* ``solver = "adam"`` (default): mini-batch Adam in numpy (:mod:`.adam_bpr`), seeded
  and deterministic, single-threaded;
* ``solver = "implicit"``: implicit's Hogwild SGD (threads, CUDA builds), which peaks
  early and then overfits on MovieLens (docs/algorithms/factorization.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from recsdk_plugins.factorization.adam_bpr import AdamBPRConfig, train_adam_bpr
from recsdk_plugins.factorization.base import FactorizationPlugin
from recsdk_plugins.factorization.foldin import bpr_fold_in
from recsdk_plugins.factorization.params import BPRParams
from threadpoolctl import threadpool_limits


class BPR(FactorizationPlugin):
    """Pairwise ranking factorisation; item factors end with a bias, users with a 1."""

    NAME = "bpr"
    Params = BPRParams
    #: tuned defaults per solver, for the parameters left unset (docs, "Tuning")
    SOLVER_DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "adam": {"factors": 64, "iterations": 300, "learning_rate": 0.001,
                 "regularization": 0.03},
        "implicit": {"factors": 128, "iterations": 100, "learning_rate": 0.01,
                     "regularization": 0.03},
    }

    def hyper(self, name: str) -> Any:
        """A model parameter: the configured value, else the solver's default."""
        value = self.params.get(name)
        return self.SOLVER_DEFAULTS[self.params["solver"]][name] if value is None else value

    def make_model(self, gpu: bool, seed: int) -> Any:
        from implicit.bpr import BayesianPersonalizedRanking

        p = self.params
        return BayesianPersonalizedRanking(
            factors=self.hyper("factors"), learning_rate=self.hyper("learning_rate"),
            regularization=self.hyper("regularization"),
            iterations=self.hyper("iterations"), num_threads=p["num_threads"],
            verify_negative_samples=p["verify_negative_samples"], use_gpu=gpu,
            random_state=seed)

    def train(self, matrix: sp.csr_matrix, gpu: bool,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        if p["solver"] == "implicit":
            return super().train(matrix, gpu, seed)
        config = AdamBPRConfig(
            factors=self.hyper("factors"), epochs=self.hyper("iterations"),
            learning_rate=self.hyper("learning_rate"),
            regularization=self.hyper("regularization"), batch_size=p["batch_size"],
            item_bias=p["item_bias"], verify_negative_samples=p["verify_negative_samples"])
        with threadpool_limits(1, "blas"):  # small products: threads only add overhead
            return train_adam_bpr(matrix, config, seed)

    def latent_dims(self, n_columns: int) -> int:
        return n_columns - 1  # [q, bias]; users are [p, 1]

    def fold_in(self, row: sp.csr_matrix) -> np.ndarray | None:
        return bpr_fold_in(row, self.item_factors_,
                           self.latent_dims(self.item_factors_.shape[1]),
                           self.hyper("regularization"))
