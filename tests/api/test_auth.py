"""The API key: required by writes when configured, never by reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from recsdk import RecSDK
from recsdk.api import create_app
from tests.api.conftest import API_KEY, sqlite_sdk
from tests.api.helpers import stored_counts, train_over_http

WRITES = [
    ("POST", "/api/v1/events", {"user_id": "u1", "item_id": "i1", "type": "view"}),
    ("PUT", "/api/v1/items", {"id": "i1"}),
    ("PUT", "/api/v1/users", {"id": "u1"}),
    ("PUT", "/api/v1/categories", {"id": "c1"}),
    ("POST", "/api/v1/feedback", {"request_id": "r1", "item_id": "i1", "type": "click"}),
    ("POST", "/api/v1/admin/train", None),
]
writes = pytest.mark.parametrize(("method", "path", "body"), WRITES,
                                 ids=[p.rsplit("/", 1)[1] for _, p, _ in WRITES])


@pytest.fixture(scope="module")
def refused_sdk(tmp_path_factory: pytest.TempPathFactory,
                migrated_sqlite: Path) -> Iterator[RecSDK]:
    """One keyed SDK for every refused request: none of them may change anything."""
    path = tmp_path_factory.mktemp("auth") / "auth.db"
    sdk = sqlite_sdk(migrated_sqlite, path, api={"api_key": API_KEY})
    yield sdk
    sdk.close()


@pytest.fixture(scope="module")
def refused_client(refused_sdk: RecSDK) -> FlaskClient:
    return create_app(refused_sdk).test_client()


@writes
@pytest.mark.parametrize(("headers", "words"), [
    ({}, "Missing API key"),
    ({"X-API-Key": "wrong"}, "Wrong API key"),
    ({"X-API-Key": API_KEY[:-1]}, "Wrong API key"),
    ({"X-API-Key": ""}, "Wrong API key"),
    ({"Authorization": f"Bearer {API_KEY}x"}, "Wrong API key"),
    ({"Authorization": f"Basic {API_KEY}"}, "Missing API key"),
])
def test_a_write_without_the_right_key_is_401_and_stores_nothing(
        refused_client: FlaskClient, refused_sdk: RecSDK, method: str, path: str,
        body: object, headers: dict[str, str], words: str) -> None:
    answer = refused_client.open(path, method=method, json=body, headers=headers)
    assert answer.status_code == 401
    assert words in answer.get_json()["message"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored_counts(refused_sdk) == {"events": 0, "items": 0, "users": 0,
                                          "categories": 0, "feedback": 0}
    assert not refused_sdk.trained


def test_the_key_is_checked_before_the_body_is_read(refused_client: FlaskClient) -> None:
    answer = refused_client.post("/api/v1/events", data="not json", content_type="text/plain")
    assert answer.status_code == 401


@pytest.mark.parametrize("headers", [{"X-API-Key": API_KEY},
                                     {"Authorization": f"Bearer {API_KEY}"},
                                     {"Authorization": f"bearer {API_KEY}"}])
def test_the_right_key_in_either_header_is_accepted(
        keyed_client: FlaskClient, keyed_sdk: RecSDK, headers: dict[str, str]) -> None:
    answer = keyed_client.post("/api/v1/events", headers=headers,
                               json={"user_id": "u1", "item_id": "i1", "type": "view"})
    assert answer.status_code == 201
    assert train_over_http(keyed_client, headers)["status"] == "succeeded"
    assert keyed_sdk.store.count_events() == 1
    assert keyed_sdk.trained


@pytest.mark.parametrize("path", ["/api/v1/recommendations?user_id=u1", "/healthz",
                                  "/metrics", "/api/openapi.json"])
def test_reads_need_no_key(refused_client: FlaskClient, path: str) -> None:
    assert refused_client.get(path).status_code == 200


def test_without_a_configured_key_writes_are_open(client: FlaskClient, sdk: RecSDK) -> None:
    answer = client.post("/api/v1/events", json={"user_id": "u", "item_id": "i", "type": "view"})
    assert answer.status_code == 201
    assert sdk.store.count_events() == 1
