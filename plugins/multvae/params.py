"""Parameters of the ``multvae`` plugin.

Besides Mult-VAE's own (layer sizes, input dropout, KL annealing, Adam step, batch),
it takes the training parameters every deep plugin shares (:class:`DeepParams`: epochs,
early stopping, refit, progress bar) and the event weighting of the collaborative
plugins (:class:`WeightingParams`). Defaults were chosen on a validation split carved
from the MovieLens-100K training data (docs/algorithms/multvae.md, "How the defaults
were chosen").
"""

from __future__ import annotations

from marshmallow import fields, validate
from recsdk_plugins.deep_training import DeepParams, ema_decay_field

from recsdk.interactions import WeightingParams


class MultVAEParams(DeepParams, WeightingParams):
    """Mult-VAE (Liang et al. 2018): multinomial likelihood, annealed KL."""

    hidden = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=16_384)),
        load_default=lambda: [600], validate=validate.Length(min=1, max=4),
        metadata={"description": "encoder hidden layer sizes from the items inwards; the "
                  "decoder mirrors them (the paper: [600])"})
    latent = fields.Integer(
        load_default=200, validate=validate.Range(min=1, max=4096),
        metadata={"description": "size of the latent z (the paper: 200)"})
    dropout = fields.Float(
        load_default=0.7, validate=validate.Range(min=0.0, max=1.0, max_inclusive=False),
        metadata={"description": "dropout on the normalised input row while training"})
    anneal_cap = fields.Float(
        load_default=0.3, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "largest KL weight beta (1: the plain ELBO)"})
    anneal_steps = fields.Integer(
        load_default=200, validate=validate.Range(min=0, max=10_000_000),
        metadata={"description": "gradient steps over which beta grows linearly from 0 to "
                  "anneal_cap (0: anneal_cap from the first step)"})
    learning_rate = fields.Float(
        load_default=1e-3, validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={"description": "Adam step size"})
    weight_decay = fields.Float(
        load_default=0.0, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "L2 penalty on the weights (Adam's weight_decay)"})
    batch_size = fields.Integer(
        load_default=128, validate=validate.Range(min=1, max=65_536),
        metadata={"description": "users per gradient step"})
    ema_decay = ema_decay_field(0.99)
    num_threads = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=4096),
        metadata={"description": "torch CPU threads while training; 0: torch's setting"})
