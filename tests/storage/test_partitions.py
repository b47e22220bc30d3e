"""PostgreSQL's monthly event partitions: routing, idempotency, ids, retention, migration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, text

from recsdk.errors import ConfigurationError
from recsdk.storage import migrate, partitions
from recsdk.storage.database import make_engine
from recsdk.storage.store import Store
from tests.postgres import fresh_postgres_database
from tests.stores import migrated_store

pg = pytest.mark.postgres

JAN, FEB, MAR, APR = (datetime(2024, m, 15, 12, tzinfo=UTC) for m in (1, 2, 3, 4))


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with migrated_store(url) as store:
        yield store


def event(user: str, when: datetime, event_id: str | None = None) -> dict[str, object]:
    return {"user_id": user, "item_id": "i1", "type": "view", "timestamp": when,
            "event_id": event_id}


def frame(*stamps: datetime) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(len(stamps))],
                         "item_id": "i1", "type": "view",
                         "timestamp": pd.to_datetime(list(stamps), utc=True)})


def rows_by_partition(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tableoid::regclass::text, user_id FROM events "
                                 "ORDER BY id")).all()
    out: dict[str, list[str]] = {}
    for table, user in rows:
        out.setdefault(table, []).append(user)
    return out


def keys(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT event_id FROM event_keys ORDER BY 1")).scalars())


@pg
def test_events_go_to_their_months_partition_created_on_demand(store: Store) -> None:
    store.copy_events(frame(JAN, MAR, datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)))
    store.add_events([event("late", datetime(2024, 3, 1, tzinfo=UTC)),
                      event("old", datetime(1999, 12, 31, 23, tzinfo=UTC), "e-old")])

    assert rows_by_partition(store.engine) == {
        "events_p202401": ["u0", "u2"], "events_p202403": ["u1", "late"],
        "events_p199912": ["old"]}
    with store.engine.connect() as conn:
        names = [p.name for p in partitions.partitions(conn)]
    assert "events_p202402" not in names  # a month without events gets no partition
    assert {"events_p199912", "events_p202401", "events_p202403"} <= set(names)


@pg
def test_an_event_id_is_stored_once_whichever_month_the_retry_claims(store: Store) -> None:
    first = store.add_events([event("u1", JAN, "e1"), event("u1", FEB, "e2")])
    again = store.add_events([event("u1", MAR, "e1"), event("u1", APR, "e3"),
                              event("u1", APR, "e3")])

    assert (first.stored, first.duplicates) == (2, 0)
    assert (again.stored, again.duplicates) == (1, 2)
    assert [r[7] for r in again.rows] == ["e3"]
    assert rows_by_partition(store.engine) == {"events_p202401": ["u1"],
                                               "events_p202402": ["u1"],
                                               "events_p202404": ["u1"]}
    assert keys(store.engine) == ["e1", "e2", "e3"]


@pg
def test_ids_keep_increasing_in_write_order_across_months(store: Store) -> None:
    store.copy_events(frame(APR, APR))
    store.add_events([event("jan", JAN)])
    cutoff = store.max_event_id()
    store.copy_events(frame(FEB))

    with store.engine.connect() as conn:
        ids = list(conn.execute(text("SELECT id FROM events ORDER BY id")).scalars())
    assert ids == sorted(set(ids)) and len(ids) == 4
    after, last = store.events_after(cutoff)
    assert [e.timestamp for e in after] == [FEB] and last == max(ids)


@pg
def test_rows_of_a_month_without_partition_wait_in_default_then_move(store: Store,
                                                                     url: str) -> None:
    store.copy_events(frame(JAN))
    other = Store(url)
    try:
        other.drop_event_months(datetime(2024, 2, 1, tzinfo=UTC))
    finally:
        other.close()
    assert (2024, 1) in store.partitions.known  # stale: this process still believes it
    store.copy_events(frame(JAN))  # goes to the DEFAULT partition
    with store.engine.begin() as conn:  # a writer of its own, in plain SQL
        conn.execute(text("INSERT INTO events (user_id, item_id, type, timestamp) "
                          "VALUES ('sql', 'i1', 'view', '2024-02-03T00:00:00Z')"))
    assert rows_by_partition(store.engine) == {"events_default": ["u0", "sql"]}

    fresh = Store(url)
    try:
        fresh.add_events([event("again", JAN)])  # creates January: the default's rows move
    finally:
        fresh.close()

    assert rows_by_partition(store.engine) == {"events_p202401": ["u0", "again"],
                                               "events_default": ["sql"]}
    planned = store.drop_event_months(datetime(2024, 3, 1, tzinfo=UTC), dry_run=True)
    assert [(p.name, p.events) for p in planned] == [("events_p202401", 2),
                                                     ("events_p202402", 1)]
    assert rows_by_partition(store.engine)["events_default"] == ["sql"]  # a dry run moves nothing
    dropped = store.drop_event_months(datetime(2024, 3, 1, tzinfo=UTC))
    assert [(p.name, p.events) for p in dropped] == [(p.name, p.events) for p in planned]
    assert store.count_events() == 0


@pg
def test_retention_drops_only_whole_months_before_the_cutoff(store: Store) -> None:
    store.add_events([event("jan", JAN, "k-jan"), event("feb", FEB, "k-feb"),
                      event("mar", MAR, "k-mar"), event("apr", APR, "k-apr")])
    store.copy_events(frame(FEB, MAR))
    before = datetime(2024, 3, 20, tzinfo=UTC)  # inside March: March stays
    kept = store.events_frame()
    kept = kept[kept["timestamp"] >= datetime(2024, 3, 1, tzinfo=UTC)].reset_index(drop=True)

    planned = store.drop_event_months(before, dry_run=True)
    assert [(p.name, p.events) for p in planned] == [("events_p202401", 1),
                                                     ("events_p202402", 2)]
    assert store.count_events() == 6

    dropped = store.drop_event_months(before)

    assert [(p.name, p.events) for p in dropped] == [(p.name, p.events) for p in planned]
    pd.testing.assert_frame_equal(store.events_frame(), kept)
    assert keys(store.engine) == ["k-apr", "k-mar"]
    assert store.drop_event_months(before) == []
    # a late January event is a new event again (its key went with its month)
    assert store.add_events([event("jan", JAN, "k-jan")]).stored == 1


@pg
def test_migration_moves_stored_events_into_partitions_and_back(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, "0009")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO events (event_id, user_id, item_id, type, timestamp, value) "
                "VALUES ('a', 'u1', 'i1', 'view', '2024-01-05T00:00:00Z', NULL), "
                "(NULL, 'u2', 'i2', 'rating', '2024-03-05T00:00:00Z', 4.0), "
                "('b', 'u3', 'i1', 'view', '2024-03-31T23:59:59.5Z', NULL)"))
        store = Store(engine)
        before = store.events_frame()
        old_ids = rows_ids(engine)

        migrate.upgrade(engine)

        assert rows_by_partition(engine) == {"events_p202401": ["u1"],
                                             "events_p202403": ["u2", "u3"]}
        assert rows_ids(engine) == old_ids
        assert keys(engine) == ["a", "b"]
        pd.testing.assert_frame_equal(store.events_frame(), before)
        assert store.add_events([event("u9", APR, "a")]).duplicates == 1
        assert store.add_events([event("u9", APR, "c")]).stored == 1
        assert rows_ids(engine)[-1] > max(old_ids)

        command.downgrade(migrate.alembic_config(engine), "0009")

        with engine.connect() as conn:
            assert not partitions.is_partitioned(conn)
            tables = set(conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        assert not partitions.managed_tables(tables)
        assert len(rows_ids(engine)) == 4
        with pytest.raises(Exception, match="uq_events_event_id"), engine.begin() as conn:
            conn.execute(text("INSERT INTO events (event_id, user_id, item_id, type, "
                              "timestamp) VALUES ('c', 'u', 'i', 'view', now())"))
        store.close()
    finally:
        engine.dispose()


def rows_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM events ORDER BY id")).scalars())


def test_sqlite_has_no_partitions_to_drop(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.upgrade()
    try:
        with pytest.raises(ConfigurationError, match="only PostgreSQL has; this database "
                                                     "is sqlite"):
            store.drop_event_months(datetime.now(UTC))
    finally:
        store.close()
