"""Parameters of the ``cfgan`` plugin.

CFGAN's own (layer sizes, the zero-reconstruction and partial-masking shares, the
zero-reconstruction weight, Adam steps, batch, discriminator and generator passes per
epoch), the training parameters every deep plugin shares (:class:`DeepParams`:
epochs, early stopping, refit, progress bar) and the event weighting of the
collaborative plugins (:class:`WeightingParams`). Defaults were chosen on a validation
split carved from the MovieLens-100K training data (docs/algorithms/cfgan.md, "How the
defaults were chosen").
"""

from __future__ import annotations

from marshmallow import fields, validate
from recsdk_plugins.deep_training import DeepParams

from recsdk.interactions import WeightingParams


class CFGANParams(DeepParams, WeightingParams):
    """CFGAN (Chae et al. 2018), the ZP variant: zero-reconstruction and partial masking."""

    generator_layers = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=65_536)),
        load_default=lambda: [400], validate=validate.Length(min=1, max=8),
        metadata={"description": "hidden layer sizes of the generator (items -> ... -> items)"})
    discriminator_layers = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=65_536)),
        load_default=lambda: [125], validate=validate.Length(min=1, max=8),
        metadata={"description": "hidden layer sizes of the discriminator (2 x items -> ... "
                  "-> 1)"})
    zr_share = fields.Float(
        load_default=0.1, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "share of each user's unseen items drawn per step whose "
                  "generated value is pulled to zero (zero-reconstruction, S_ZR)"})
    pm_share = fields.Float(
        load_default=0.1, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "share of each user's unseen items drawn per step that the "
                  "discriminator sees besides the user's items (partial masking, S_PM)"})
    zr_weight = fields.Float(
        load_default=1.0, validate=validate.Range(min=0.0, max=1000.0),
        metadata={"description": "weight alpha of the zero-reconstruction term in the "
                  "generator's loss (0: partial masking only)"})
    generator_learning_rate = fields.Float(
        load_default=1e-3, validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={"description": "Adam step size of the generator"})
    discriminator_learning_rate = fields.Float(
        load_default=1e-3, validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={"description": "Adam step size of the discriminator"})
    weight_decay = fields.Float(
        load_default=0.0, validate=validate.Range(min=0, max=10),
        metadata={"description": "L2 penalty (Adam weight decay) on both networks"})
    batch_size = fields.Integer(
        load_default=64, validate=validate.Range(min=1, max=1 << 20),
        metadata={"description": "users per step"})
    discriminator_steps = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=100),
        metadata={"description": "passes over the users training the discriminator per epoch"})
    generator_steps = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=100),
        metadata={"description": "passes over the users training the generator per epoch"})
    num_threads = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=4096),
        metadata={"description": "torch CPU threads while training; 0: torch's setting"})
    ensemble = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=32),
        metadata={"description": "generators trained under the seeds seed, seed + 1, ... "
                  "(each its own early stopping and refit), their outputs averaged: "
                  "steadier and better lists for that many times the fit"})
