"""Parameter schemas of the factorisation plugins: what each model takes, with ranges.

Every schema inherits the shared event weighting (:class:`WeightingParams`: event
types, time decay) and the candidate-retrieval choice (:class:`IndexParams`), so the
three plugins are configured alike. Defaults were chosen by ``recsdk tune`` on the
MovieLens-100K training split (docs/algorithms/factorization.md, "Tuning").
"""

from __future__ import annotations

from marshmallow import fields, validate

from recsdk.interactions import WeightingParams
from recsdk.retrieval import IndexParams


def factors_field(default: int) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=2048),
                          metadata={"description": "latent dimensions per user and item"})


def iterations_field(default: int) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=10_000),
                          metadata={"description": "training passes over the data"})


def regularization_field(default: float) -> fields.Float:
    return fields.Float(load_default=default, validate=validate.Range(min=0), metadata={
        "description": "L2 penalty on the factors (the fold-in uses it too)"})


class FactorizationParams(WeightingParams, IndexParams):
    """What every factorisation model shares."""

    num_threads = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=4096),
        metadata={"description": "CPU threads for training; 0: every core"})


class ALSParams(FactorizationParams):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008)."""

    factors = factors_field(128)
    iterations = iterations_field(15)
    regularization = regularization_field(45.0)

    alpha = fields.Float(
        load_default=8.0, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "confidence = alpha x weighted interaction strength"})


class BPRParams(FactorizationParams):
    """Bayesian personalised ranking (Rendle et al. 2009)."""

    # unset (None): the chosen solver's tuned default (BPR.SOLVER_DEFAULTS)
    factors = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=2048),
        metadata={"description": "latent dimensions per user and item (default: 64 with "
                  "adam, 128 with implicit)"})
    iterations = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=10_000),
        metadata={"description": "epochs over the positive cells (default: 300 with adam, "
                  "100 with implicit)"})
    regularization = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=0),
        metadata={"description": "L2 penalty on the factors of each sampled triple; the "
                  "fold-in uses it too (default: 0.03)"})
    learning_rate = fields.Float(
        load_default=None, allow_none=True,
        validate=validate.Range(min=0, max=10, min_inclusive=False),
        metadata={"description": "Adam or SGD step size (default: 0.001 with adam, 0.01 "
                  "with implicit)"})
    verify_negative_samples = fields.Boolean(
        load_default=True,
        metadata={"description": "resample a negative the user did interact with (slower, "
                  "usually more accurate)"})
    solver = fields.String(
        load_default="adam", validate=validate.OneOf(["adam", "implicit"]),
        metadata={"description": "adam: mini-batch Adam in numpy (seeded, deterministic); "
                  "implicit: implicit's SGD (Hogwild threads, CUDA)"})
    batch_size = fields.Integer(
        load_default=2048, validate=validate.Range(min=1, max=1 << 20),
        metadata={"description": "adam solver: (user, positive, negative) triples per step"})
    item_bias = fields.Boolean(
        load_default=True,
        metadata={"description": "adam solver: learn a bias per item (implicit's always does)"})
    refit_users = fields.Boolean(
        load_default=False,
        metadata={"description": "after training, replace each user's SGD factors by the "
                  "exact per-user optimum (the fold-in solve): better lists, about 25 ms "
                  "per user of extra training time"})


class LMFParams(FactorizationParams):
    """Logistic matrix factorisation (Johnson 2014)."""

    factors = factors_field(30)
    iterations = iterations_field(120)
    regularization = regularization_field(4.0)

    learning_rate = fields.Float(
        load_default=0.5, validate=validate.Range(min=0, max=100, min_inclusive=False),
        metadata={"description": "AdaGrad step size"})
    neg_prop = fields.Integer(
        load_default=30, validate=validate.Range(min=1, max=1000),
        metadata={"description": "negative samples per positive interaction"})
    refit_users = fields.Boolean(
        load_default=False,
        metadata={"description": "after training, replace each user's SGD factors by the "
                  "exact per-user optimum (the fold-in solve): better lists, about 30 ms "
                  "per user of extra training time"})
