"""Event and catalogue ingestion through the Python API, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from recsdk.errors import ValidationFailed
from tests.core.shop import fill

GOOD = {"user_id": "u1", "item_id": "i1", "type": "view"}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"item_id": "i1", "type": "view"}, "user_id"),
        ({**GOOD, "user_id": ""}, "user_id"),
        ({**GOOD, "item_id": ["i1"]}, "item_id"),
        ({**GOOD, "type": "Add To Cart"}, "type"),
        ({**GOOD, "timestamp": "yesterday"}, "timestamp"),
        ({**GOOD, "timestamp": (datetime.now(UTC) + timedelta(days=3)).isoformat()},
         "timestamp"),
        ({**GOOD, "timestamp": 1_700_000_000_000}, "timestamp"),  # milliseconds
        ({**GOOD, "type": "rating"}, "value"),
        ({**GOOD, "value": "lots"}, "value"),
        ({**GOOD, "value": float("nan")}, "value"),
        ({**GOOD, "colour": "red"}, "colour"),
        ({**GOOD, "context": ["not", "a", "dict"]}, "context"),
    ],
)
def test_bad_event_names_row_and_field_and_stores_nothing(make_sdk, bad, field):
    sdk = make_sdk()
    with pytest.raises(ValidationFailed) as err:
        sdk.track_many([GOOD, bad, GOOD])
    assert 1 in err.value.messages and field in err.value.messages[1]
    assert 0 not in err.value.messages
    assert sdk.store.count_events() == 0


def test_non_list_and_non_object_rows(make_sdk):
    sdk = make_sdk()
    with pytest.raises(ValidationFailed):
        sdk.track_many("view")  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed):
        sdk.track_many([GOOD, "view"])  # type: ignore[list-item]
    assert sdk.store.count_events() == 0


def test_timestamps_are_utc_and_default_to_now(make_sdk):
    sdk = make_sdk()
    before = datetime.now(UTC)
    report = sdk.track_many([
        {**GOOD, "timestamp": "2024-05-01T12:00:00+02:00"},
        {**GOOD, "timestamp": 1_714_557_600},
        {**GOOD, "timestamp": "2024-05-01T10:00:00"},  # naive: UTC
        GOOD,
    ])
    stamps = [e.timestamp for e in report.events]
    assert stamps[0] == stamps[1] == stamps[2] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert stamps[3] >= before
    frame = sdk.store.events_frame()
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert (frame["timestamp"].iloc[:3] == datetime(2024, 5, 1, 10, tzinfo=UTC)).all()


def test_event_id_makes_ingestion_idempotent(make_sdk):
    sdk = make_sdk()
    first = sdk.track_many([{**GOOD, "event_id": "e1"}, {**GOOD, "event_id": "e1"},
                            {**GOOD, "event_id": "e2"}])
    assert (first.stored, first.duplicates) == (2, 1)
    again = sdk.track_many([{**GOOD, "event_id": "e2"}, {**GOOD, "event_id": "e3"}])
    assert (again.stored, again.duplicates) == (1, 1)
    assert [e.event_id for e in again.events] == ["e3"]
    assert sdk.store.count_events() == 3


def test_catalogue_bad_input(make_sdk):
    sdk = make_sdk()
    fill(sdk)
    with pytest.raises(ValidationFailed, match="Unknown category"):
        sdk.upsert_items([{"id": "x", "category_id": "boats"}])
    with pytest.raises(ValidationFailed, match="negative"):
        sdk.upsert_items([{"id": "x", "price": -3}])
    with pytest.raises(ValidationFailed, match="Unknown category"):
        sdk.upsert_categories([{"id": "kids", "parent_id": "nowhere"}])
    with pytest.raises(ValidationFailed, match="cycle"):
        sdk.upsert_categories([{"id": "a", "parent_id": "b"}, {"id": "b", "parent_id": "a"}])
    assert "x" not in sdk.catalog.index


def _concurrent_tracking(sdk, threads: int = 8, calls: int = 40) -> None:
    def post(t: int) -> None:
        for n in range(calls):
            sdk.track({"user_id": f"t{t}", "item_id": f"i{n}", "type": "click"})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, range(threads)))
    assert sdk.store.count_events() == threads * calls
    frame = sdk.store.events_frame()
    assert frame.groupby("user_id").size().eq(calls).all()

    # the same event_id offered by every thread at once is stored exactly once
    def same(_: int) -> int:
        return sdk.track({**GOOD, "event_id": "shared"}).stored

    with ThreadPoolExecutor(threads) as pool:
        stored = list(pool.map(same, range(threads * 2)))
    assert sum(stored) == 1
    assert sdk.store.count_events() == threads * calls + 1


def test_concurrent_tracking_sqlite(make_sdk):
    _concurrent_tracking(make_sdk())


@pytest.mark.postgres
def test_concurrent_tracking_postgres(make_sdk, postgres_url):
    _concurrent_tracking(make_sdk({"database_url": postgres_url}))


@pytest.mark.postgres
def test_full_flow_on_postgres(make_sdk, postgres_url):
    sdk = make_sdk({"database_url": postgres_url,
                    "plugins": {"popularity": {}, "category_popularity": {}}})
    fill(sdk)
    report = sdk.fit()
    assert report.interactions == sdk.store.count_events()
    result = sdk.recommend("u3", k=5)
    assert len(result.items) == 5 and not result.degraded
    sdk.log_feedback([{"request_id": result.request_id, "item_id": result.item_ids[0],
                       "type": "purchase"}])
    restarted = make_sdk({"database_url": postgres_url,
                          "plugins": {"popularity": {}, "category_popularity": {}}})
    assert restarted.recommend("u3", k=5).item_ids == result.item_ids
