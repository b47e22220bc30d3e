"""The ``sasrec`` plugin: SASRec, a self-attentive next-item recommender.

Kang & McAuley (ICDM 2018), "Self-Attentive Sequential Recommendation". Each user's
interactions, in time order, are a sequence; a causal transformer over the last
``max_len`` of them predicts the next item at every step (cross-entropy over all items,
or the paper's binary loss against sampled negatives). A longer history is cut to its
newest ``max_len`` items.

Served from the history at request time: a known user's training sequence plus the
history events newer than the training data, or the whole history of a user the model
never saw, so the next list follows the last click without retraining. Items without a
training interaction (and items unknown to the model) score NaN.

Everything but the network (sequences, windows, leave-last-out early stopping, serving,
state) is :mod:`recsdk_plugins.sequential`'s, shared with ``gru4rec``; training follows
:mod:`recsdk_plugins.deep_training`.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate
from recsdk_plugins.sasrec.model import Architecture, build_network
from recsdk_plugins.sequential import SequentialParams, SequentialPlugin, leave_last_out

from recsdk.errors import ConfigurationError

__all__ = ["NAME", "SASRec", "SASRecParams", "leave_last_out"]

NAME = "sasrec"


class SASRecParams(SequentialParams):
    dim = fields.Integer(
        load_default=64, validate=validate.Range(min=4, max=1024),
        metadata={"description": "embedding and hidden size (a multiple of heads)"})
    blocks = fields.Integer(
        load_default=2, validate=validate.Range(min=1, max=12),
        metadata={"description": "self-attention blocks"})
    heads = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=16),
        metadata={"description": "attention heads per block"})


class SASRec(SequentialPlugin):
    """Next-item scores from a causal transformer over the user's newest items."""

    NAME = NAME
    Params = SASRecParams
    Architecture = Architecture

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params.get("dim", 64) % self.params.get("heads", 1):
            raise ConfigurationError(
                f"plugins.{NAME}: invalid parameters: dim = {self.params['dim']} is not a "
                f"multiple of heads = {self.params['heads']}")

    def architecture(self, n_items: int) -> Architecture:
        p = self.params
        return Architecture(n_items, int(p.get("dim", 64)), int(p.get("blocks", 2)),
                            int(p.get("heads", 1)), int(p.get("max_len", 50)),
                            float(p.get("dropout", 0.2)))

    def build_network(self, arch: Architecture) -> Any:
        return build_network(arch)
