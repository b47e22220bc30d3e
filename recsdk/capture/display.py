"""What a widget shows of each item: title, prices, image and link, from the catalogue.

Values are sent as data, never markup: the browser script renders them with
``textContent`` and accepts only http(s) or same-site URLs for links and images, so a
title like ``<img onerror=...>`` shows as that text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from recsdk.catalog import Catalog
from recsdk.types import RecommendedItem

#: Item fields a widget may show (``url`` comes from ``attributes.url``).
DISPLAY_FIELDS = ("title", "price", "original_price", "image_url", "url")


def display_items(catalog: Catalog, items: Sequence[RecommendedItem]) -> list[dict[str, Any]]:
    """The served items with their display fields (None where the catalogue has none)."""
    frame = catalog.frame
    out = []
    for item in items:
        row: dict[str, Any] = {"item_id": item.item_id, "position": item.position}
        at = catalog.index.get(item.item_id)
        record = frame.iloc[at] if frame is not None and at is not None else None
        attributes = _value(record, "attributes")
        row.update(
            title=_text(_value(record, "title")),
            price=_number(_value(record, "price")),
            original_price=_number(_value(record, "original_price")),
            image_url=_text(_value(record, "image_url")),
            url=_text(attributes.get("url")) if isinstance(attributes, dict) else None,
        )
        out.append(row)
    return out


def _value(record: Any, name: str) -> Any:
    if record is None or name not in record.index:
        return None
    return record[name]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
