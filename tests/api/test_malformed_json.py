"""Malformed JSON of any shape is a 400 naming the problem, never a 500.

Deep nesting, non-UTF-8 bytes and wrong top-level types are refused while the body is
read; nesting that JSON can hold but recsdk does not (``context`` deeper than
MAX_JSON_DEPTH) is a 422 naming the field. Nothing of a refused request is stored.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from recsdk import RecSDK
from recsdk.rules import MAX_JSON_DEPTH
from tests.api.helpers import stored_counts

WRITES = [("POST", "/api/v1/events"), ("PUT", "/api/v1/items"), ("PUT", "/api/v1/users"),
          ("PUT", "/api/v1/categories"), ("POST", "/api/v1/feedback")]
writes = pytest.mark.parametrize(("method", "path"), WRITES,
                                 ids=[p.rsplit("/", 1)[1] for _, p in WRITES])
EMPTY = {"events": 0, "items": 0, "users": 0, "categories": 0, "feedback": 0}


def send(client: FlaskClient, method: str, path: str, data: bytes | str) -> Any:
    return client.open(path, method=method, data=data, content_type="application/json")


@writes
@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    '[{"user_id": "u", "item_id": "i", "type": "view", "context": ' + '{"a":' * 50_000
    + "1" + "}" * 50_001 + "]",
], ids=["arrays", "objects", "inside-a-row"])
def test_json_nested_beyond_reading_is_400(client: FlaskClient, sdk: RecSDK, method: str,
                                           path: str, body: str) -> None:
    answer = send(client, method, path, body)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert "nested too deeply" in answer.get_json()["message"]
    assert stored_counts(sdk) == EMPTY


@writes
@pytest.mark.parametrize("body", [b'{"id": "\xff\xfe\xfa"}', b"\x80\x81", b'["caf\xe9"]'])
def test_bytes_that_are_not_utf8_are_400(client: FlaskClient, sdk: RecSDK, method: str,
                                         path: str, body: bytes) -> None:
    answer = send(client, method, path, body)
    assert answer.status_code == 400
    assert answer.get_json()["message"].startswith(("The body is not UTF-8",
                                                     "The body is not valid JSON"))


@writes
@pytest.mark.parametrize(("body", "kind"), [("7", "a number"), ('"x"', "a string"),
                                            ("null", "null"), ("true", "a boolean")])
def test_wrong_top_level_types_are_400(client: FlaskClient, method: str, path: str,
                                       body: str, kind: str) -> None:
    answer = send(client, method, path, body)
    assert answer.status_code == 400
    assert f"got {kind}" in answer.get_json()["message"]


@writes
def test_rows_of_the_wrong_type_are_422_naming_the_row(client: FlaskClient, method: str,
                                                       path: str) -> None:
    answer = send(client, method, path, '[[1], "x", 3, null, [[[[]]]]]')
    assert answer.status_code == 422
    assert set(answer.get_json()["errors"]["json"]) == {"0", "1", "2", "3", "4"}


@pytest.mark.parametrize(("path", "row", "field"), [
    ("/api/v1/events", {"user_id": "u", "item_id": "i", "type": "view"}, "context"),
    ("/api/v1/items", {"id": "i"}, "attributes"),
    ("/api/v1/users", {"id": "u"}, "attributes"),
])
def test_nesting_beyond_the_documented_depth_is_422(client: FlaskClient, sdk: RecSDK,
                                                    path: str, row: dict[str, Any],
                                                    field: str) -> None:
    deepest_ok: dict[str, Any] = {"a": 1}
    for _ in range(MAX_JSON_DEPTH - 1):
        deepest_ok = {"a": deepest_ok}
    method = "POST" if path.endswith("events") else "PUT"
    too_deep = client.open(path, method=method, json={**row, field: {"a": deepest_ok}})
    assert too_deep.status_code == 422
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in too_deep.get_json()["message"]
    assert field in too_deep.get_json()["errors"]["json"]
    assert stored_counts(sdk) == EMPTY
    fine = client.open(path, method=method, json={**row, field: deepest_ok})
    assert fine.status_code in (200, 201), fine.get_json()
