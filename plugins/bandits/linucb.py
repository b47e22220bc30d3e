"""The ``linucb`` plugin: LinUCB with an epsilon exploration mix as the last reranker.

Li, Chu, Langford and Schapire (2010), "A contextual-bandit approach to personalized
news article recommendation" (WWW '10); the policy is
:class:`recsdk_plugins.bandits.policy.LinUCB`, the hooks
:class:`recsdk_plugins.bandits.reranker.BanditReranker`'s. See
docs/algorithms/bandits.md.
"""

from __future__ import annotations

from typing import ClassVar

from marshmallow import Schema, fields, validate
from recsdk_plugins.bandits.policy import LinUCB
from recsdk_plugins.bandits.reranker import BanditParams, BanditReranker


class LinUCBParams(BanditParams):
    alpha = fields.Float(
        load_default=1.0, validate=validate.Range(min=0, max=100),
        metadata={"description": "width of the confidence bound added to the estimate"})
    epsilon = fields.Float(
        load_default=0.1, validate=validate.Range(min=0, max=1),
        metadata={"description": "probability that a slot is filled with a uniformly "
                  "drawn candidate instead of the best bound (keeps propensities < 1)"})
    epsilon_decay_pulls = fields.Float(
        load_default=1000.0, validate=validate.Range(min=0),
        metadata={"description": "n0 > 0: epsilon shrinks as the shared statistics grow, "
                  "epsilon * sqrt(n0 / (n0 + pulls)) (sublinear exploration cost, "
                  "propensities stay above 0); 0: epsilon stays fixed"})


class LinUCBBandit(BanditReranker):
    """LinUCB over the pipeline's ranking, learning online from pulls and rewards."""

    Params: ClassVar[type[Schema]] = LinUCBParams
    kind = "linucb"

    def make_policy(self) -> LinUCB:
        p = self.params
        return LinUCB(alpha=p["alpha"], epsilon=p["epsilon"],
                      ridge=p["ridge"], n_draws=p["n_draws"],
                      epsilon_decay_pulls=p["epsilon_decay_pulls"])
