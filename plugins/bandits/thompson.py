"""The ``thompson`` plugin: linear Thompson sampling as the last reranker.

Agrawal and Goyal (2013), "Thompson sampling for contextual bandits with linear
payoffs" (ICML '13); the policy is
:class:`recsdk_plugins.bandits.policy.LinearThompson`, the hooks
:class:`recsdk_plugins.bandits.reranker.BanditReranker`'s. See
docs/algorithms/bandits.md.
"""

from __future__ import annotations

from typing import ClassVar

from marshmallow import Schema, fields, validate
from recsdk_plugins.bandits.policy import LinearThompson
from recsdk_plugins.bandits.reranker import BanditParams, BanditReranker


class ThompsonParams(BanditParams):
    v = fields.Float(
        load_default=0.5, validate=validate.Range(min=0, max=100, min_inclusive=False),
        metadata={"description": "posterior scale: theta is drawn from "
                  "N(theta_hat, v^2 A^-1)"})


class ThompsonBandit(BanditReranker):
    """Linear Thompson sampling over the pipeline's ranking, learning online."""

    Params: ClassVar[type[Schema]] = ThompsonParams
    kind = "thompson"

    def make_policy(self) -> LinearThompson:
        p = self.params
        return LinearThompson(v=p["v"], ridge=p["ridge"],
                              n_draws=p["n_draws"])
