"""The ``content`` plugin: content-based recommendations from item features.

* similar items: weighted cosine between the item's feature blocks and every
  candidate's (text, category path, tags, price position, optionally image);
* users: the profile vector is the mean of the features of the user's history items,
  weighted by event type (a purchase counts more than a view), compared by cosine
  with every candidate.

Because it needs only features, it serves users with a single event (even one unseen
at training) and items nobody has touched: catalogue items without interactions get
features at fit time, items added later are featurised on first request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.features.content import ContentModel, aligned_items, log_scaled
from recsdk.features.feature_store import FeatureStore
from recsdk.features.items import BLOCKS, ItemActivity, ItemFeatureBuilder
from recsdk.features.text import DEFAULT_TEXT_FIELDS, TEXT_ENCODERS
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

log = logging.getLogger(__name__)

DEFAULT_BLOCK_WEIGHTS = {"text": 1.0, "category": 1.0, "tags": 0.5, "price": 0.25}


class ContentParams(Schema):
    class Meta:
        unknown = RAISE

    blocks = fields.Dict(
        keys=fields.String(validate=validate.OneOf(BLOCKS)),
        values=fields.Float(validate=validate.Range(min=0)),
        load_default=lambda: dict(DEFAULT_BLOCK_WEIGHTS),
        metadata={"description": f"feature blocks and their weights; blocks: {BLOCKS}"})
    text_encoder = fields.String(
        load_default="tfidf", validate=validate.OneOf(TEXT_ENCODERS),
        metadata={"description": "tfidf (scikit-learn) or minilm (all-MiniLM-L6-v2)"})
    text_fields = fields.List(fields.String(), load_default=lambda: list(DEFAULT_TEXT_FIELDS),
                              validate=validate.Length(min=1))
    tfidf_max_features = fields.Integer(load_default=50_000, validate=validate.Range(min=1))
    price_buckets = fields.Integer(load_default=10, validate=validate.Range(2, 100))
    image_weights = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "ResNet-18 state_dict file; none: colour/texture fallback"})
    image_root = fields.String(load_default=None, allow_none=True, metadata={
        "description": "the only folder image files are read from; none: none are"})
    batch_size = fields.Integer(load_default=64, validate=validate.Range(1, 4096))
    popularity_weight = fields.Float(
        load_default=0.0, validate=validate.Range(min=0),
        metadata={"description": "add this times log-popularity (0..1) to each score: a "
                  "prior that orders items whose features tie; 0 keeps pure content"})
    persist_features = fields.Boolean(
        load_default=True,
        metadata={"description": "keep MiniLM and image vectors in the item_features table "
                  "and recompute only changed items"})

    @validates_schema
    def _some_block(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not any(w > 0 for w in data.get("blocks", DEFAULT_BLOCK_WEIGHTS).values()):
            raise ValidationError("at least one block needs a positive weight", "blocks")


class ContentBased(Plugin):
    """Content-based scoring; the fitted state is one :class:`ContentModel` (``model_``),
    replaced in one assignment by a refit."""

    Params = ContentParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._device = "cpu"
        self._weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS

    @property
    def block_weights(self) -> dict[str, float]:
        weights = self.params.get("blocks", DEFAULT_BLOCK_WEIGHTS)
        return {b: float(w) for b, w in weights.items() if w > 0}

    def _builder(self) -> ItemFeatureBuilder:
        p = self.params
        return ItemFeatureBuilder(
            blocks=sorted(self.block_weights), text_encoder=p.get("text_encoder", "tfidf"),
            text_fields=p.get("text_fields", DEFAULT_TEXT_FIELDS),
            tfidf_max_features=p.get("tfidf_max_features", 50_000),
            price_buckets=p.get("price_buckets", 10), image_weights=p.get("image_weights"),
            image_root=p.get("image_root"), device=self._device,
            batch_size=p.get("batch_size", 64))

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self._device = context.device
        self._weights = dict(context.settings.event_weights)

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self._device = context.device
        self._weights = dict(context.settings.event_weights)
        catalog = dataset.catalog
        if catalog.frame is None or not len(catalog):
            raise ConfigurationError(
                "the content plugin needs a catalogue with item texts, categories or tags; "
                "the dataset's catalogue is empty")
        builder = self._builder().fit(catalog.frame, catalog.tree)
        store = None
        if context.store is not None and self.params.get("persist_features", True):
            store = FeatureStore(context.store)
        features = builder.transform(aligned_items(catalog, dataset.item_ids), catalog.tree,
                                     ItemActivity.from_dataset(dataset, dataset.item_ids), store)
        for report in features.reports:
            log.info("item features %s: %d computed, %d reused", report.name, report.computed,
                     report.reused)
        self.table_ = features.table
        self.model_ = ContentModel(
            builder=builder, item_ids=np.asarray(dataset.item_ids, dtype=object),
            blocks=features.blocks,
            popularity=log_scaled(features.table["popularity"].to_numpy(float)),
            user_ids=np.asarray(dataset.user_ids, dtype=object),
            user_items=sp.csr_matrix(dataset.matrix, dtype=np.float32),
        )

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        return self.model_.state() if hasattr(self, "model_") else None

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        self.model_ = ContentModel.from_state(state, self._builder(), dataset.item_ids)

    # ---- scoring ---------------------------------------------------------------------

    def history_weights(self, item_ids: Sequence[str], types: Sequence[str]
                        ) -> tuple[list[str], np.ndarray]:
        """Each distinct history item with its summed event-type weight."""
        totals: dict[str, float] = {}
        for item_id, kind in zip(item_ids, types, strict=True):
            totals[item_id] = totals.get(item_id, 0.0) + float(self._weights.get(kind, 1.0))
        return list(totals), np.array(list(totals.values()), dtype=np.float64)

    def _with_prior(self, model: ContentModel, scores: np.ndarray,
                    codes: np.ndarray) -> np.ndarray:
        """Add the popularity prior (items new since the fit count as unpopular)."""
        weight = float(self.params.get("popularity_weight", 0.0))
        return scores if weight == 0 else scores + weight * model.prior(codes)

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        model = getattr(self, "model_", None)
        if model is None or not request.history.item_ids:
            return None
        items, weights = self.history_weights(request.history.item_ids,
                                              request.history.types)
        profile = model.profile(items, weights, request.catalog)
        if profile is None:
            return None
        codes = np.asarray(candidates.codes)
        scores = model.score(profile, candidates.ids, codes, request.catalog,
                             self.block_weights)[0]
        return self._with_prior(model, scores, codes)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        model = getattr(self, "model_", None)
        if model is None:
            return None
        codes = np.asarray(candidates.codes)
        scores = model.score_users(user_ids, candidates.ids, codes, self.block_weights)
        return self._with_prior(model, scores, codes)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        model = getattr(self, "model_", None)
        if model is None:
            return None
        query, present = model.rows([str(item_id)], None, catalog)
        if not any(p.any() for p in present.values()):
            return None
        codes = np.asarray(candidates.codes)
        scores = model.score(query, candidates.ids, codes, catalog, self.block_weights)[0]
        return self._with_prior(model, scores, codes)
