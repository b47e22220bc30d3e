"""The ``interest`` plugin: user interest profiles for the pipeline and for the shop.

It scores nothing itself. It fits :class:`recsdk.features.interest.UserInterestModel`
on the training data (with demographics from the store's users), folds every stored
event in as it arrives, and hands each request's profile to scorers and rerankers
as ``request.features["interest"]`` (see :meth:`UserProfile.to_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from marshmallow import RAISE, Schema, fields, validate

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset
from recsdk.features.interest import UserInterestModel, UserProfile
from recsdk.types import Event, PluginContext, RecommendationRequest


class InterestParams(Schema):
    class Meta:
        unknown = RAISE

    half_life_days = fields.Float(
        load_default=30.0, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "an event's weight in the affinities halves every this "
                  "many days"})
    tag_share = fields.Float(
        load_default=0.5, validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={"description": "share of a tree level's affinity (or of activity, for "
                  "item tags) above which the user is tagged with it"})
    min_events_for_tags = fields.Integer(
        load_default=3, validate=validate.Range(min=0),
        metadata={"description": "users with fewer events get no tags"})
    dwell_types = fields.List(
        fields.String(), load_default=lambda: ["view"],
        metadata={"description": "event types whose value is dwell time in seconds"})
    session_profiles = fields.Boolean(
        load_default=True,
        metadata={"description": "build a profile from the request's history for users "
                  "the model has not seen (anonymous sessions, new users)"})


class UserInterest(Plugin):
    """Interest profiles, refreshed by every event; see :mod:`recsdk.features.interest`."""

    Params = InterestParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.model = self._new_model()
        self._weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
        self._store: Any = None
        self._catalog_version: object = None

    def _new_model(self) -> UserInterestModel:
        p = self.params
        return UserInterestModel(
            half_life_days=p.get("half_life_days", 30.0), tag_share=p.get("tag_share", 0.5),
            min_events_for_tags=p.get("min_events_for_tags", 3),
            dwell_types=p.get("dwell_types", ("view",)))

    def _catalog_seen(self, catalog: Catalog | None) -> None:
        """Re-read items when the catalogue snapshot changed (replays held events)."""
        if catalog is None:
            return
        key = (id(catalog), getattr(catalog, "version", ""))
        if key != self._catalog_version:
            self._catalog_version = key
            self.model.set_catalog(catalog)

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self._store = context.store
        self._weights = dict(context.settings.event_weights)

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        users = context.store.users_frame() if context.store is not None else None
        self._weights = dict(context.settings.event_weights)
        self.model = self._new_model().fit(dataset, users)
        self._catalog_version = (id(dataset.catalog), getattr(dataset.catalog, "version", ""))

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        return self.model.state() if hasattr(self.model, "users_") else None

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        self.model = self._new_model().load_state(state, dataset.catalog)
        self._catalog_version = (id(dataset.catalog), getattr(dataset.catalog, "version", ""))

    @hookimpl
    def recsdk_collect_event(self, events: list[Event], weights: Mapping[str, float]) -> None:
        if hasattr(self.model, "users_"):
            self.model.update(events, weights)

    @hookimpl
    def recsdk_extract_features(self, request: RecommendationRequest) -> dict[str, Any] | None:
        if not hasattr(self.model, "users_"):
            return None
        self._catalog_seen(request.catalog)
        profile = self.profile(request.user_id)
        if profile is None and self.params.get("session_profiles", True) \
                and request.history.item_ids:
            profile = self.model.profile_from_history(
                request.history.item_ids, request.history.types, self._weights,
                user_id=request.user_id)
        return None if profile is None else profile.to_dict()

    def profile(self, user_id: str | None) -> UserProfile | None:
        """The stored profile of ``user_id``, or None when the model has not seen them."""
        if user_id is None or user_id not in self.model:
            return None
        return self.model.profile(user_id)
