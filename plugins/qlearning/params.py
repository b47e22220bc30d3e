"""Parameters of the ``qlearning`` plugin.

Defaults were chosen on validation seeds of the simulator built from the synthetic
shop, never on the benchmark's evaluation seeds (docs/algorithms/qlearning.md).
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

MODELS = ("tabular", "dqn")
#: learning rate when none is given: the tabular step-size floor, Adam's step for the DQN
DEFAULT_LEARNING_RATE = {"tabular": 0.05, "dqn": 1e-3}


class QLearningParams(Schema):
    class Meta:
        unknown = RAISE

    model = fields.String(
        load_default="tabular", validate=validate.OneOf(MODELS),
        metadata={"description": "tabular: Q-learning over state and action classes; "
                  "dqn: a deep Q-network over a learned state (needs torch)"})
    episodes = fields.Integer(
        load_default=5000, validate=validate.Range(min=1, max=10_000_000),
        metadata={"description": "simulated users (episodes) to train on"})
    gamma = fields.Float(
        load_default=0.9, validate=validate.Range(min=0.0, max=1.0, max_inclusive=False),
        metadata={"description": "discount of the next list's value (0: myopic)"})
    learning_rate = fields.Float(
        load_default=None, allow_none=True,
        validate=validate.Range(min=0.0, max=1.0, min_inclusive=False),
        metadata={"description": "tabular: the floor of a cell's step size (default "
                  "0.05); dqn: Adam's step (default 0.001)"})
    shrinkage = fields.Float(
        load_default=20.0, validate=validate.Range(min=0.0, max=1e6),
        metadata={"description": "tabular: examination mass with which a state's Q value "
                  "is pulled towards the action's mean over states (0: the raw table)"})
    epsilon_start = fields.Float(
        load_default=1.0, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "exploration at the first episode (chance that a position "
                  "shows a random pool item)"})
    epsilon_end = fields.Float(
        load_default=0.05, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "exploration after the decay"})
    epsilon_decay = fields.Float(
        load_default=0.5, validate=validate.Range(min=0.0, max=1.0, min_inclusive=False),
        metadata={"description": "share of the episodes over which epsilon decays linearly"})
    pool = fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=100_000),
        metadata={"description": "candidates the policy orders: in training the best by "
                  "interest x popularity, when serving the first of the upstream ranking"})
    blend = fields.Float(
        load_default=0.0, validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "weight of the upstream score in the served order "
                  "(both min-max scaled over the pool; 0: Q decides, the upstream order "
                  "breaks ties)"})
    simulator = fields.Dict(
        keys=fields.String(), load_default=dict,
        metadata={"description": "SimulatorParams fields for the training simulator "
                  "(slate_size, lists_per_visit, horizon_visits, position_bias, ...)"})
    embedding = fields.Integer(
        load_default=16, validate=validate.Range(min=1, max=1024),
        metadata={"description": "dqn: size of the learned leaf embeddings"})
    hidden = fields.Integer(
        load_default=64, validate=validate.Range(min=1, max=4096),
        metadata={"description": "dqn: width of the two hidden layers"})
    replay_size = fields.Integer(
        load_default=10_000, validate=validate.Range(min=1, max=10_000_000),
        metadata={"description": "dqn: transitions the replay buffer keeps"})
    batch_size = fields.Integer(
        load_default=64, validate=validate.Range(min=1, max=65_536),
        metadata={"description": "dqn: transitions per gradient step"})
    train_every = fields.Integer(
        load_default=2, validate=validate.Range(min=1, max=10_000),
        metadata={"description": "dqn: lists shown between two gradient steps"})
    target_update = fields.Integer(
        load_default=200, validate=validate.Range(min=1, max=1_000_000),
        metadata={"description": "dqn: gradient steps between two copies of the online "
                  "network into the target network"})
    num_threads = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=4096),
        metadata={"description": "dqn: torch CPU threads while training; 0: torch's setting"})
    progress = fields.Boolean(
        load_default=False, metadata={"description": "show a progress bar while training"})

    @validates_schema
    def _epsilon_falls(self, data: dict, **_: object) -> None:
        if data.get("epsilon_end", 0.05) > data.get("epsilon_start", 1.0):
            raise ValidationError("epsilon_end must not exceed epsilon_start", "epsilon_end")
