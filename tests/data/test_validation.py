"""Column-wise event checks: the same verdicts as recsdk's EventSchema, row by row."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from marshmallow import ValidationError

from recsdk.data.report import CleaningReport
from recsdk.data.validation import (
    check_events,
    drop_invalid_events,
    parse_timestamps,
    require_valid_events,
)
from recsdk.errors import ValidationFailed
from recsdk.schemas import EventSchema

NOW = datetime.now(UTC)
#: Values whose verdict both paths must share (documented differences are tested below).
CHOICES = {
    "user_id": ["u1", 7, "", None, True, 3.5, "x" * 256, "u" * 255],
    "item_id": ["i1", 12, "", None, {"id": 1}],
    "type": ["view", "rating", "add_to_cart", "", 5, "a" * 70, "custom:wish-list", "9lives"],
    "timestamp": ["2024-01-01T00:00:00Z", "2024-01-01T10:00:00+02:00", "2024-01-01 10:00:00",
                  1_700_000_000, 1_700_000_000.5, 1e15, "soon",
                  (NOW + timedelta(days=2)).isoformat(), "1980-01-01T00:00:00",
                  float("inf"), True, NOW, 631_152_000 - 1],
    "session_id": [None, "s1", 4, "", False],
    "value": [None, 1, 2.5, "3", float("inf"), True, "x"],
    "event_id": [None, "e1", 99, "", "e" * 256],
    "context": [None, {"page": "home"}, {1: "a"}, ["x"], "ctx"],
}


def schema_accepts(row: dict) -> bool:
    clean = {k: v for k, v in row.items() if v is not None}
    try:
        EventSchema().load(clean)
    except ValidationError:
        return False
    return True


def test_column_checks_agree_with_the_schema_on_random_rows():
    rng = random.Random(99)
    rows = []
    for _ in range(3000):
        row = {}
        for key, options in CHOICES.items():
            plain = rng.random() < 0.75
            row[key] = rng.choice(options[:2] if plain else options)
        rows.append(row)
    frame = pd.DataFrame(rows, dtype=object)
    _, problems, _ = check_events(frame, NOW)
    broken = np.zeros(len(frame), dtype=bool)
    for mask in problems.values():
        broken |= mask
    expected = np.array([schema_accepts(r) for r in rows])
    disagree = np.flatnonzero(broken == expected)
    assert not len(disagree), [rows[i] for i in disagree[:5]]
    assert 0.2 < expected.mean() < 0.8  # both verdicts are exercised


def test_normalised_values_match_what_the_schema_loads():
    rows = [{"user_id": 7, "item_id": "i1", "type": "rating", "value": "3",
             "timestamp": "2024-01-01T10:00:00+02:00", "session_id": 4},
            {"user_id": "u2", "item_id": 12, "type": "view", "timestamp": 1_700_000_000.5}]
    out = require_valid_events(pd.DataFrame(rows, dtype=object), now=NOW)
    for got, row in zip(out.to_dict("records"), rows, strict=True):
        want = EventSchema().load(row)
        assert got["user_id"] == want["user_id"] and got["item_id"] == want["item_id"]
        assert got["timestamp"].to_pydatetime() == want["timestamp"]
        assert (got["value"] if not np.isnan(got["value"]) else None) == want["value"]
        assert (got["session_id"] if isinstance(got["session_id"], str) else None) == \
            want["session_id"]


def test_text_timestamps_read_as_the_api_reads_them():
    # text that is a UNIX time and surrounding spaces are read by files and the API alike
    texts = ["1700000000", " 2024-01-01T00:00:00Z ", "881250949", "20240101"]
    ts = parse_timestamps(pd.Series(texts), NOW)
    want = [pd.Timestamp("2023-11-14 22:13:20", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC"),
            pd.Timestamp("1997-12-04 15:55:49", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC")]
    assert ts.values.tolist() == want
    assert not any(m.any() for m in ts.problems.values())
    api = [EventSchema().load({"user_id": "u", "item_id": "i", "type": "view",
                               "timestamp": t})["timestamp"] for t in texts]
    assert api == [w.to_pydatetime() for w in want]


def test_timestamp_problems_are_told_apart():
    values = pd.Series(["garbage", "1980-01-01", "1700000000000", None, "",
                        "2024-05-01T12:00:00-04:00"])
    checked = parse_timestamps(values, NOW)
    p = {k: np.flatnonzero(v).tolist() for k, v in checked.problems.items()}
    assert p == {"missing_timestamp": [3, 4], "unparseable_timestamp": [0],
                 "timestamp_before_1990": [1], "timestamp_in_future": [2]}
    assert checked.values[5] == pd.Timestamp("2024-05-01T16:00:00", tz="UTC")
    assert str(checked.values.dtype) == "datetime64[us, UTC]"
    aware = pd.Series(pd.to_datetime(["2024-01-01T00:00:00+02:00"], utc=True))
    naive = pd.Series(pd.to_datetime(["2024-01-01T00:00:00"]))
    assert parse_timestamps(aware, NOW).values[0] == pd.Timestamp("2023-12-31T22:00", tz="UTC")
    assert parse_timestamps(naive, NOW).values[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_strict_check_names_rows_and_fields():
    frame = pd.DataFrame({"user_id": ["u1", "", "u3"], "item_id": ["i1", "i2", "i3"],
                          "type": ["view", "view", "Bad Type!"],
                          "timestamp": ["2024-01-01", "2024-01-01", "2024-01-01"]})
    with pytest.raises(ValidationFailed) as err:
        require_valid_events(frame, now=NOW)
    assert set(err.value.messages) == {1, 2}
    assert "user_id" in err.value.messages[1]
    assert "type" in err.value.messages[2]


def test_drop_invalid_events_reports_every_dropped_row():
    frame = pd.DataFrame({"user_id": ["u1", None, "u3", "u4", "u5"],
                          "item_id": ["i1", "i2", "i3", "i4", "i5"],
                          "type": ["view", "view", "View", "rating", "view"],
                          "timestamp": ["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-03",
                                        "not a date"],
                          "session_id": ["s1", "s2", "x" * 300, "s4", "s5"]})
    report = CleaningReport("events", input_rows=len(frame))
    kept = drop_invalid_events(frame, report, now=NOW)
    report.kept_rows = len(kept)
    report.check_balance()
    assert kept["_row"].tolist() == [0, 2]
    assert kept["type"].tolist() == ["view", "view"]
    assert pd.isna(kept["session_id"].iloc[1])
    assert report.count("missing_user_id") == 1
    assert report.count("rating_without_value") == 1
    assert report.count("unparseable_timestamp") == 1
    assert report.outcome("unparseable_timestamp").examples[0]["timestamp"] == "not a date"
    assert report.outcome("type_normalised").examples[0]["row"] == 2
    assert report.outcome("invalid_session_id").action == "changed"
    with_now = CleaningReport("events", input_rows=1)
    stamped = drop_invalid_events(pd.DataFrame({"user_id": ["u"], "item_id": ["i"],
                                                "type": ["view"], "timestamp": [None]}),
                                  with_now, now=NOW, missing_timestamp="now")
    assert stamped["timestamp"].iloc[0] == pd.Timestamp(NOW)
    assert with_now.count("timestamp_set_to_now") == 1


def test_a_categorical_chunk_is_checked_on_the_categories_it_uses():
    """A chunk of a large import shares its column's categories with the whole file: an
    id that only other chunks use neither costs this chunk nor is blamed on it, while
    the ids it does use (an empty one among them) are checked as always."""
    categories = ["u1", "u2", "", "x" * 300]  # the last two are not valid user ids
    frame = pd.DataFrame({
        "user_id": pd.Categorical.from_codes([0, 1, 0], categories=categories),
        "item_id": pd.Categorical.from_codes([1, 0, 2], categories=["i1", "i2", ""]),
        "type": ["view"] * 3, "timestamp": ["2024-01-01T00:00:00Z"] * 3})
    out, problems, _ = check_events(frame, NOW)
    assert not problems["invalid_user_id"].any() and not problems["missing_user_id"].any()
    assert list(out["user_id"].astype(str)) == ["u1", "u2", "u1"]
    assert list(problems["missing_item_id"]) == [False, False, True]  # "" is missing

    frame["user_id"] = pd.Categorical.from_codes([0, 3, 2], categories=categories)
    _, problems, _ = check_events(frame, NOW)
    assert list(problems["invalid_user_id"]) == [False, True, False]
    assert list(problems["missing_user_id"]) == [False, False, True]
