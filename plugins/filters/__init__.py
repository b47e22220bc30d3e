"""The default rerank chain: drop consumed items, unavailable items and duplicates.

Enabled unless configuration says ``[plugins.filters] enabled = false``. Runs before
any other reranker (``tryfirst``) so that diversity or business rerankers only see
items that can be shown.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields

from recsdk import Plugin, hookimpl
from recsdk.types import Ranking, RecommendationRequest

#: What a user already "has": bought or rated items are not recommended again.
DEFAULT_CONSUMED_TYPES = ["purchase", "rating", "review"]


class FilterParams(Schema):
    class Meta:
        unknown = RAISE

    consumed_types = fields.List(
        fields.String(), load_default=lambda: list(DEFAULT_CONSUMED_TYPES), allow_none=True,
        metadata={"description": "event types whose items are dropped; null: any type"},
    )
    exclude_consumed = fields.Boolean(load_default=True)
    exclude_unavailable = fields.Boolean(
        load_default=True, metadata={"description": "drop inactive or out-of-stock items"})
    drop_unknown_items = fields.Boolean(
        load_default=False, metadata={"description": "drop items missing from the catalogue"})
    dedupe = fields.Boolean(
        load_default=True,
        metadata={"description": "one item per attributes.group_id (e.g. sizes of a product)"})


class AvailabilityFilters(Plugin):
    Params = FilterParams

    @hookimpl(tryfirst=True)
    def recsdk_rerank(self, request: RecommendationRequest, ranking: Ranking) -> Ranking:
        p = self.params
        consumed = (request.history.items_of_types(p["consumed_types"])
                    if p["exclude_consumed"] else set())
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
                    group = catalog.group[pos]
                    ok = group not in groups
                    groups.add(group)
            seen.add(item)
            keep.append(ok)
        return ranking.keep(keep)
