"""Training, recommendations, similar items and feedback over HTTP, end to end."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.api.schemas import MAX_CART, RecommendationSchema, RecommendedItemSchema
from recsdk.storage import models
from tests.api.conftest import sqlite_sdk
from tests.api.helpers import (
    consumed,
    count_rows,
    generated_events,
    popularity_order,
    train_over_http,
)

SEED = 7
N_ITEMS = 15


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory,
         migrated_sqlite: Path) -> Iterator[tuple[FlaskClient, RecSDK, list[dict[str, Any]]]]:
    """A shop filled and trained over HTTP; one item is sold out; a placement ``cart``."""
    path = tmp_path_factory.mktemp("serving") / "shop.db"
    sdk = sqlite_sdk(migrated_sqlite, path, placements={"cart": {"k": 2}})
    client = create_app(sdk).test_client()
    events = generated_events(n_users=40, n_items=N_ITEMS, seed=SEED)
    items = [{"id": f"sku-{i}", "title": f"Product {i}", "stock": 5} for i in range(N_ITEMS)]
    sold_out = popularity_order(events, dict(sdk.settings.event_weights))[1]
    next(i for i in items if i["id"] == sold_out)["stock"] = 0
    assert client.put("/api/v1/items", json=items).status_code == 200
    assert client.post("/api/v1/events", json=events).status_code == 201
    assert train_over_http(client)["status"] == "succeeded"
    yield client, sdk, events
    sdk.close()


def expected_list(sdk: RecSDK, events: list[dict[str, Any]], user_id: str, k: int) -> list[str]:
    """What popularity plus the default filters must serve, derived from the data."""
    stock = sdk.store.items_frame().set_index("id")["stock"]
    order = popularity_order(events, dict(sdk.settings.event_weights))
    owned = consumed(events, user_id)
    return [i for i in order if stock[i] > 0 and i not in owned][:k]


def test_training_reports_what_it_learned(shop: Any) -> None:
    client, sdk, events = shop
    job = train_over_http(client)
    assert job["status"] == "succeeded"
    report = job["result"]
    assert report["users"] == len({e["user_id"] for e in events})
    assert report["items"] == len({e["item_id"] for e in events})
    assert report["interactions"] > 0
    # plugins with learned state: popularity counts, and what each user consumed
    assert set(report["plugins"]) == {"popularity", "filters"}
    assert report["run_id"] == sdk.model_run


def test_a_new_user_gets_the_most_popular_available_items(shop: Any) -> None:
    client, sdk, events = shop
    answer = client.get("/api/v1/recommendations?user_id=newcomer&k=5")
    assert answer.status_code == 200
    body = answer.get_json()
    assert [i["item_id"] for i in body["items"]] == expected_list(sdk, events, "newcomer", 5)
    assert [i["position"] for i in body["items"]] == [1, 2, 3, 4, 5]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["placement"] == "default"
    assert body["plugins"] == ["popularity"]
    assert body["config_hash"] == sdk.config_hash
    assert body["degraded"] is False
    assert set(body) == set(RecommendationSchema().fields)  # as documented
    assert set(body["items"][0]) == set(RecommendedItemSchema().fields)
    again = client.get("/api/v1/recommendations?user_id=newcomer&k=5").get_json()
    assert body["request_id"] and again["request_id"] != body["request_id"]


def test_a_known_user_is_not_offered_what_they_bought(shop: Any) -> None:
    client, sdk, events = shop
    buyer = next(e["user_id"] for e in events if e["type"] == "purchase")
    body = client.get(f"/api/v1/recommendations?user_id={buyer}&k=4").get_json()
    shown = [i["item_id"] for i in body["items"]]
    assert shown == expected_list(sdk, events, buyer, 4)
    assert not set(shown) & consumed(events, buyer)


def test_an_anonymous_session_and_a_placement(shop: Any) -> None:
    client, sdk, events = shop
    answer = client.get("/api/v1/recommendations?session_id=s-1&k=3&placement=cart")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["placement"] == "cart"
    assert [i["item_id"] for i in body["items"]] == expected_list(sdk, events, "-", 3)


def test_an_unknown_placement_is_422_listing_the_known_ones(shop: Any) -> None:
    client, sdk, _ = shop
    sdk.request_log.flush()
    before = count_rows(sdk, models.RecommendationRequest)
    answer = client.get("/api/v1/recommendations?user_id=u&placement=no-such-page")
    assert answer.status_code == 422
    body = answer.get_json()
    message = body["errors"]["query"]["placement"][0]
    assert "Unknown placement 'no-such-page'" in message
    assert "known placements: cart, default, home, similar" in message
    assert body["message"].startswith("Invalid request: query: placement: Unknown placement")
    sdk.request_log.flush()
    assert count_rows(sdk, models.RecommendationRequest) == before  # nothing was served


@pytest.mark.parametrize(("query", "status", "words"), [
    ("", 400, "give user_id or session_id"),
    ("k=5", 400, "give user_id or session_id"),
    ("user_id=u&k=0", 422, "k:"),
    ("user_id=u&k=1001", 422, "k:"),
    ("user_id=u&k=ten", 422, "Not a valid integer"),
    ("user_id=&k=3", 422, "user_id:"),
    ("user_id=u&placement=", 422, "placement:"),
])
def test_bad_recommendation_queries(shop: Any, query: str, status: int, words: str) -> None:
    client, _, _ = shop
    answer = client.get(f"/api/v1/recommendations?{query}")
    assert answer.status_code == status
    assert words in answer.get_json()["message"]


def test_k_at_its_bounds(shop: Any) -> None:
    client, _, _ = shop
    one = client.get("/api/v1/recommendations?user_id=x&k=1").get_json()
    most = client.get("/api/v1/recommendations?user_id=x&k=1000").get_json()
    assert len(one["items"]) == 1
    assert len(most["items"]) == N_ITEMS - 1  # every item but the sold-out one


def test_similar_items_leave_the_item_out(shop: Any) -> None:
    client, _, events = shop
    item = events[0]["item_id"]
    answer = client.get(f"/api/v1/items/{item}/similar?k=4")
    assert answer.status_code == 200
    body = answer.get_json()
    shown = [i["item_id"] for i in body["items"]]
    assert len(shown) == 4
    assert item not in shown
    assert body["placement"] == "similar"
    assert set(body) == set(RecommendationSchema().fields) - {"token"}  # serves no visitor


@pytest.mark.parametrize("query", ["k=0", "k=1001", "k=many"])
def test_bad_similar_queries(shop: Any, query: str) -> None:
    client, _, _ = shop
    answer = client.get(f"/api/v1/items/sku-1/similar?{query}")
    assert answer.status_code == 422
    assert "k:" in answer.get_json()["message"]


def test_similar_items_before_training_is_409(client: FlaskClient) -> None:
    answer = client.get("/api/v1/items/sku-1/similar")
    assert answer.status_code == 409
    assert "/api/v1/admin/train" in answer.get_json()["message"]


def test_feedback_is_credited_to_the_served_list(shop: Any) -> None:
    client, sdk, _ = shop
    served = client.get("/api/v1/recommendations?user_id=fb-user&k=3").get_json()
    third = served["items"][2]["item_id"]
    before = count_rows(sdk, models.Feedback)
    answer = client.post("/api/v1/feedback", json=[
        {"request_id": served["request_id"], "item_id": third, "type": "click"},
        {"request_id": served["request_id"], "item_id": third, "type": "purchase",
         "value": 19.5}])
    assert answer.status_code == 201
    assert answer.get_json() == {"received": 2, "stored": 2}
    assert count_rows(sdk, models.Feedback) == before + 2
    with sdk.store.engine.connect() as conn:
        rows = conn.execute(models.Feedback.__table__.select().where(
            models.Feedback.request_id == served["request_id"])).mappings().all()
    assert {(r["type"], r["position"], r["user_id"]) for r in rows} == {
        ("click", 3, "fb-user"), ("purchase", 3, "fb-user")}


@pytest.mark.parametrize(("row", "field", "words"), [
    ({"request_id": "no-such-request", "item_id": "sku-1", "type": "click"}, "request_id",
     "Unknown request 'no-such-request'"),
    ({"item_id": "sku-1", "type": "click"}, "request_id", "Missing data"),
    ({"request_id": "r", "item_id": "sku-1", "type": "click", "extra": 1}, "extra",
     "Unknown field"),
    ({"request_id": "r", "item_id": "sku-1", "type": "Click!"}, "type", "Event type must be"),
])
def test_bad_feedback_names_the_row_and_stores_nothing(
        shop: Any, row: dict[str, Any], field: str, words: str) -> None:
    client, sdk, _ = shop
    served = client.get("/api/v1/recommendations?user_id=fb-bad&k=2").get_json()
    good = {"request_id": served["request_id"], "item_id": served["items"][0]["item_id"],
            "type": "click"}
    before = count_rows(sdk, models.Feedback)
    answer = client.post("/api/v1/feedback", json=[good, row])
    assert answer.status_code == 422
    body = answer.get_json()
    assert words in " ".join(body["errors"]["json"]["1"][field])
    assert f"row 1: {field}:" in body["message"]
    assert count_rows(sdk, models.Feedback) == before


def test_training_without_events_is_409_and_keeps_the_model(client: FlaskClient,
                                                            sdk: RecSDK) -> None:
    answer = client.post("/api/v1/admin/train")
    assert answer.status_code == 409
    assert "No events are stored yet" in answer.get_json()["message"]
    assert not sdk.trained


def test_an_item_id_with_a_slash_has_similar_items(client: FlaskClient) -> None:
    events = [{"user_id": f"u{n}", "item_id": item, "type": "view"}
              for n in range(3) for item in ("shoes/42", "hats/7")]
    client.post("/api/v1/events", json=events)
    train_over_http(client)
    answer = client.get("/api/v1/items/shoes/42/similar?k=5")
    assert answer.status_code == 200
    assert [i["item_id"] for i in answer.get_json()["items"]] == ["hats/7"]


def test_training_while_a_training_runs_is_409(sdk: RecSDK) -> None:
    app = create_app(sdk)
    client = app.test_client()
    client.post("/api/v1/events", json={"user_id": "u", "item_id": "i", "type": "view"})
    release = threading.Event()
    sdk.jobs.start(lambda: release.wait(10) and {})  # as a running training job
    busy = client.post("/api/v1/admin/train")
    assert busy.status_code == 409
    assert "already running" in busy.get_json()["message"]
    assert not sdk.trained
    release.set()
    sdk.jobs.wait(timeout_s=5)
    assert train_over_http(client)["status"] == "succeeded"
    assert sdk.trained


def test_a_cart_longer_than_the_limit_is_422_naming_cart(shop: Any) -> None:
    client, _, _ = shop
    query = "&".join(f"cart=sku-{i}" for i in range(MAX_CART + 1))
    answer = client.get(f"/api/v1/recommendations?user_id=u&placement=cart&{query}")
    assert answer.status_code == 422
    assert "cart" in answer.get_json()["errors"]["query"]
    ok = client.get("/api/v1/recommendations?user_id=u&placement=cart&cart=sku-1&cart=sku-2")
    assert ok.status_code == 200
