"""The default rerank chain: drop consumed items, the cart's, unavailable items and duplicates.

Enabled unless configuration says ``[plugins.filters] enabled = false``. Runs before
any other reranker (``tryfirst``) so that diversity or business rerankers only see
items that can be shown. What a user consumed is what they did since training (the
request's recent history) plus everything in the training data: the recent history
is capped, and a long-time customer's old purchases must stay filtered too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from marshmallow import RAISE, Schema, fields

from recsdk import Plugin, hookimpl
from recsdk.dataset import InteractionDataset
from recsdk.types import PluginContext, Ranking, RecommendationRequest

if TYPE_CHECKING:
    from recsdk.engines.spark_data import SparkEvents

#: What a user already "has": bought or rated items are not recommended again.
DEFAULT_CONSUMED_TYPES = ["purchase", "rating", "review"]


def product_group(group: object, item_id: str) -> object:
    """The item's product group; an item whose stored ``group_id`` is not text or a
    number (data written before validation refused it) is a group of its own, so one
    bad row cannot break the filters for every request."""
    if isinstance(group, str | int | float) and not isinstance(group, bool):
        return group
    return ("item", item_id)


class FilterParams(Schema):
    class Meta:
        unknown = RAISE

    consumed_types = fields.List(
        fields.String(), load_default=lambda: list(DEFAULT_CONSUMED_TYPES), allow_none=True,
        metadata={"description": "event types whose items are dropped; null: any type"},
    )
    exclude_consumed = fields.Boolean(load_default=True)
    exclude_cart = fields.Boolean(
        load_default=True,
        metadata={"description": "drop the items of request.context['cart'] (what the "
                                 "visitor is about to buy)"})
    exclude_unavailable = fields.Boolean(
        load_default=True, metadata={"description": "drop inactive or out-of-stock items"})
    drop_unknown_items = fields.Boolean(
        load_default=False, metadata={"description": "drop items missing from the catalogue"})
    dedupe = fields.Boolean(
        load_default=True,
        metadata={"description": "one item per attributes.group_id (e.g. sizes of a product)"})


class AvailabilityFilters(Plugin):
    Params = FilterParams

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset) -> None:
        inter = dataset.interactions
        types = self.params["consumed_types"]
        if types is not None:
            inter = inter[inter["type"].isin(types)]
        self.consumed_ = sp.csr_matrix(
            (np.ones(len(inter), dtype=np.int8),
             (inter["user"].to_numpy(), inter["item"].to_numpy())),
            shape=(dataset.n_users, dataset.n_items))
        self._vocabulary(dataset)

    def fit_spark(self, data: SparkEvents, context: PluginContext) -> None:
        """``recsdk_fit`` with Spark SQL (``recsdk train --engine spark``)."""
        from recsdk_plugins.filters.spark import consumed_matrix

        self.consumed_ = consumed_matrix(data, self.params["consumed_types"])
        self._vocabulary(data.vocabulary)

    def _vocabulary(self, dataset: InteractionDataset) -> None:
        self._user_index = dataset.user_index
        self._item_ids = dataset.item_ids

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "consumed_"):
            return None
        m = self.consumed_
        return {"indptr": m.indptr, "indices": m.indices, "shape": np.array(m.shape)}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        indices = state["indices"]
        self.consumed_ = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.int8), indices, state["indptr"]),
            shape=tuple(state["shape"]))
        self._vocabulary(dataset)

    def trained_consumption(self, user_id: str | None) -> set[str]:
        """Items the user consumed in the training data."""
        code = None if user_id is None else getattr(self, "_user_index", {}).get(user_id)
        if code is None:
            return set()
        m = self.consumed_
        return set(self._item_ids[m.indices[m.indptr[code]:m.indptr[code + 1]]])

    @hookimpl(tryfirst=True)
    def recsdk_rerank(self, request: RecommendationRequest, ranking: Ranking) -> Ranking:
        p = self.params
        consumed = (request.history.items_of_types(p["consumed_types"])
                    | self.trained_consumption(request.user_id)
                    if p["exclude_consumed"] else set())
        if p["exclude_cart"]:
            consumed = consumed | set(request.cart)
        catalog = request.catalog
        keep: list[bool] = []
        groups: set[object] = set()
        seen: set[str] = set()
        for item in ranking.item_ids:
            ok = item not in consumed and item not in seen
            pos = catalog.index.get(item) if catalog is not None else None
            if ok and pos is None:
                ok = not p["drop_unknown_items"]
            elif ok and pos is not None:
                if p["exclude_unavailable"] and not catalog.available[pos]:
                    ok = False
                elif p["dedupe"]:
                    group = product_group(catalog.group[pos], item)
                    ok = group not in groups
                    groups.add(group)
            seen.add(item)
            keep.append(ok)
        return ranking.keep(keep)
