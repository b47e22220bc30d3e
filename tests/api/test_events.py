"""POST /api/v1/events: accepted batches are stored once; rejected ones not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from recsdk import RecSDK
from tests.api.helpers import stored_counts

EVENTS = "/api/v1/events"


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": f"u{n}", "item_id": f"i{n}", "type": "view", **extra}


def test_one_event_is_stored_and_counted(client: FlaskClient, sdk: RecSDK) -> None:
    answer = client.post(EVENTS, json=event(1, session_id="s1", value=2.5,
                                            context={"page": "home"}))
    assert answer.status_code == 201
    assert answer.get_json() == {"received": 1, "stored": 1, "duplicates": 0}
    frame = sdk.store.events_frame()
    assert frame[["user_id", "item_id", "type", "session_id"]].values.tolist() == [
        ["u1", "i1", "view", "s1"]]
    assert frame["value"].tolist() == [2.5]


def test_a_batch_is_stored_whole(client: FlaskClient, sdk: RecSDK) -> None:
    batch = [event(n, timestamp=f"2024-05-0{n}T10:00:00Z") for n in range(1, 6)]
    answer = client.post(EVENTS, json=batch)
    assert answer.status_code == 201
    assert answer.get_json() == {"received": 5, "stored": 5, "duplicates": 0}
    frame = sdk.store.events_frame()
    assert frame["item_id"].tolist() == [f"i{n}" for n in range(1, 6)]
    assert frame["timestamp"].iloc[0] == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_event_id_repeated_within_a_request_is_stored_once(
        client: FlaskClient, sdk: RecSDK) -> None:
    batch = [event(1, event_id="e-1"), event(1, event_id="e-1"), event(2, event_id="e-2")]
    answer = client.post(EVENTS, json=batch)
    assert answer.status_code == 201
    assert answer.get_json() == {"received": 3, "stored": 2, "duplicates": 1}
    assert sdk.store.count_events() == 2


def test_event_id_repeated_across_requests_is_stored_once(
        client: FlaskClient, sdk: RecSDK) -> None:
    first = client.post(EVENTS, json=[event(1, event_id="e-1"), event(2, event_id="e-2")])
    again = client.post(EVENTS, json=[event(1, event_id="e-1"), event(2, event_id="e-2")])
    mixed = client.post(EVENTS, json=[event(2, event_id="e-2"), event(3, event_id="e-3")])
    assert first.status_code == 201
    assert again.status_code == 200  # all duplicates: nothing was created
    assert again.get_json() == {"received": 2, "stored": 0, "duplicates": 2}
    assert mixed.status_code == 201
    assert mixed.get_json() == {"received": 2, "stored": 1, "duplicates": 1}
    assert sorted(sdk.store.events_frame()["item_id"]) == ["i1", "i2", "i3"]


def test_ingestion_counts_reach_metrics(client: FlaskClient) -> None:
    client.post(EVENTS, json=[event(1, event_id="m"), event(2, event_id="m")])
    client.post(EVENTS, json=[event(3, type="Bad Type")])
    text = client.get("/metrics").get_data(as_text=True)
    assert 'recsdk_events_total{outcome="stored"} 1.0' in text
    assert 'recsdk_events_total{outcome="duplicate"} 1.0' in text
    assert 'recsdk_events_total{outcome="rejected"} 1.0' in text


FUTURE = (datetime.now(UTC) + timedelta(days=3)).isoformat()


@pytest.mark.parametrize(("row", "field", "words"), [
    ({"item_id": "i1", "type": "view"}, "user_id", "Missing data"),
    ({"user_id": "u1", "type": "view"}, "item_id", "Missing data"),
    ({"user_id": "u1", "item_id": "i1"}, "type", "Missing data"),
    ({"user_id": ["u1"], "item_id": "i1", "type": "view"}, "user_id", "Not a valid id"),
    ({"user_id": "u1", "item_id": "i1", "type": "view", "value": "high"}, "value",
     "Not a finite number"),
    ({"user_id": "u1", "item_id": "i1", "type": "View!"}, "type", "lower-case"),
    ({"user_id": "u1", "item_id": "i1", "type": "view", "colour": "red"}, "colour",
     "Unknown field"),
    ({"user_id": "u1", "item_id": "i1", "type": "view", "timestamp": FUTURE}, "timestamp",
     "future"),
    ({"user_id": "u1", "item_id": "i1", "type": "view", "timestamp": "yesterday"},
     "timestamp", "Not a valid timestamp"),
    ({"user_id": "u1", "item_id": "i1", "type": "view", "timestamp": 1.7e12}, "timestamp",
     "milliseconds given as seconds"),
    ({"user_id": "u1", "item_id": "i1", "type": "view", "timestamp": 0}, "timestamp",
     "before 1990"),
    ({"user_id": "u1", "item_id": "i1", "type": "rating"}, "value", "rating event needs"),
    ({"user_id": "u1", "item_id": "i1", "type": "view", "context": ["a"]}, "context",
     "must be an object"),
])
def test_an_invalid_row_rejects_the_whole_batch_naming_row_and_field(
        client: FlaskClient, sdk: RecSDK, row: dict[str, Any], field: str, words: str) -> None:
    client.post(EVENTS, json=event(0))  # accepted before: must survive the rejection
    answer = client.post(EVENTS, json=[event(1), event(2), row])
    assert answer.status_code == 422
    body = answer.get_json()
    problems = body["errors"]["json"]
    assert list(problems) == ["2"]
    assert words in " ".join(problems["2"][field])
    assert f"row 2: {field}:" in body["message"]
    assert sdk.store.events_frame()["item_id"].tolist() == ["i0"]


def test_a_single_invalid_object_gets_field_messages_without_row(
        client: FlaskClient, sdk: RecSDK) -> None:
    answer = client.post(EVENTS, json={"user_id": "u1", "type": "rating", "value": 4})
    assert answer.status_code == 422
    body = answer.get_json()
    assert body["errors"]["json"] == {"item_id": ["Missing data for required field."]}
    assert body["message"] == "Invalid events: item_id: Missing data for required field."
    assert sdk.store.count_events() == 0


def test_a_row_that_is_not_an_object_is_named(client: FlaskClient, sdk: RecSDK) -> None:
    answer = client.post(EVENTS, json=[event(1), "view", event(3)])
    assert answer.status_code == 422
    assert answer.get_json()["errors"]["json"] == {"1": {"_schema": ["Invalid input type."]}}
    assert "row 1" in answer.get_json()["message"]
    assert sdk.store.count_events() == 0


def test_every_bad_row_is_reported(client: FlaskClient, sdk: RecSDK) -> None:
    rows = [event(n) for n in range(6)]
    for n in (1, 3, 4, 5):
        del rows[n]["item_id"]
    answer = client.post(EVENTS, json=rows)
    body = answer.get_json()
    assert sorted(body["errors"]["json"], key=int) == ["1", "3", "4", "5"]
    assert body["message"].endswith("(and 1 more)")
    assert stored_counts(sdk)["events"] == 0
