"""Bodies that cannot be read as a batch: 400, 413 or 415, and nothing is stored.

Every ingestion endpoint reads its body the same way, so each case runs on each. The
cases share one SDK with small limits: none of them may store anything, and each
checks that nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from recsdk import RecSDK
from recsdk.api import create_app
from tests.api.conftest import sqlite_sdk
from tests.api.helpers import stored_counts

ENDPOINTS = [
    ("POST", "/api/v1/events", {"user_id": "u1", "item_id": "i1", "type": "view"}),
    ("PUT", "/api/v1/items", {"id": "i1", "title": "Shoe"}),
    ("PUT", "/api/v1/users", {"id": "u1"}),
    ("PUT", "/api/v1/categories", {"id": "c1"}),
    ("POST", "/api/v1/feedback", {"request_id": "r1", "item_id": "i1", "type": "click"}),
]
NOTHING = {"events": 0, "items": 0, "users": 0, "categories": 0, "feedback": 0}
endpoints = pytest.mark.parametrize(("method", "path", "row"), ENDPOINTS,
                                    ids=[p.rsplit("/", 1)[1] for _, p, _ in ENDPOINTS])


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[RecSDK]:
    """One SDK for the module, limited to 1024-byte bodies and 3-row batches."""
    path = tmp_path_factory.mktemp("body") / "body.db"
    sdk = sqlite_sdk(migrated_sqlite, path, api={"max_content_length": 1024, "max_batch": 3})
    yield sdk
    sdk.close()


@pytest.fixture(scope="module")
def client(sdk: RecSDK) -> FlaskClient:
    return create_app(sdk).test_client()


def send(client: FlaskClient, method: str, path: str, data: bytes | str,
         content_type: str | None = "application/json") -> Any:
    return client.open(path, method=method, data=data, content_type=content_type)


@endpoints
@pytest.mark.parametrize("text", ['{"user_id": "u1",', "[1, 2", "{'id': 'i1'}", "",
                                  '{"value": NaN}', "[Infinity]"])
def test_invalid_json_is_400(client: FlaskClient, sdk: RecSDK, method: str, path: str,
                             row: dict[str, Any], text: str) -> None:
    answer = send(client, method, path, text)
    assert answer.status_code == 400
    assert answer.get_json()["message"].startswith("The body is not valid JSON: ")
    assert stored_counts(sdk) == NOTHING


@endpoints
@pytest.mark.parametrize(("text", "kind"), [("null", "null"), ("42", "a number"),
                                            ('"view"', "a string"), ("true", "a boolean")])
def test_a_body_that_is_neither_object_nor_array_is_400(
        client: FlaskClient, sdk: RecSDK, method: str, path: str, row: dict[str, Any],
        text: str, kind: str) -> None:
    answer = send(client, method, path, text)
    assert answer.status_code == 400
    assert answer.get_json()["message"].endswith(f"or a JSON array of them, got {kind}.")
    assert stored_counts(sdk) == NOTHING


@endpoints
def test_an_empty_array_is_400(client: FlaskClient, sdk: RecSDK, method: str, path: str,
                               row: dict[str, Any]) -> None:
    answer = send(client, method, path, "[]")
    assert answer.status_code == 400
    assert "The array is empty" in answer.get_json()["message"]
    assert stored_counts(sdk) == NOTHING


@endpoints
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
def test_a_body_that_is_not_declared_json_is_415(
        client: FlaskClient, sdk: RecSDK, method: str, path: str, row: dict[str, Any],
        content_type: str | None) -> None:
    answer = send(client, method, path, json.dumps(row), content_type)
    assert answer.status_code == 415
    assert "Content-Type: application/json" in answer.get_json()["message"]
    assert stored_counts(sdk) == NOTHING


@endpoints
def test_a_body_over_max_content_length_is_413(
        client: FlaskClient, sdk: RecSDK, method: str, path: str, row: dict[str, Any]) -> None:
    big = json.dumps([row] * 200)
    assert len(big) > 1024
    answer = send(client, method, path, big)
    assert answer.status_code == 413
    assert "limit of 1024 bytes" in answer.get_json()["message"]
    assert "api.max_content_length" in answer.get_json()["message"]
    assert stored_counts(sdk) == NOTHING


@endpoints
def test_a_batch_over_max_batch_is_413_naming_the_limit(
        client: FlaskClient, sdk: RecSDK, method: str, path: str, row: dict[str, Any]) -> None:
    answer = send(client, method, path, json.dumps([row] * 4))
    assert answer.status_code == 413
    message = answer.get_json()["message"]
    assert "A batch of 4" in message
    assert "limit of 3 per request (api.max_batch)" in message
    assert stored_counts(sdk) == NOTHING


def test_a_batch_at_max_batch_is_accepted(make_sdk: Callable[..., RecSDK]) -> None:
    sdk = make_sdk(api={"max_batch": 3})
    client = create_app(sdk).test_client()
    rows = [{"user_id": "u1", "item_id": f"i{n}", "type": "view"} for n in range(3)]
    answer = client.post("/api/v1/events", json=rows)
    assert answer.status_code == 201
    assert sdk.store.count_events() == 3


def test_content_type_with_charset_is_json(make_sdk: Callable[..., RecSDK]) -> None:
    sdk = make_sdk()
    client = create_app(sdk).test_client()
    answer = send(client, "POST", "/api/v1/events",
                  json.dumps({"user_id": "u1", "item_id": "i1", "type": "view"}),
                  "application/json; charset=utf-8")
    assert answer.status_code == 201
    assert sdk.store.count_events() == 1
