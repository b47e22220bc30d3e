"""ShopData.write_to: what goes in comes back out of SQLite and PostgreSQL, in bulk."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import text

from recsdk import RecSDK
from recsdk.data.cleaning import clean_events
from recsdk.data.frames import ShopData
from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.errors import ValidationFailed
from recsdk.storage.store import Store

KEY = ["user_id", "item_id", "type", "timestamp"]


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(4_000, seed=21, n_users=80, n_items=300)


@pytest.fixture
def sdk(tmp_path) -> Iterator[RecSDK]:
    instance = RecSDK({"database_url": f"sqlite:///{tmp_path / 'shop.db'}"}, environ={})
    yield instance
    instance.close()


def stored_events(store: Store) -> pd.DataFrame:
    frame = store.events_frame()
    return frame.sort_values(KEY, ignore_index=True)


def expected_events(events: pd.DataFrame) -> pd.DataFrame:
    out = events[["user_id", "session_id", "item_id", "type", "timestamp", "value"]].astype(
        {c: str for c in ("user_id", "session_id", "item_id", "type")})
    return out.sort_values(KEY, ignore_index=True)


def check_round_trip(store: Store, shop: SyntheticShop, clean: pd.DataFrame) -> None:
    got = stored_events(store)
    want = expected_events(clean)
    assert len(got) == len(want)
    pd.testing.assert_frame_equal(got[KEY], want[KEY], check_dtype=False)
    assert (got["session_id"] == want["session_id"]).all()
    pd.testing.assert_series_equal(got["value"], want["value"], check_dtype=False)
    items = store.items_frame().set_index("id").sort_index()
    source = shop.items.set_index("id").sort_index()
    assert items.index.tolist() == source.index.tolist()
    assert items["price"].tolist() == source["price"].tolist()
    assert items["tags"].tolist() == source["tags"].tolist()
    assert items["stock"].tolist() == source["stock"].tolist()
    assert items["active"].tolist() == source["active"].tolist()
    assert store.categories_frame()["id"].nunique() == len(shop.categories)
    users = store.users_frame().set_index("id").sort_index()
    assert users["attributes"].tolist() == shop.users.set_index("id").sort_index()[
        "attributes"].tolist()


def test_a_clean_shop_round_trips_through_sqlite(sdk, shop):
    clean, _ = clean_events(shop.events)
    data = ShopData(shop.categories, shop.items, shop.users, clean)
    counts = data.write_to(sdk, chunk_size=1_500)
    assert counts.to_dict() == {"categories": 85, "items": 300, "users": 80,
                                "events": len(clean), "duplicate_events": 0}
    check_round_trip(sdk.store, shop, clean)
    assert len(sdk.catalog) == 300  # the request path sees the new catalogue


def test_synthetic_shop_writes_without_validation_and_streams(tmp_path, shop):
    store = Store(f"sqlite:///{tmp_path / 'raw.db'}")
    store.upgrade()
    lazy = generate_shop(4_000, seed=21, n_users=80, n_items=300, materialize=False)
    counts = lazy.write_to(store, chunk_size=1_000, validate=False)
    assert counts.events == 4_000 == store.count_events()
    got = stored_events(store)
    want = expected_events(shop.events)
    pd.testing.assert_frame_equal(got[KEY], want[KEY], check_dtype=False)
    store.close()


def test_event_ids_and_context_go_through_the_idempotent_path(sdk):
    events = pd.DataFrame({
        "user_id": ["u1", "u1", "u2"], "item_id": ["i1", "i2", "i1"],
        "type": ["view", "purchase", "view"],
        "timestamp": ["2024-01-01T10:00:00Z", "2024-01-01T10:05:00Z", "2024-01-02T00:00:00Z"],
        "event_id": ["e1", "e2", None], "context": [None, {"coupon": "X"}, None]})
    data = ShopData(events=events)
    first = data.write_to(sdk)
    assert (first.events, first.duplicate_events) == (3, 0)
    again = data.write_to(sdk)
    assert (again.events, again.duplicate_events) == (1, 2)  # e1 and e2 were stored
    with sdk.store.engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, context FROM events "
                                 "WHERE event_id IS NOT NULL ORDER BY event_id")).all()
    assert [r[0] for r in rows] == ["e1", "e2"]
    assert '"coupon"' in str(rows[1][1])


def test_invalid_events_are_refused_naming_the_row(sdk):
    events = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"],
                           "type": ["view", "view"],
                           "timestamp": ["2024-01-01", "1970-01-02"]})
    with pytest.raises(ValidationFailed) as err:
        ShopData(events=events).write_to(sdk)
    assert list(err.value.messages) == [1]
    assert "timestamp" in err.value.messages[1]
    assert sdk.store.count_events() == 0


def test_items_with_unknown_categories_stop_the_write_before_it_starts(sdk):
    data = ShopData(
        categories=pd.DataFrame({"id": ["hats"], "name": ["Hats"], "parent_id": [None]}),
        items=pd.DataFrame({"id": ["h1", "s1"], "category_id": ["hats", "shoes"]}),
        events=pd.DataFrame({"user_id": ["u1"], "item_id": ["h1"], "type": ["view"],
                             "timestamp": ["2024-01-01"]}))
    with pytest.raises(ValidationFailed) as err:
        data.write_to(sdk)
    assert list(err.value.messages) == [1]
    assert sdk.store.categories_frame().empty and sdk.store.count_events() == 0


def test_bad_catalogue_rows_are_named_by_the_schema(sdk):
    items = pd.DataFrame({"id": [f"i{k}" for k in range(12_000)], "price": 1.0})
    items.loc[11_000, "price"] = -5.0
    with pytest.raises(ValidationFailed) as err:
        ShopData(items=items).write_to(sdk)
    assert list(err.value.messages) == [11_000]


def test_imported_events_show_in_cached_history(sdk):
    sdk.track({"user_id": "u1", "item_id": "i0", "type": "view"})
    assert sdk.history("u1").item_ids == ["i0"]  # now cached
    events = pd.DataFrame({"user_id": ["u1"], "item_id": ["i9"], "type": ["view"],
                           "timestamp": ["2024-01-01T00:00:00Z"]})
    ShopData(events=events).write_to(sdk)
    assert sorted(sdk.history("u1").item_ids) == ["i0", "i9"]


@pytest.mark.postgres
def test_a_clean_shop_round_trips_through_postgresql(postgres_db, shop):
    store = Store(postgres_db)
    store.upgrade()
    try:
        clean, _ = clean_events(shop.events)
        counts = ShopData(shop.categories, shop.items, shop.users, clean).write_to(
            store, chunk_size=1_500)
        assert counts.events == len(clean) == store.count_events()
        check_round_trip(store, shop, clean)
        keyed = pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i1", "i1"],
                              "type": ["view", "view"],
                              "timestamp": ["2024-01-01T00:00:00+05:00"] * 2,
                              "event_id": ["k1", "k1"]})
        first = ShopData(events=keyed).write_to(store)
        assert (first.events, first.duplicate_events) == (1, 1)
        stored = store.events_frame()
        row = stored[stored["user_id"] == "u1"]
        assert row["timestamp"].tolist() == [pd.Timestamp("2023-12-31T19:00", tz="UTC")]
    finally:
        store.close()
