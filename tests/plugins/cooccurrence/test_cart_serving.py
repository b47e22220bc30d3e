"""The cart placement end to end: REST cart parameter -> cooccurrence -> filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from recsdk import RecSDK
from recsdk.api import create_app

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def events() -> list[dict[str, Any]]:
    """Baskets {tent, stakes}, {tent, lamp}, {tent, stakes}: stakes go with a tent.

    Each basket is one session id, its two purchases a day apart, so only the
    stored session ids (not a 30-minute window) can put them in one basket.
    """
    rows = []
    baskets = [("tent", "stakes"), ("tent", "lamp"), ("tent", "stakes"), ("mug", "lamp")]
    for n, pair in enumerate(baskets):
        for j, item in enumerate(pair):
            rows.append({"user_id": f"u{n}", "item_id": item, "type": "purchase",
                         "session_id": f"s{n}",
                         "timestamp": (T0 + timedelta(days=n * 3 + j)).isoformat()})
    rows += [{"user_id": f"v{n}", "item_id": "mug", "type": "view",
              "timestamp": (T0 + timedelta(hours=n)).isoformat()} for n in range(9)]
    return rows


def test_the_cart_placement_completes_the_basket_and_leaves_the_cart_out(tmp_path) -> None:
    sdk = RecSDK({"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
                  "pipeline": {"timeout_ms": 10_000},
                  "plugins": {"popularity": {}, "cooccurrence": {}},
                  "placements": {"cart": {"weights": {"popularity": 0.1}}}}, environ={})
    try:
        sdk.upsert_items([{"id": i, "stock": 3} for i in ("tent", "stakes", "lamp", "mug")])
        sdk.track_many(events())
        sdk.fit()
        client = create_app(sdk).test_client()
        body = client.get("/api/v1/recommendations?user_id=w&placement=cart&cart=tent&k=3"
                          ).get_json()
        items = [i["item_id"] for i in body["items"]]
        assert items[0] == "stakes" and items[1] == "lamp" and "tent" not in items
        assert body["items"][0]["source"] == "cooccurrence"
        # without a cart, a visitor with no history gets popularity (mug: most viewed)
        plain = client.get("/api/v1/recommendations?user_id=w&k=1").get_json()
        assert [i["item_id"] for i in plain["items"]] == ["mug"]
    finally:
        sdk.close()


def test_request_cart_reads_ids_and_ignores_what_is_not_a_list_of_ids() -> None:
    from recsdk.types import RecommendationRequest

    def cart(value: object) -> tuple[str, ...]:
        return RecommendationRequest(user_id="u", k=3, context={"cart": value}).cart

    assert cart(["a", 7, "a", None]) == ("a", "7")
    assert cart("a") == ("a",)
    assert cart({"a": 1}) == ()
    assert RecommendationRequest(user_id="u", k=3).cart == ()


def test_filters_keep_the_cart_when_told_to(tmp_path) -> None:
    sdk = RecSDK({"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
                  "pipeline": {"timeout_ms": 10_000},
                  "plugins": {"popularity": {}, "filters": {"exclude_cart": False}}},
                 environ={})
    try:
        sdk.track_many([{"user_id": f"u{n}", "item_id": "mug", "type": "view"}
                        for n in range(3)])
        sdk.fit()
        got = sdk.recommend("w", k=3, context={"cart": ["mug"]}).item_ids
        assert got == ["mug"]
    finally:
        sdk.close()
