"""The user interest model: affinities, statistics, tags, incremental updates, state."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset
from recsdk.errors import NotTrainedError, ValidationFailed
from recsdk.features.interest import UserInterestModel, age_band
from recsdk.types import Event

from .conftest import CATEGORIES, DAY, ITEMS, START, USERS


def _events(rows: list[tuple[str, str, str, float, float | None]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i, k, START.timestamp() + d * DAY, v) for u, i, k, d, v in rows],
                        columns=["user_id", "item_id", "type", "timestamp", "value"])


def _as_events(frame: pd.DataFrame) -> list[Event]:
    return [Event(user_id=r.user_id, item_id=r.item_id, type=r.type,
                  timestamp=datetime.fromtimestamp(r.timestamp, UTC),
                  value=None if r.value != r.value else r.value)
            for r in frame.itertuples()]


def _close(a: object, b: object) -> bool:
    """Deep equality with float tolerance (sums in another order differ in the last bit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_decayed_affinities_statistics_and_tags(catalog):
    frame = _events([("u", "s1", "view", 0, None), ("u", "s1", "purchase", 1, 70.0),
                     ("u", "p1", "view", 2, None)])
    model = UserInterestModel(half_life_days=1.0).fit(InteractionDataset.from_frame(frame,
                                                                                    catalog))
    profile = model.profile("u")
    # view weight 1 two days old, purchase weight 8 one day old, half-life one day
    assert profile.category_affinity["fashion/shoes"] == pytest.approx(0.25 + 4.0)
    assert profile.category_affinity["fashion"] == pytest.approx(4.25)
    assert profile.category_affinity["electronics/phones"] == pytest.approx(1.0)
    assert profile.tag_affinity == pytest.approx({"running": 4.25, "sport": 4.25,
                                                  "android": 1.0, "5g": 1.0})
    assert profile.top_categories(1) == ["fashion/shoes"]
    assert profile.tags == ["category:fashion", "category:fashion/shoes", "tag:running",
                            "tag:sport"]
    assert profile.interaction.events == 3
    assert profile.interaction.by_type == {"view": 2, "purchase": 1}
    assert profile.interaction.active_days == 3
    assert profile.interaction.click_through == 0.0
    assert profile.interaction.mean_dwell_s is None
    assert profile.purchase.purchases == 1 and profile.purchase.spend == 70.0
    assert profile.purchase.categories == {"fashion/shoes": 1}
    assert profile.as_of == datetime.fromtimestamp(START.timestamp() + 2 * DAY, UTC).isoformat()


def test_tags_need_a_dominant_share_and_enough_events(catalog):
    balanced = _events([("u", "s1", "view", 0, None), ("u", "p1", "view", 0, None),
                        ("u", "h1", "view", 0, None), ("u", "a1", "view", 0, None)])
    model = UserInterestModel(tag_share=0.6).fit(InteractionDataset.from_frame(balanced,
                                                                               catalog))
    assert model.profile("u").tags == []  # every department holds exactly half
    model = UserInterestModel(tag_share=0.5, min_events_for_tags=5).fit(
        InteractionDataset.from_frame(balanced, catalog))
    assert model.profile("u").tags == []  # dominance is there but four events are too few
    model = UserInterestModel(tag_share=0.5, min_events_for_tags=4).fit(
        InteractionDataset.from_frame(balanced, catalog))
    assert "category:fashion" in model.profile("u").tags


def test_profile_of_fixture_users(dataset):
    model = UserInterestModel().fit(dataset, USERS)
    runner = model.profile("runner")
    assert runner.demographics == {"age": 31, "gender": "female", "city": "Leeds",
                                   "age_band": "25-34"}
    assert runner.interaction.click_through == pytest.approx(1 / 6)
    assert runner.interaction.mean_dwell_s == pytest.approx(32.5)
    assert runner.purchase.spend == pytest.approx(75.0 + 90.0)  # value, else item price
    assert runner.top_categories(1) == ["fashion/shoes"]
    assert "category:fashion" in runner.tags
    techie = model.profile("techie")
    assert techie.demographics["age_band"] == "65+"
    assert set(techie.top_categories(2)) == {"electronics/phones", "electronics/audio"}
    assert "category:electronics" in techie.tags
    assert model.profile("mixed").demographics == {"gender": "other"}
    as_dict = runner.to_dict()
    assert as_dict["interaction"]["by_type"]["view"] == 6
    assert "leaf_categories" not in as_dict


def test_age_bands():
    assert [age_band(a) for a in (12, 18, 24.9, 25, 64, 65, "40", None, "old")] == [
        "<18", "18-24", "18-24", "25-34", "55-64", "65+", "35-44", None, None]


def test_incremental_updates_equal_a_refit(events, catalog):
    late_user = _events([("newcomer", "a2", "view", 9.5, None),
                         ("newcomer", "a2", "purchase", 9.6, None)])
    everything = pd.concat([events, late_user], ignore_index=True)
    cut = START.timestamp() + 3.5 * DAY
    early = everything[everything["timestamp"] < cut]
    later = everything[everything["timestamp"] >= cut].sample(frac=1.0, random_state=7)
    model = UserInterestModel(half_life_days=2.0).fit(InteractionDataset.from_frame(early,
                                                                                    catalog))
    model.update(_as_events(later))  # in shuffled order: out-of-order events are fine
    refit = UserInterestModel(half_life_days=2.0).fit(InteractionDataset.from_frame(everything,
                                                                                    catalog))
    assert sorted(model.user_ids) == sorted(refit.user_ids)
    for user_id in refit.user_ids:
        assert _close(model.profile(user_id).to_dict(), refit.profile(user_id).to_dict()), user_id


def test_events_on_unknown_items_wait_for_the_catalogue(events, catalog):
    partial = Catalog.from_frames(ITEMS[ITEMS["id"] != "a2"].copy(), CATEGORIES.copy())
    early = events[events["item_id"] != "a2"]
    model = UserInterestModel().fit(InteractionDataset.from_frame(early, partial))
    news = _as_events(_events([("techie", "a2", "purchase", 9, None)]))
    model.update(news)
    held = model.profile("techie")
    assert held.interaction.by_type["purchase"] == 2  # counted at once
    assert len(model.pending_) == 1
    restored = UserInterestModel().load_state(model.state(), partial)
    assert len(restored.pending_) == 1  # held events survive a save and load
    assert restored.set_catalog(catalog) == 1
    assert model.set_catalog(catalog) == 1
    assert model.pending_ == []
    after = model.profile("techie")
    assert after.category_affinity["electronics/audio"] > held.category_affinity[
        "electronics/audio"]
    assert after.purchase.categories["electronics/audio"] == 1
    assert after.purchase.spend == pytest.approx(held.purchase.spend + 80.0)
    assert _close(restored.profile("techie").to_dict(), after.to_dict())


def test_state_round_trip(dataset, catalog):
    model = UserInterestModel(half_life_days=7.0).fit(dataset, USERS)
    state = model.state()
    assert all(arr.dtype != object for arr in state.values())  # saved without pickle
    restored = UserInterestModel(half_life_days=7.0).load_state(state, catalog)
    for user_id in model.user_ids:
        assert _close(restored.profile(user_id).to_dict(), model.profile(user_id).to_dict())
    with pytest.raises(ValidationFailed, match="half_life_days"):
        UserInterestModel(half_life_days=30.0).load_state(state, catalog)


def test_profile_from_history(dataset):
    model = UserInterestModel().fit(dataset)
    profile = model.profile_from_history(["a1", "a3", "a1", "unknown"],
                                         ["view", "view", "purchase", "view"])
    assert profile.user_id is None
    assert profile.top_categories(1) == ["electronics/audio"]
    assert profile.interaction.events == 4
    assert profile.purchase.spend == 200.0
    with pytest.raises(ValidationFailed, match="types"):
        model.profile_from_history(["a1"], [])


def test_bad_input_is_refused_with_its_name(dataset):
    with pytest.raises(ValidationFailed, match="half_life_days"):
        UserInterestModel(half_life_days=0).fit(dataset)
    with pytest.raises(ValidationFailed, match="tag_share"):
        UserInterestModel(tag_share=1.5).fit(dataset)
    with pytest.raises(ValidationFailed, match="attributes"):
        UserInterestModel().fit(dataset, pd.DataFrame({"id": ["runner"]}))
    with pytest.raises(NotTrainedError):
        UserInterestModel().update([])
    model = UserInterestModel().fit(dataset)
    with pytest.raises(LookupError, match="'nobody'"):
        model.profile("nobody")
