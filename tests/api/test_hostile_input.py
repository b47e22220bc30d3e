"""Input the storage or the algorithms cannot hold is a 4xx naming the field, never a 500.

Every case runs on SQLite and on PostgreSQL (where NUL characters, infinities and
32-bit columns used to fail inside the database), through the app's test client. A
refused request stores nothing, and the server keeps answering normally after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.errors import ValidationFailed
from recsdk.rules import MAX_CATEGORY_DEPTH, MAX_JSON_DEPTH
from recsdk.storage.store import Store
from tests.api.conftest import sqlite_sdk
from tests.api.helpers import stored_counts
from tests.postgres import fresh_postgres_database

EVENT = {"user_id": "u1", "item_id": "i1", "type": "view"}
BIG_INT = "1" + "0" * 400  # a JSON integer no float or column can hold


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                               marks=pytest.mark.postgres)])
def sdk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        migrated_sqlite: Path) -> Iterator[RecSDK]:
    if request.param == "sqlite":
        made = sqlite_sdk(migrated_sqlite, tmp_path_factory.mktemp("hostile") / "h.db")
        yield made
        made.close()
        return
    with fresh_postgres_database("recsdk_hostile") as url:
        store = Store(url)
        store.upgrade()
        store.close()
        made = RecSDK({"database_url": url, "device": "cpu"}, environ={}, migrate=False)
        yield made
        made.close()


@pytest.fixture(scope="module")
def client(sdk: RecSDK) -> FlaskClient:
    client = create_app(sdk).test_client()
    assert client.put("/api/v1/categories", json={"id": "c1"}).status_code == 200
    assert client.put("/api/v1/items", json={"id": "i1", "category_id": "c1"}).status_code == 200
    return client


def send(client: FlaskClient, method: str, path: str, body: str) -> Any:
    return client.open(path, method=method, data=body, content_type="application/json")


def event_with(field: str, raw: str) -> str:
    """An event whose ``field`` is the raw JSON text ``raw`` (escapes kept as sent)."""
    fields = {k: json.dumps(v) for k, v in EVENT.items()}
    fields[field] = raw
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"a": doc}
    return doc


CASES = [
    # events: NUL bytes and lone surrogates in every text field, whatever the JSON type
    ("POST", "/api/v1/events", event_with("user_id", r'"a\u0000b"'), "user_id", "NUL"),
    ("POST", "/api/v1/events", event_with("item_id", r'"\ud800"'), "item_id", "surrogate"),
    ("POST", "/api/v1/events", event_with("session_id", r'"s\u0000"'), "session_id", "NUL"),
    ("POST", "/api/v1/events", event_with("event_id", r'"\udfff-x"'), "event_id", "surrogate"),
    ("POST", "/api/v1/events", event_with("type", r'"vi\u0000ew"'), "type", "Event type"),
    ("POST", "/api/v1/events", event_with("context", r'{"k\u0000": 1}'), "context", "NUL"),
    ("POST", "/api/v1/events", event_with("context", r'{"k": "\ud800"}'), "context",
     "surrogate"),
    # ids over 255 characters whatever their JSON type
    ("POST", "/api/v1/events", event_with("user_id", "7" * 300), "user_id", "255"),
    ("POST", "/api/v1/events", event_with("user_id", json.dumps("u" * 256)), "user_id", "255"),
    ("POST", "/api/v1/events", event_with("item_id", BIG_INT), "item_id", "255"),
    # datetimes out of range once converted to UTC
    ("POST", "/api/v1/events", event_with("timestamp", '"0001-01-01T00:00:00+01:00"'),
     "timestamp", "out of range"),
    ("POST", "/api/v1/events", event_with("timestamp", '"9999-12-31T23:59:59-01:00"'),
     "timestamp", "out of range"),
    ("POST", "/api/v1/events", event_with("timestamp", BIG_INT), "timestamp", "milliseconds"),
    # numbers beyond their columns, or not finite
    ("POST", "/api/v1/events", event_with("value", BIG_INT), "value", "finite"),
    ("POST", "/api/v1/events", event_with("value", "1e309"), "value", "finite"),
    ("POST", "/api/v1/events", event_with("context", '{"x": 1e309}'), "context", "finite"),
    ("POST", "/api/v1/events", event_with("context", '{"x": [' + BIG_INT + "]}"), "context",
     "64 bits"),
    ("POST", "/api/v1/events", event_with("context", json.dumps(nested(MAX_JSON_DEPTH + 1))),
     "context", "nested deeper"),
    # feedback
    ("POST", "/api/v1/feedback", json.dumps({"request_id": "r\u0000", "item_id": "i1",
                                             "type": "click"}), "request_id", "NUL"),
    ("POST", "/api/v1/feedback", '{"request_id": "r", "item_id": "i1", "type": "click", '
     '"timestamp": "0001-01-01T00:00:00+01:00"}', "timestamp", "out of range"),
    ("POST", "/api/v1/feedback", '{"request_id": "r", "item_id": "i1", "type": "click", '
     '"value": 1e309}', "value", "finite"),
    # items
    ("PUT", "/api/v1/items", '{"id": "50", "attributes": {"group_id": []}}', "attributes",
     "group_id"),
    ("PUT", "/api/v1/items", '{"id": "50", "attributes": {"group_id": {"a": 1}}}',
     "attributes", "group_id"),
    ("PUT", "/api/v1/items", '{"id": "50", "stock": 2147483648}', "stock", "2147483647"),
    ("PUT", "/api/v1/items", '{"id": "50", "price": 1e309}', "price", "finite"),
    ("PUT", "/api/v1/items", '{"id": "50", "original_price": ' + BIG_INT + "}",
     "original_price", "finite"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "title": "t" * 1001}), "title", "1000"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "title": "a\u0000b"}), "title", "NUL"),
    ("PUT", "/api/v1/items", '{"id": "50", "description": "\\ud800"}', "description",
     "surrogate"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "description": "d" * 50_001}),
     "description", "50000"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "tags": ["t"] * 101}), "tags",
     "Longer than maximum length 100"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "tags": ["a\u0000"]}), "tags", "NUL"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "image_url": "x\u0000.png"}),
     "image_url", "NUL"),
    ("PUT", "/api/v1/items", '{"id": "50", "attributes": {"x": 1e309}}', "attributes",
     "finite"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "attributes": {"x": "\u0000"}}),
     "attributes", "NUL"),
    ("PUT", "/api/v1/items", json.dumps({"id": "50", "attributes": nested(MAX_JSON_DEPTH + 1)}),
     "attributes", "nested deeper"),
    ("PUT", "/api/v1/items", '{"id": ' + "9" * 256 + "}", "id", "255"),
    # users and categories
    ("PUT", "/api/v1/users", '{"id": "\\ud800"}', "id", "surrogate"),
    ("PUT", "/api/v1/users", json.dumps({"id": "u", "attributes": {"k": "v\u0000"}}),
     "attributes", "NUL"),
    ("PUT", "/api/v1/categories", json.dumps({"id": "c9", "name": "n\u0000"}), "name", "NUL"),
]


@pytest.mark.parametrize(("method", "path", "body", "field", "words"), CASES,
                         ids=[f"{c[1].rsplit('/', 1)[1]}-{c[3]}-{n}"
                              for n, c in enumerate(CASES)])
def test_hostile_input_is_422_naming_the_field(client: FlaskClient, sdk: RecSDK, method: str,
                                               path: str, body: str, field: str,
                                               words: str) -> None:
    before = stored_counts(sdk)
    answer = send(client, method, path, body)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:500]
    problems = answer.get_json()["errors"]["json"]
    assert field in problems, problems
    assert words in json.dumps(problems[field], ensure_ascii=False), problems
    assert stored_counts(sdk) == before
    assert client.post("/api/v1/events", json=EVENT).status_code == 201  # still healthy


@pytest.mark.parametrize("query", ["user_id=a%00b", "session_id=s%00", "user_id=u1&"
                                   "placement=home%00", "user_id=" + "u" * 256])
def test_hostile_query_strings_are_422(client: FlaskClient, query: str) -> None:
    answer = client.get(f"/api/v1/recommendations?{query}")
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    assert answer.get_json()["errors"]["query"]


@pytest.mark.parametrize("item", ["a%00b", "x" * 256])
def test_hostile_similar_item_ids_are_422(client: FlaskClient, item: str) -> None:
    answer = client.get(f"/api/v1/items/{item}/similar")
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    assert "item_id" in answer.get_data(as_text=True)


def test_a_3000_long_category_chain_is_refused(client: FlaskClient, sdk: RecSDK) -> None:
    chain = [{"id": "k0"}] + [{"id": f"k{i}", "parent_id": f"k{i - 1}"} for i in range(1, 3000)]
    answer = client.put("/api/v1/categories", json=chain)
    assert answer.status_code == 422
    assert f"at most {MAX_CATEGORY_DEPTH}" in answer.get_data(as_text=True)
    assert not sdk.store.categories_frame()["id"].isin(["k0", "k1"]).any()


def test_category_depth_is_checked_against_the_stored_tree(client: FlaskClient,
                                                           sdk: RecSDK) -> None:
    chain = [{"id": "d1"}] + [{"id": f"d{i}", "parent_id": f"d{i - 1}"}
                              for i in range(2, MAX_CATEGORY_DEPTH + 1)]
    assert client.put("/api/v1/categories", json=chain).status_code == 200
    deeper = {"id": "d-too-deep", "parent_id": f"d{MAX_CATEGORY_DEPTH}"}
    answer = client.put("/api/v1/categories", json=deeper)
    assert answer.status_code == 422
    assert "Category chain too deep" in answer.get_json()["errors"]["json"]["parent_id"][0]
    # moving the root under another category would deepen every stored descendant
    assert client.put("/api/v1/categories", json={"id": "d-top"}).status_code == 200
    moved = client.put("/api/v1/categories", json={"id": "d1", "parent_id": "d-top"})
    assert moved.status_code == 422
    assert "too deep" in moved.get_data(as_text=True)


@pytest.mark.parametrize("how", ["one request", "two requests", "three requests"])
def test_category_cycles_are_refused_however_built(client: FlaskClient, sdk: RecSDK,
                                                   how: str) -> None:
    a, b, c = (f"{how}-{name}" for name in "abc")
    if how == "one request":
        answer = client.put("/api/v1/categories", json=[
            {"id": a, "parent_id": b}, {"id": b, "parent_id": a}])
    elif how == "two requests":
        assert client.put("/api/v1/categories", json=[
            {"id": a}, {"id": b, "parent_id": a}]).status_code == 200
        answer = client.put("/api/v1/categories", json={"id": a, "parent_id": b})
    else:
        for row in ({"id": a}, {"id": b, "parent_id": a}, {"id": c, "parent_id": b}):
            assert client.put("/api/v1/categories", json=row).status_code == 200
        answer = client.put("/api/v1/categories", json={"id": a, "parent_id": c})
    assert answer.status_code == 422
    assert "Category cycle" in answer.get_data(as_text=True)
    parents = sdk.store.categories_frame().set_index("id")["parent_id"]
    assert a not in parents or pd.isna(parents[a])  # nothing of the refused write stayed


def test_the_python_api_refuses_the_same(sdk: RecSDK) -> None:
    with pytest.raises(ValidationFailed) as err:
        sdk.upsert_items([{"id": "50", "attributes": {"group_id": []}}])
    assert "attributes" in err.value.messages[0]
    with pytest.raises(ValidationFailed) as err:
        sdk.track_many([{**EVENT, "timestamp": "9999-12-31T23:59:59-01:00"},
                        {**EVENT, "user_id": 10**300}])
    assert set(err.value.messages) == {0, 1}
    with pytest.raises(ValidationFailed, match="Category cycle"):
        sdk.upsert_categories([{"id": "py-a", "parent_id": "py-b"},
                               {"id": "py-b", "parent_id": "py-a"}])


def test_a_bad_group_id_stored_earlier_breaks_no_one(sdk: RecSDK) -> None:
    # written past validation (an older version, or straight into the store)
    sdk.store.upsert_items([{"id": "old-bad", "attributes": {"group_id": []}},
                            {"id": "fine", "attributes": {"group_id": "g"}}])
    sdk.track_many([{"user_id": f"gu{i}", "item_id": item, "type": "view"}
                    for i in range(3) for item in ("old-bad", "fine")])
    sdk.fit()
    sdk.refresh_catalog()
    result = sdk.recommend("someone-new", k=5)
    assert not result.degraded, result.failures
    assert {"old-bad", "fine"} <= set(result.item_ids)


def test_a_database_that_cannot_serve_is_503_with_retry_after(
        client: FlaskClient, sdk: RecSDK, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("INSERT ...", {}, Exception("deadlock detected"))

    monkeypatch.setattr(sdk, "track_many", down)
    answer = client.post("/api/v1/events", json=EVENT)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert "unavailable or busy" in answer.get_json()["message"]
