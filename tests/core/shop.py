"""A tiny deterministic shop for the core tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from recsdk import RecSDK


def shop_rows(n_users: int = 30, n_items: int = 20) -> dict[str, list[dict[str, Any]]]:
    """A tiny deterministic shop: two departments, items alternating between them."""
    categories = [
        {"id": "all", "name": "All"},
        {"id": "shoes", "parent_id": "all"},
        {"id": "hats", "parent_id": "all"},
    ]
    items = [
        {"id": f"i{i}", "title": f"Item {i}", "category_id": "shoes" if i % 2 else "hats",
         "price": 10.0 + i, "stock": 5}
        for i in range(n_items)
    ]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    events = []
    for u in range(n_users):
        # item popularity decreases with the item number; user u also likes i(u % 4)
        for j in range(1 + u % 5):
            events.append({"user_id": f"u{u}", "item_id": f"i{j}", "type": "view",
                           "timestamp": (start + timedelta(minutes=u * 10 + j)).isoformat()})
        events.append({"user_id": f"u{u}", "item_id": f"i{u % 4}", "type": "purchase",
                       "timestamp": (start + timedelta(minutes=u * 10 + 9)).isoformat()})
    return {"categories": categories, "items": items, "events": events}


def fill(sdk: RecSDK, rows: dict[str, list[dict[str, Any]]] | None = None) -> None:
    rows = rows or shop_rows()
    sdk.upsert_categories(rows["categories"])
    sdk.upsert_items(rows["items"])
    sdk.track_many(rows["events"])
