"""Parameters of the ``lightgcn`` plugin.

Besides LightGCN's own (embedding size, layer count, L2 penalty, Adam step, batch),
it takes the training parameters every deep plugin shares (:class:`DeepParams`: epochs,
early stopping, refit, progress bar), the event weighting of the collaborative plugins
(:class:`WeightingParams`) and the candidate-retrieval choice (:class:`IndexParams`).
Defaults were chosen on a validation split carved from the MovieLens-100K training
data (docs/algorithms/lightgcn.md, "How the defaults were chosen").
"""

from __future__ import annotations

from marshmallow import fields, validate
from recsdk_plugins.deep_training import DeepParams

from recsdk.interactions import WeightingParams
from recsdk.retrieval import IndexParams


class LightGCNParams(DeepParams, WeightingParams, IndexParams):
    """LightGCN (He et al. 2020) trained with BPR."""

    factors = fields.Integer(
        load_default=64, validate=validate.Range(min=1, max=2048),
        metadata={"description": "embedding size of users and items"})
    layers = fields.Integer(
        load_default=3, validate=validate.Range(min=0, max=8),
        metadata={"description": "graph convolution layers K; the final embedding is the "
                  "mean of layers 0..K (0: plain BPR matrix factorisation)"})
    regularization = fields.Float(
        load_default=1e-3, validate=validate.Range(min=0, max=10),
        metadata={"description": "L2 penalty on the layer-0 embeddings of each "
                  "(user, positive, negative) triple"})
    learning_rate = fields.Float(
        load_default=1e-2, validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={"description": "Adam step size"})
    batch_size = fields.Integer(
        load_default=4096, validate=validate.Range(min=1, max=1 << 22),
        metadata={"description": "(user, positive, negative) triples per step; each step "
                  "propagates over the whole graph, so larger batches make epochs faster"})
    num_threads = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=4096),
        metadata={"description": "torch CPU threads while training; 0: torch's setting"})
