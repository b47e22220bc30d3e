"""``lmf``: logistic matrix factorisation (Johnson 2014) on implicit's AdaGrad.

The probability that user u chooses item i is sigmoid(x_u'y_i + b_u + b_i); the
likelihood weights each observed cell by its (weighted) strength and samples
``neg_prop`` unobserved items per observed one. implicit has no CUDA LMF: this
plugin trains on the CPU whatever the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from recsdk_plugins.factorization.base import FactorizationPlugin
from recsdk_plugins.factorization.foldin import lmf_fold_in
from recsdk_plugins.factorization.params import LMFParams


class LMF(FactorizationPlugin):
    """Logistic factorisation (implicit's LMF); factors carry two bias columns."""

    NAME = "lmf"
    HAS_GPU = False
    Params = LMFParams

    def make_model(self, gpu: bool, seed: int) -> Any:
        from implicit.cpu.lmf import LogisticMatrixFactorization

        p = self.params
        return LogisticMatrixFactorization(
            factors=p["factors"], learning_rate=p["learning_rate"],
            regularization=p["regularization"], iterations=p["iterations"],
            neg_prop=p["neg_prop"], num_threads=p["num_threads"], random_state=seed)

    def latent_dims(self, n_columns: int) -> int:
        return n_columns - 2  # items [q, bias, 1]; users [p, 1, bias]

    def fold_in(self, row: sp.csr_matrix) -> np.ndarray | None:
        return lmf_fold_in(row, self.item_factors_,
                           self.latent_dims(self.item_factors_.shape[1]),
                           self.params["regularization"], self.params["neg_prop"])
