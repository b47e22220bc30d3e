"""The ``gru4rec`` plugin: GRU4Rec, a recurrent next-item recommender.

Hidasi, Karatzoglou, Baltrunas & Tikk (ICLR 2016), "Session-based Recommendations with
Recurrent Neural Networks"; with the improvements of Hidasi & Karatzoglou (CIKM 2018),
"Recurrent Neural Networks with Top-k Gains for Session-based Recommendations". Each
user's interactions, in time order, are a sequence; a GRU over the newest ``max_len`` of
them predicts the next item at every step. The loss is softmax cross-entropy over all
items (``loss = "ce"``): the 2018 paper trains its cross-entropy against many negatives
(in-batch and extra sampled ones) and finds it strong once they are many; on a
catalogue of a few thousand items every item can be one, at little cost. ``bce`` (one
uniformly sampled negative per step) is offered for large catalogues; it is not the
2018 paper's BPR-max.

What differs from the papers: training reads windows of ``max_len`` steps, each starting
from a zero state (truncated back-propagation), instead of session-parallel mini-batches
that carry the state across a whole session; a user's whole history is the session. The
optimiser is Adam rather than the official implementation's Adagrad with momentum.

Served from the history at request time: a known user's training sequence plus the
history events newer than the training data, or the whole history of a user the model
never saw, so the next list follows the last click without retraining. Items without a
training interaction (and items unknown to the model) score NaN. Everything but the
network is :mod:`recsdk_plugins.sequential`'s, shared with ``sasrec``; training follows
:mod:`recsdk_plugins.deep_training`.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate
from recsdk_plugins.gru4rec.model import Architecture, build_network
from recsdk_plugins.sequential import SequentialParams, SequentialPlugin

__all__ = ["NAME", "GRU4Rec", "GRU4RecParams"]

NAME = "gru4rec"


class GRU4RecParams(SequentialParams):
    dim = fields.Integer(
        load_default=64, validate=validate.Range(min=4, max=1024),
        metadata={"description": "hidden size, which is also the item embedding size (the "
                  "input embedding is the output one)"})
    layers = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=4),
        metadata={"description": "stacked GRU layers"})
    dropout = fields.Float(
        load_default=0.2, validate=validate.Range(min=0.0, max=0.9),
        metadata={"description": "dropout on the embedded input and on the GRU's output"})


class GRU4Rec(SequentialPlugin):
    """Next-item scores from a GRU over the user's newest items."""

    NAME = NAME
    Params = GRU4RecParams
    Architecture = Architecture

    def architecture(self, n_items: int) -> Architecture:
        p = self.params
        return Architecture(n_items, int(p.get("dim", 64)), int(p.get("layers", 1)),
                            int(p.get("max_len", 50)), float(p.get("dropout", 0.2)))

    def build_network(self, arch: Architecture) -> Any:
        return build_network(arch)
