"""The bulk fast path of event validation must agree with the marshmallow schema."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError

from recsdk.errors import ValidationFailed
from recsdk.schemas import EventSchema, _fast_event, load_events

NOW = datetime.now(UTC)
CHOICES = {
    "user_id": ["u1", 7, "", None, True, 3.5, "x" * 256, ["u"]],
    "item_id": ["i1", 12, "", None, {"id": 1}],
    "type": ["view", "rating", "add_to_cart", "Click", "", 5, "a" * 70, "custom:wish-list"],
    "timestamp": [None, "2024-01-01T00:00:00Z", "2024-01-01T10:00:00+02:00",
                  "2024-01-01 10:00:00", 1_700_000_000, 1_700_000_000.5, 1e15, "soon",
                  (NOW + timedelta(days=2)).isoformat(), "1980-01-01T00:00:00",
                  float("nan"), True, NOW],
    "session_id": [None, "s1", 4, "", False],
    "value": [None, 1, 2.5, "3", float("inf"), True, "x"],
    "event_id": [None, "e1", 99, ""],
    "context": [None, {"page": "home"}, {1: "a"}, ["x"], "ctx"],
}


def random_row(rng: random.Random) -> dict:
    row = {}
    for key, options in CHOICES.items():
        if key in ("user_id", "item_id", "type") or rng.random() < 0.6:
            # mostly plain values, so that both paths get exercised
            row[key] = rng.choice(options[:2] if rng.random() < 0.8 else options)
    if rng.random() < 0.05:
        row["colour"] = "red"
    if rng.random() < 0.05:
        del row["user_id"]
    return row


def test_fast_path_agrees_with_schema_on_random_rows():
    rng = random.Random(1234)
    schema = EventSchema()
    accepted = 0
    for _ in range(5000):
        row = random_row(rng)
        fast = _fast_event(row, datetime.now(UTC), set())
        try:
            reference = schema.load(row)
        except ValidationError:
            reference = None
        if fast is not None:
            accepted += 1
            assert reference is not None, row  # the fast path never accepts a bad row
            assert fast == reference, row
    assert accepted > 200  # the fast path actually served a good share


def test_one_irregular_row_sends_the_batch_to_the_schema():
    good = {"user_id": "u", "item_id": "i", "type": "view"}
    rows = [good, {**good, "timestamp": NOW}, good]  # a datetime object: schema's call
    assert len(load_events(rows)) == 3
    with pytest.raises(ValidationFailed) as err:
        load_events([good, good, {**good, "type": "rating"}])
    assert err.value.messages == {2: {"value": ["A rating event needs a numeric value."]}}
