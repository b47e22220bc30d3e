"""PUT /api/v1/items, /users and /categories: upserts, refused whole when invalid."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from recsdk import RecSDK
from tests.api.helpers import stored_counts


def test_categories_items_and_users_are_upserted(client: FlaskClient, sdk: RecSDK) -> None:
    cats = client.put("/api/v1/categories", json=[
        {"id": "shoes", "parent_id": "all"}, {"id": "all", "name": "Everything"}])
    assert cats.status_code == 200
    assert cats.get_json() == {"received": 2, "upserted": 2}
    items = client.put("/api/v1/items", json=[
        {"id": "i1", "title": "Boot", "category_id": "shoes", "price": 80.0, "stock": 3},
        {"id": "i2", "title": "Sandal", "category_id": "shoes", "tags": ["summer"]}])
    assert items.get_json() == {"received": 2, "upserted": 2}
    users = client.put("/api/v1/users", json={"id": "u1", "attributes": {"tier": "gold"}})
    assert users.get_json() == {"received": 1, "upserted": 1}

    frame = sdk.store.categories_frame().set_index("id")
    assert frame.loc["shoes", "parent_id"] == "all"
    assert frame.loc["all", "name"] == "Everything"
    assert sdk.store.users_frame().to_dict("records") == [
        {"id": "u1", "attributes": {"tier": "gold"}}]
    assert list(sdk.catalog.ids) == ["i1", "i2"]  # the serving snapshot sees new items at once


def test_an_item_update_keeps_fields_left_out(client: FlaskClient, sdk: RecSDK) -> None:
    client.put("/api/v1/items", json={"id": "i1", "title": "Boot", "price": 80.0})
    client.put("/api/v1/items", json={"id": "i1", "price": 60.0})
    row = sdk.store.items_frame().set_index("id").loc["i1"]
    assert (row["title"], row["price"]) == ("Boot", 60.0)


@pytest.mark.parametrize(("path", "row", "field", "words"), [
    ("/api/v1/items", {"title": "no id"}, "id", "Missing data"),
    ("/api/v1/items", {"id": "i9", "price": -1}, "price", "must not be negative"),
    ("/api/v1/items", {"id": "i9", "stock": "many"}, "stock", "Not a valid integer"),
    ("/api/v1/items", {"id": "i9", "colour": "red"}, "colour", "Unknown field"),
    ("/api/v1/items", {"id": "i9", "category_id": "nowhere"}, "category_id",
     "Unknown category 'nowhere'"),
    ("/api/v1/users", {"id": ""}, "id", "Not a valid id"),
    ("/api/v1/users", {"id": "u9", "attributes": "gold"}, "attributes", "must be an object"),
    ("/api/v1/categories", {"id": "c9", "parent_id": "missing"}, "parent_id",
     "Unknown category 'missing'"),
    ("/api/v1/categories", {"name": "no id"}, "id", "Missing data"),
])
def test_an_invalid_row_rejects_the_whole_request(
        client: FlaskClient, sdk: RecSDK, path: str, row: dict[str, Any], field: str,
        words: str) -> None:
    client.put("/api/v1/categories", json={"id": "all"})
    before = stored_counts(sdk)
    valid = {"/api/v1/items": {"id": "i0"}, "/api/v1/users": {"id": "u0"},
             "/api/v1/categories": {"id": "c0", "parent_id": "all"}}[path]
    answer = client.put(path, json=[valid, row])
    assert answer.status_code == 422
    body = answer.get_json()
    assert list(body["errors"]["json"]) == ["1"]
    assert words in " ".join(body["errors"]["json"]["1"][field])
    assert f"row 1: {field}:" in body["message"]
    assert stored_counts(sdk) == before


def test_a_category_cycle_is_refused(client: FlaskClient, sdk: RecSDK) -> None:
    answer = client.put("/api/v1/categories", json=[{"id": "a", "parent_id": "b"},
                                                   {"id": "b", "parent_id": "a"}])
    assert answer.status_code == 422
    assert "Category cycle" in answer.get_json()["message"]
    assert stored_counts(sdk)["categories"] == 0
