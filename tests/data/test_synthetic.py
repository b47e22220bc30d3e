"""The synthetic shop: deterministic, exact in size, realistic in shape, and its
planted preferences can be found again in the behaviour it generates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestCentroid

from recsdk.data.frames import ITEM_COLUMNS
from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.data.validation import EVENT_COLUMNS, require_valid_events

ID_COLUMNS = ["user_id", "session_id", "item_id", "type", "event_id"]


def as_text(events: pd.DataFrame) -> pd.DataFrame:
    return events.astype({c: "str" for c in ID_COLUMNS})


def leaf_of(shop: SyntheticShop) -> pd.Series:
    return shop.items.set_index("id")["category_id"]


def test_same_seed_same_shop_other_seed_other_shop():
    a = generate_shop(3_000, seed=11)
    b = generate_shop(3_000, seed=11)
    c = generate_shop(3_000, seed=12)
    pd.testing.assert_frame_equal(as_text(a.events), as_text(b.events))
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.users, b.users)
    pd.testing.assert_frame_equal(a.preferences, b.preferences)
    assert not as_text(a.events).equals(as_text(c.events))
    assert not a.preferences.equals(c.preferences)


@pytest.mark.parametrize("n_events", [1, 1_000, 12_345, 60_001])
def test_exactly_the_requested_number_of_events(n_events):
    shop = generate_shop(n_events, seed=3)
    assert len(shop.events) == n_events == shop.n_events


def test_streamed_events_equal_materialised_ones():
    kept = generate_shop(30_000, seed=5, n_bots=1, events_per_bot=200)
    lazy = generate_shop(30_000, seed=5, n_bots=1, events_per_bot=200, materialize=False)
    assert lazy.events.empty
    chunks = list(lazy.iter_events(chunk_size=7_000))
    assert [len(c) for c in chunks[:-1]] == [7_000] * (len(chunks) - 1)
    streamed = pd.concat([as_text(c) for c in chunks], ignore_index=True)
    key = ["timestamp", "user_id", "item_id", "type"]
    left = as_text(kept.events).sort_values(key, ignore_index=True)
    right = streamed.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(left, right)


def test_streamed_chunks_do_not_carry_every_earlier_session_name():
    """A chunk's session categories stay within one block's sessions plus its own: they
    used to accumulate over the stream, so each chunk cost more than the last."""
    from recsdk.data.synthetic import SESSIONS_PER_BLOCK

    lazy = generate_shop(400_000, seed=3, materialize=False)
    chunks = list(lazy.iter_events(chunk_size=30_000))
    assert len(chunks) > 10  # several blocks of sessions
    for chunk in chunks:
        names = len(chunk["session_id"].cat.categories)
        assert names <= SESSIONS_PER_BLOCK + chunk["session_id"].nunique()


def test_layout_matches_shopdata_and_passes_recsdk_rules(small_shop):
    events = small_shop.events
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"
    assert events["timestamp"].is_monotonic_increasing
    assert list(small_shop.items.columns) == list(ITEM_COLUMNS)
    assert list(small_shop.users.columns) == ["id", "attributes"]
    # every generated event passes the same rules as the ingestion API
    checked = require_valid_events(events)
    assert len(checked) == len(events)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert events["timestamp"].min() >= start
    assert events["timestamp"].max() < start + timedelta(days=30)


def test_category_tree_has_three_levels_and_items_sit_on_leaves(small_shop):
    cats = small_shop.categories
    roots = cats[cats["parent_id"].isna()]
    assert len(roots) == 5
    middle = cats[cats["parent_id"].isin(roots["id"])]
    assert len(middle) == 20
    leaves = cats[cats["parent_id"].isin(middle["id"])]
    assert len(leaves) == 60
    assert cats["id"].is_unique
    assert set(small_shop.items["category_id"]) <= set(leaves["id"])
    bigger = generate_shop(2_000, seed=1, tree=(7, 5, 4))
    assert bigger.categories["id"].is_unique
    assert bigger.categories["parent_id"].notna().sum() == 7 * 5 + 7 * 5 * 4


def test_items_have_prices_discounts_stock_and_text(small_shop):
    items = small_shop.items
    assert (items["price"] > 0).all()
    discounted = items["original_price"].notna()
    assert 0.1 < discounted.mean() < 0.4
    assert (items.loc[discounted, "original_price"] > items.loc[discounted, "price"]).all()
    assert (items["stock"] == 0).any() and (items["stock"] > 0).mean() > 0.8
    assert (~items["active"]).any() and items["active"].mean() > 0.9
    assert items["tags"].map(lambda t: isinstance(t, list) and len(t) >= 3).all()
    assert items["title"].str.len().gt(5).all()
    # prices are log-normal per leaf: leaves differ far more than items within one
    log_price = np.log(items["price"])
    spread_between = log_price.groupby(items["category_id"]).median().std()
    spread_within = log_price.groupby(items["category_id"]).std().median()
    assert spread_between > 1.5 * spread_within


@pytest.mark.filterwarnings("ignore:self.within_class_std_dev_")
def test_item_text_recovers_the_leaf_category():
    shop = generate_shop(40_000, seed=2)
    items = shop.items
    text = items["title"] + " " + items["description"]
    train = np.arange(len(items)) % 2 == 0
    vectors = TfidfVectorizer().fit_transform(text)
    model = NearestCentroid().fit(vectors[train], items["category_id"][train])
    accuracy = (model.predict(vectors[~train]) == items["category_id"][~train]).mean()
    assert accuracy > 0.9


def test_users_have_demographics(small_shop):
    attrs = pd.DataFrame(small_shop.users["attributes"].tolist())
    assert set(attrs.columns) >= {"age", "gender", "city", "region"}
    assert attrs["age"].between(16, 85).all()
    assert set(attrs["gender"]) <= {"female", "male", "other"}
    assert attrs["gender"].nunique() >= 2 and attrs["city"].nunique() >= 5


def test_preferences_are_sparse_leaf_weights(small_shop):
    prefs = small_shop.preferences
    assert list(prefs.columns) == ["user_id", "category_id", "weight"]
    sums = prefs.groupby("user_id")["weight"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    per_user = prefs.groupby("user_id").size()
    assert per_user.min() >= 1 and per_user.max() <= 6 and per_user.mean() < 4
    cats = small_shop.categories
    leaves = set(cats["id"]) - set(cats["parent_id"].dropna())
    assert set(prefs["category_id"]) <= leaves


def test_planted_preferences_are_recoverable_from_views(small_shop):
    shop = small_shop
    views = shop.events[shop.events["type"] == "view"]
    views = views[~views["user_id"].isin(shop.bot_user_ids)]
    counts = (pd.DataFrame({"user": views["user_id"].astype(str).to_numpy(),
                            "leaf": views["item_id"].astype(str).map(leaf_of(shop)).to_numpy()})
              .value_counts().rename("n").reset_index())
    top_seen = counts.sort_values(["user", "n"], ascending=[True, False]).drop_duplicates(
        "user").set_index("user")
    active = top_seen.index[counts.groupby("user")["n"].sum()[top_seen.index] >= 20]
    assert len(active) >= 150
    prefs = shop.preferences
    planted_top = (prefs.sort_values(["user_id", "weight"], ascending=[True, False])
                   .drop_duplicates("user_id").set_index("user_id")["category_id"])
    planted_sets = prefs.groupby("user_id")["category_id"].agg(set)
    seen = top_seen.loc[active, "leaf"]
    top_match = (seen == planted_top[active]).mean()
    in_set = np.mean([leaf in planted_sets[u] for u, leaf in seen.items()])
    # a user picked at random gives the baseline the planted truth must beat
    shuffled = planted_top[active].sample(frac=1, random_state=0).to_numpy()
    chance = (seen.to_numpy() == shuffled).mean()
    assert top_match > 0.65, top_match
    assert in_set > 0.9, in_set
    assert chance < 0.2, chance


def test_funnel_rhythm_and_popularity(small_shop):
    events = small_shop.events[~small_shop.events["user_id"].isin(small_shop.bot_user_ids)]
    counts = events["type"].value_counts()
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"]
    assert counts["purchase"] > counts["rating"] > counts["review"] > 0
    assert counts["return"] > 0
    ratings = events.loc[events["type"] == "rating", "value"]
    assert ratings.between(1, 5).all() and ratings.mean() > 3.5
    purchases = events[events["type"] == "purchase"]
    prices = small_shop.items.set_index("id")["price"]
    np.testing.assert_allclose(purchases["value"].to_numpy(),
                               purchases["item_id"].astype(str).map(prices).to_numpy())
    # every purchase follows an add_to_cart of the same item in the same session
    carts = events[events["type"] == "add_to_cart"]
    merged = purchases.astype({"session_id": str, "item_id": str}).merge(
        carts.astype({"session_id": str, "item_id": str}), on=["session_id", "item_id"],
        suffixes=("", "_cart"))
    assert merged["session_id"].nunique() == purchases["session_id"].nunique()
    assert (merged.groupby(["session_id", "item_id"])["timestamp_cart"].min()
            < merged.groupby(["session_id", "item_id"])["timestamp"].max()).all()
    hours = events["timestamp"].dt.hour.value_counts()
    assert hours[[19, 20, 21]].sum() > 4 * hours[[2, 3, 4]].sum()
    # Zipf: within a leaf, the most viewed item gets several times the median item
    views = events[events["type"] == "view"]
    per_item = views["item_id"].astype(str).value_counts()
    leaf = leaf_of(small_shop)
    groups = per_item.groupby(leaf[per_item.index].to_numpy())
    ratios = [grp.max() / grp.median() for _, grp in groups if len(grp) >= 5]
    assert np.median(ratios) > 3


def test_bots_are_planted_as_bursts(small_shop):
    assert len(small_shop.bot_user_ids) == 2
    bots = small_shop.events[small_shop.events["user_id"].isin(small_shop.bot_user_ids)]
    assert len(bots) == 2 * 300
    span = bots.groupby(bots["user_id"].astype(str))["timestamp"].agg(lambda t: t.max() - t.min())
    assert (span < timedelta(minutes=15)).all()


@pytest.mark.parametrize("kwargs", [
    {"n_events": 0},
    {"n_events": 100, "days": 0},
    {"n_events": 100, "p_click": 1.5},
    {"n_events": 100, "exploration": -0.1},
    {"n_events": 100, "n_bots": 1, "events_per_bot": 500},
    {"n_events": 100, "start": datetime.now(UTC) + timedelta(days=3)},
    {"n_events": 100, "start": datetime(1980, 1, 1, tzinfo=UTC)},
    {"n_events": 100, "tree": (3, 0, 2)},
])
def test_impossible_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        generate_shop(**kwargs)
