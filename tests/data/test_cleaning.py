"""clean_events: each rule, its report entry, and the balance of rows in and out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.data.cleaning import CleaningConfig, clean_events
from recsdk.errors import ValidationFailed

NOW = datetime(2024, 6, 1, tzinfo=UTC)
T0 = datetime(2024, 1, 1, 12, tzinfo=UTC)


def events(*rows: tuple) -> pd.DataFrame:
    """Rows of (user, item, type, seconds after T0[, value[, session[, event_id]]])."""
    out = []
    for r in rows:
        row = {"user_id": r[0], "item_id": r[1], "type": r[2],
               "timestamp": (T0 + timedelta(seconds=r[3])).isoformat() if isinstance(
                   r[3], int | float) else r[3]}
        for key, pos in (("value", 4), ("session_id", 5), ("event_id", 6)):
            if len(r) > pos:
                row[key] = r[pos]
        out.append(row)
    return pd.DataFrame(out)


def clean(frame: pd.DataFrame, **kwargs):
    return clean_events(frame, CleaningConfig(now=NOW, **kwargs))


def test_balance_and_layout_on_a_messy_log():
    frame = events(("u1", "i1", "view", 0), ("u1", "i1", "view", 0), ("", "i2", "view", 5),
                   ("u2", "i3", "rating", 10), ("u2", "i3", "rating", 11, 4),
                   ("u3", "i4", "view", "yesterday-ish"), ("u3", "i4", "return", 30))
    out, report = clean(frame)
    assert report.input_rows == 7
    assert report.kept_rows == len(out) == 3
    assert report.dropped_rows == 4
    report.check_balance()
    assert list(out.columns) == ["user_id", "session_id", "item_id", "type", "timestamp",
                                 "value", "event_id", "weight"]
    assert str(out["timestamp"].dtype) == "datetime64[us, UTC]"
    # input order is kept
    assert out["item_id"].tolist() == ["i1", "i3", "i4"]
    dropped = {r.rule: r.count for r in report.rules if r.action == "dropped"}
    assert dropped == {"missing_user_id": 1, "rating_without_value": 1,
                       "unparseable_timestamp": 1, "duplicate_row": 1}
    assert report.outcome("duplicate_row").examples[0]["row"] == 1
    text = report.format()
    assert "missing_user_id: dropped 1" in text and "row=2" in text


def test_timestamps_are_normalised_to_utc():
    frame = events(("u1", "i1", "view", "2024-01-01T10:00:00+02:00"),
                   ("u1", "i2", "view", "2024-01-01T08:30:00"),
                   ("u1", "i3", "view", "1704098000"))
    out, _ = clean(frame)
    assert out["timestamp"].tolist() == [pd.Timestamp("2024-01-01T08:00:00", tz="UTC"),
                                         pd.Timestamp("2024-01-01T08:30:00", tz="UTC"),
                                         pd.Timestamp(1704098000, unit="s", tz="UTC")]


def test_impossible_timestamps_are_dropped_with_reasons():
    frame = events(("u1", "i1", "view", "1985-05-05T00:00:00Z"),
                   ("u1", "i2", "view", (NOW + timedelta(days=3)).isoformat()),
                   ("u1", "i3", "view", str(int(T0.timestamp() * 1000))),
                   ("u1", "i4", "view", None), ("u1", "i5", "view", 0))
    out, report = clean(frame)
    assert out["item_id"].tolist() == ["i5"]
    assert report.count("timestamp_before_1990") == 1
    assert report.count("timestamp_in_future") == 2
    assert "milliseconds" in report.outcome("timestamp_in_future").reason
    assert report.count("missing_timestamp") == 1
    stamped, report = clean(frame.iloc[[3]], missing_timestamp="now")
    assert stamped["timestamp"].tolist() == [pd.Timestamp(NOW)]
    assert report.count("timestamp_set_to_now") == 1


def test_duplicate_event_ids_keep_the_first_row():
    frame = events(("u1", "i1", "view", 0, None, None, "e1"),
                   ("u1", "i2", "view", 5, None, None, "e1"),
                   ("u1", "i3", "view", 9, None, None, "e2"))
    out, report = clean(frame)
    assert out["item_id"].tolist() == ["i1", "i3"]
    assert report.count("duplicate_event_id") == 1
    assert report.outcome("duplicate_event_id").examples[0]["row"] == 1
    kept, report = clean(frame, drop_duplicates=False)
    assert len(kept) == 3 and report.count("duplicate_event_id") == 0


def test_unknown_types_follow_the_policy():
    frame = events(("u1", "i1", "view", 0), ("u1", "i2", "wishlist", 5),
                   ("u1", "i3", "Add_To_Cart", 9))
    kept, report = clean(frame)
    assert kept["type"].tolist() == ["view", "wishlist", "add_to_cart"]
    assert kept["weight"].tolist() == [1.0, 1.0, DEFAULT_EVENT_WEIGHTS["add_to_cart"]]
    assert report.outcome("unknown_type").action == "kept"
    assert report.count("type_normalised") == 1
    dropped, report = clean(frame, unknown_types="drop")
    assert dropped["type"].tolist() == ["view", "add_to_cart"]
    assert report.outcome("unknown_type").action == "dropped"
    with pytest.raises(ValidationFailed) as err:
        clean(frame, unknown_types="error")
    assert list(err.value.messages) == [1]


def test_weights_come_from_the_config_and_returns_count_against():
    frame = events(("u1", "i1", "purchase", 0, 20.0), ("u1", "i1", "return", 3600),
                   ("u1", "i2", "view", 7200))
    out, report = clean(frame)
    assert out["weight"].tolist() == [DEFAULT_EVENT_WEIGHTS["purchase"],
                                      DEFAULT_EVENT_WEIGHTS["return"],
                                      DEFAULT_EVENT_WEIGHTS["view"]]
    assert out["weight"].iloc[1] < 0
    assert report.count("negative_weight") == 1
    custom, _ = clean(frame, event_weights={"purchase": 3.0, "return": -2.0, "view": 0.5})
    assert custom["weight"].tolist() == [3.0, -2.0, 0.5]


def test_value_ranges_drop_impossible_ratings():
    frame = events(("u1", "i1", "rating", 0, 4), ("u1", "i2", "rating", 5, 11),
                   ("u1", "i3", "purchase", 9, 999))
    out, report = clean(frame, value_ranges={"rating": (1, 5)})
    assert out["item_id"].tolist() == ["i1", "i3"]
    assert report.count("value_out_of_range:rating") == 1


def test_sessions_split_on_the_inactivity_gap():
    frame = events(("u1", "i1", "view", 0), ("u1", "i2", "view", 600),
                   ("u1", "i3", "view", 600 + 31 * 60), ("u2", "i1", "view", 10),
                   ("u2", "i9", "view", 20, None, "given"))
    out, report = clean(frame)
    assert out["session_id"].tolist() == ["u1@20240101T120000Z", "u1@20240101T120000Z",
                                          "u1@20240101T124100Z", "u2@20240101T120010Z",
                                          "given"]
    assert report.count("session_assigned") == 4
    wide, _ = clean(frame, session_gap=timedelta(hours=1))
    assert wide["session_id"].tolist()[:3] == ["u1@20240101T120000Z"] * 3
    # the same events cleaned in another order get the same session names
    shuffled, _ = clean(frame.iloc[::-1])
    assert shuffled["session_id"].tolist() == out["session_id"].tolist()[::-1]
    long_user, _ = clean(events(("x" * 250, "i1", "view", 0)))
    assert long_user["session_id"].str.len().iloc[0] <= 255
    untouched, _ = clean(frame, assign_sessions=False)
    assert untouched["session_id"].isna().sum() == 4


def test_bot_like_users_lose_all_their_events(small_shop):
    out, report = clean_events(small_shop.events)
    outcome = report.outcome("bot_like_user")
    assert outcome is not None
    flagged = {e["user_id"] for e in outcome.examples}
    assert flagged == set(small_shop.bot_user_ids)
    assert outcome.count == 600
    assert not out["user_id"].isin(small_shop.bot_user_ids).any()
    report.check_balance()
    # a fast but human user (ml-100k rates up to 30 items in a minute) stays
    burst = events(*[("fan", f"i{k}", "rating", k, 4) for k in range(30)])
    kept, report = clean(burst)
    assert len(kept) == 30 and report.count("bot_like_user") == 0
    strict, report = clean(burst, max_events_per_minute=20)
    assert strict.empty and report.count("bot_like_user") == 30
    wide = events(*[("collector", f"i{k}", "view", k * 100) for k in range(50)])
    kept, report = clean(wide, max_distinct_items_per_day=40, max_events_per_minute=None)
    assert kept.empty and report.outcome("bot_like_user").examples[0][
        "max_distinct_items_per_day"] == 50
    busy = events(*[("busy", "i1", "view", k * 100) for k in range(50)])
    kept, report = clean(busy, max_events_per_day=40)
    assert kept.empty and report.outcome("bot_like_user").examples[0][
        "max_events_per_day"] == 50
    kept, report = clean(busy, max_events_per_day=None, max_events_per_minute=None,
                         max_distinct_items_per_day=None)
    assert len(kept) == 50 and report.count("bot_like_user") == 0


def test_clean_synthetic_events_keep_their_planted_shape(small_shop):
    out, report = clean_events(small_shop.events)
    assert report.input_rows == len(small_shop.events)
    assert report.kept_rows == len(small_shop.events) - 600
    # follow-ups (ratings, returns) came without a session; cleaning gave them one
    assert out["session_id"].notna().all()
    assert report.count("session_assigned") == int(
        small_shop.events["session_id"].isna().sum()
        - small_shop.events.loc[small_shop.events["user_id"].isin(
            small_shop.bot_user_ids), "session_id"].isna().sum())
    again, _ = clean_events(small_shop.events)
    pd.testing.assert_frame_equal(out, again)


@pytest.mark.parametrize("kwargs", [
    {"unknown_types": "maybe"}, {"missing_timestamp": "later"},
    {"session_gap": timedelta(0)}, {"max_events_per_day": 0},
    {"value_ranges": {"rating": (5, 1)}},
])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        CleaningConfig(**kwargs)


def test_an_empty_log_cleans_to_an_empty_frame():
    out, report = clean(pd.DataFrame(columns=["user_id", "item_id", "type", "timestamp"]))
    assert out.empty and report.input_rows == 0 and report.kept_rows == 0
    assert np.isin(["user_id", "weight"], out.columns).all()
