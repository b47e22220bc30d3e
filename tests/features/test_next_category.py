"""Next-category evaluation: the split, the set metrics, and the full protocol."""

from __future__ import annotations

import pandas as pd
import pytest

from recsdk.catalog import Catalog
from recsdk.errors import ValidationFailed
from recsdk.features.activity import unix_seconds
from recsdk.features.next_category import (
    evaluate_next_category,
    hide_last,
    item_targets,
    set_scores,
)


def test_set_scores_by_hand():
    predicted = [["a", "b", "c"], ["x", "y", "z"], ["a"]]
    truth = [{"b"}, {"y", "q"}, set()]  # the third user has no known target: skipped
    at1 = set_scores(predicted, truth, 1)
    assert (at1.precision, at1.recall, at1.users) == (0.0, 0.0, 2)
    at2 = set_scores(predicted, truth, 2)
    assert at2.precision == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert at2.recall == pytest.approx((1 + 1 / 2) / 2)
    assert at2.f1 == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    with pytest.raises(ValueError, match="k must be"):
        set_scores(predicted, truth, 0)
    with pytest.raises(ValueError, match="2 predictions for 3 users"):
        set_scores(predicted[:2], truth, 1)


def test_hide_last_event_and_session():
    frame = pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "c", "c"],
        "item_id": ["1", "2", "3", "4", "5", "6"],
        "timestamp": [3.0, 1.0, 2.0, 1.0, 1.0, 2.0],
        "session_id": ["s1", "s1", "s1", "s2", "s3", "s4"],
    })
    train, hidden = hide_last(frame, "event")
    assert hidden["item_id"].tolist() == ["1", "6"]  # b has one event: nothing to predict
    assert sorted(train["item_id"]) == ["2", "3", "4", "5"]
    train, hidden = hide_last(frame, "session")
    # a's only session starts at item 2 with nothing before it, b has one event: both
    # keep everything for training; c's last session s4 is hidden
    assert hidden["item_id"].tolist() == ["6"]
    assert sorted(train["item_id"]) == ["1", "2", "3", "4", "5"]
    with pytest.raises(ValueError, match="unit"):
        hide_last(frame, "visit")
    with pytest.raises(ValidationFailed, match="session_id"):
        hide_last(frame.drop(columns="session_id"), "session")


def test_item_targets(catalog):
    assert item_targets(catalog, ["s1", "nope"], "category") == [{"fashion/shoes"}, set()]
    assert item_targets(catalog, ["a2"], "tags") == [{"bluetooth", "waterproof"}]
    with pytest.raises(ValueError, match="target"):
        item_targets(catalog, ["s1"], "brand")


def test_profiles_find_planted_preferences():
    synthetic = pytest.importorskip("recsdk.data.synthetic")
    shop = synthetic.generate_shop(20_000, seed=3)
    catalog = Catalog.from_frames(shop.items, shop.categories)
    events = shop.events.astype({"user_id": str, "item_id": str, "type": str})
    events["session_id"] = events["session_id"].astype(object)
    events["timestamp"] = unix_seconds(events["timestamp"])
    scores = evaluate_next_category(events, catalog, ks=(3,), unit="session")
    profile, popular = scores["interest_profile"][3], scores["global_popular"][3]
    assert profile.users == popular.users > 100
    # users browse leaves they were planted to prefer, so profiles beat popularity
    assert profile.recall > 2 * popular.recall
    assert profile.recall > scores["previous_event"][3].recall
