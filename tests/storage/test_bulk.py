"""The column-wise bulk encoding stores exactly what it was given, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from recsdk.storage import bulk, models
from recsdk.storage.store import Store
from tests.stores import migrated_store


@pytest.fixture
def store(empty_database_url: str) -> Iterator[Store]:
    with migrated_store(empty_database_url) as store:
        yield store


def stored(store: Store) -> list[tuple[object, ...]]:
    """The stored rows, read with SQLAlchemy (the models' types), in id order."""
    table = models.Event.__table__
    columns = [table.c[c] for c in ("user_id", "session_id", "item_id", "type",
                                    "timestamp", "value")]
    with store.engine.connect() as conn:
        rows = conn.execute(select(*columns).order_by(table.c.id)).all()
    return [(*r[:4], r[4].isoformat(), r[5]) for r in rows]


def test_awkward_text_nulls_zones_and_microseconds_round_trip(store: Store) -> None:
    frame = pd.DataFrame({
        "user_id": ["plain", "tab\there", "new\nline", "back\\slash, \"quoted\"", "ünï ✓"],
        "session_id": [None, "s,1", "", "s\r2", None],
        "item_id": pd.Categorical(["i1", "i2", "i1", "i3", "i2"]),
        "type": ["view", "rating", "view", "view", "purchase"],
        "timestamp": ["2024-01-01T00:00:00.000001Z", "2024-02-29T23:59:59.999999+02:00",
                      "1999-12-31T23:59:59.5Z", "2038-01-19T03:14:08Z",
                      "2024-06-01T12:00:00-07:00"],
        "value": [np.nan, 4.5, -1e-300, 1e300, 0.0],
    })
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")

    assert store.copy_events(frame) == 5

    assert sorted(stored(store), key=lambda r: r[4]) == sorted([
        ("plain", None, "i1", "view", "2024-01-01T00:00:00.000001+00:00", None),
        ("tab\there", "s,1", "i2", "rating", "2024-02-29T21:59:59.999999+00:00", 4.5),
        ("new\nline", "", "i1", "view", "1999-12-31T23:59:59.500000+00:00", -1e-300),
        ("back\\slash, \"quoted\"", "s\r2", "i3", "view", "2038-01-19T03:14:08+00:00", 1e300),
        ("ünï ✓", None, "i2", "purchase", "2024-06-01T19:00:00+00:00", 0.0),
    ], key=lambda r: r[4])


def test_missing_optional_columns_and_naive_timestamps_are_utc(store: Store) -> None:
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"],
                          "type": ["view", "view"],
                          "timestamp": pd.to_datetime(["2024-03-01 10:00", "2024-03-02 11:00"])})

    store.copy_events(frame)

    assert stored(store) == [("u1", None, "i1", "view", "2024-03-01T10:00:00+00:00", None),
                             ("u2", None, "i2", "view", "2024-03-02T11:00:00+00:00", None)]


def test_the_binary_stream_has_postgres_framing() -> None:
    frame = pd.DataFrame({"user_id": ["ab"], "session_id": [None],
                          "timestamp": pd.to_datetime(["2000-01-01T00:00:01Z"], utc=True),
                          "value": [np.nan]})
    columns = (("user_id", bulk.TEXT), ("session_id", bulk.TEXT),
               ("timestamp", bulk.TIMESTAMP), ("value", bulk.FLOAT))

    data = bulk.pg_binary_copy(frame, columns)

    row = (b"\x00\x04" + b"\x00\x00\x00\x02ab" + b"\xff\xff\xff\xff"
           + b"\x00\x00\x00\x08" + (1_000_000).to_bytes(8, "big") + b"\xff\xff\xff\xff")
    assert data == bulk.PG_COPY_HEADER + row + b"\xff\xff"


def test_an_unknown_column_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown column kind 'json'"):
        bulk.pg_binary_copy(pd.DataFrame({"a": [1]}), (("a", "json"),))


def test_sqlite_page_cache_is_restored_after_a_bulk_chunk(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.upgrade()
    try:
        with store.engine.connect() as conn:
            before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        store.copy_events(pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "type": ["view"],
                                        "timestamp": pd.to_datetime(["2024-01-01"], utc=True)}))
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == before
    finally:
        store.close()
