"""PostgreSQL: the events table partitioned by month, and retention by whole months.

Events only grow, and the old ones go by age. On PostgreSQL ``events`` is a declarative
partitioned table (``PARTITION BY RANGE (timestamp)``) with one partition per calendar
month in UTC, named ``events_pYYYYMM``, so that

* each partition's indexes stay the size of one month: an import's index maintenance
  does not slow as the table grows;
* retention drops whole months (detach, then drop: no row-by-row delete, no bloat).

Partitions are created on demand: before a write, the months its events fall in are
looked up in a per-process cache and the missing ones created in a short transaction
of their own, under an advisory lock (two writers never race to create one). A
DEFAULT partition, ``events_default``, catches rows that other writers (plain SQL,
a process whose cache still lists a month retention dropped) put in a month without a
partition; creating that month's partition later moves them into it, and retention
moves the old ones out before it drops months, so the default stays (nearly) empty.

A partitioned table's unique constraints must include the partition key, so
``events.event_id`` (the client's idempotency key) cannot be unique there. Keys live
in ``event_keys`` (``event_id`` primary key, with the event's timestamp), written in
the same transaction as the events; the primary key of ``events`` is
``(id, timestamp)`` with ``id`` still drawn from one sequence, so ``id`` stays the
increasing keyset that training and catch-up read by.

SQLite keeps the plain table (models.Event), where ``event_id`` is unique itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

#: Name of a monthly partition of events: ``events_p202611`` holds November 2026.
PARTITION_NAME = re.compile(r"^events_p(\d{4})(\d{2})$")
DEFAULT_PARTITION = "events_default"
KEYS_TABLE = "event_keys"
#: Advisory lock key serialising partition creation and retention ("recspart").
PARTITION_LOCK_KEY = 0x7265_6373_7061_7274

Month = tuple[int, int]


def partition_name(month: Month) -> str:
    return f"events_p{month[0]:04d}{month[1]:02d}"


def month_start(month: Month) -> datetime:
    return datetime(month[0], month[1], 1, tzinfo=UTC)


def next_month(month: Month) -> Month:
    year, m = month
    return (year + 1, 1) if m == 12 else (year, m + 1)


def months_of_micros(micros: np.ndarray) -> set[Month]:
    """The UTC months of timestamps given as microseconds since the UNIX epoch."""
    if not len(micros):
        return set()
    months = np.unique(micros.astype("datetime64[us]").astype("datetime64[M]")).astype(int)
    return {(1970 + int(m) // 12, int(m) % 12 + 1) for m in months}


def months_of(stamps: Iterable[datetime]) -> set[Month]:
    """The UTC months of datetimes (naive ones are UTC, as the models store them)."""
    out = set()
    for ts in stamps:
        ts = ts.astimezone(UTC) if ts.tzinfo else ts
        out.add((ts.year, ts.month))
    return out


@dataclass(frozen=True)
class Partition:
    """One monthly partition: its table name and the half-open range it holds."""

    name: str
    start: datetime
    end: datetime


def partitions(conn: Connection) -> list[Partition]:
    """The monthly partitions of ``events``, oldest first (other tables attached by
    hand, not named ``events_pYYYYMM``, are left out)."""
    names = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('events')")).scalars()
    out = []
    for name in names:
        found = PARTITION_NAME.match(name)
        if found:
            month = (int(found[1]), int(found[2]))
            out.append(Partition(name, month_start(month), month_start(next_month(month))))
    return sorted(out, key=lambda p: p.start)


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_KEY})


def create_partitions(conn: Connection, months: Iterable[Month]) -> list[str]:
    """Create the partitions of ``months`` that do not exist yet (in ``conn``'s
    transaction, under the partition lock); return the names created.

    Rows of such a month already in the DEFAULT partition move into the new one
    (PostgreSQL refuses to create a partition over rows the default holds)."""
    _lock(conn)
    existing = {p.name for p in partitions(conn)}
    created = []
    for month in sorted(set(months)):
        name = partition_name(month)
        if name in existing:
            continue
        start, end = month_start(month), month_start(next_month(month))
        bounds = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        window = {"start": start, "end": end}
        stray = conn.execute(text(
            f"SELECT 1 FROM {DEFAULT_PARTITION} WHERE timestamp >= :start "
            "AND timestamp < :end LIMIT 1"), window).first()
        if stray is None:
            conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF events {bounds}'))
        else:
            conn.execute(text(f'CREATE TABLE "{name}" (LIKE events INCLUDING DEFAULTS)'))
            conn.execute(text(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE timestamp >= :start "
                f'AND timestamp < :end RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'),
                window)
            conn.execute(text(f'ALTER TABLE events ATTACH PARTITION "{name}" {bounds}'))
        created.append(name)
    return created


def _default_months_before(conn: Connection, before: datetime) -> set[Month]:
    """Months with rows in the DEFAULT partition that end at or before ``before``."""
    first = conn.execute(text(
        f"SELECT DISTINCT date_trunc('month', timestamp AT TIME ZONE 'UTC') "
        f"FROM {DEFAULT_PARTITION} WHERE timestamp < :before"), {"before": before}).scalars()
    return {m for m in ((d.year, d.month) for d in first)
            if month_start(next_month(m)) <= before}


class PartitionCache:
    """The months this process knows have a partition, so that a write asks the
    catalogue only when its events reach a month not seen before."""

    def __init__(self) -> None:
        self.known: set[Month] = set()

    def ensure(self, engine: Engine, months: Iterable[Month]) -> None:
        missing = set(months) - self.known
        if not missing:
            return
        with engine.begin() as conn:
            create_partitions(conn, missing)
        self.known |= missing

    def forget(self) -> None:
        self.known.clear()


@dataclass(frozen=True)
class Dropped:
    """A partition retention dropped (or would drop): name, range and rows."""

    name: str
    start: datetime
    end: datetime
    events: int


def drop_before(engine: Engine, before: datetime, *, dry_run: bool = False) -> list[Dropped]:
    """Drop the monthly partitions that end at or before ``before``; rows of the
    month that ``before`` falls in stay. Each partition is detached and dropped in a
    transaction of its own, with the idempotency keys of its months. Old rows the
    DEFAULT partition holds are first moved into their months' partitions (a dry run
    counts them as such), so that they go too."""
    with engine.connect() as conn:
        stray = _default_months_before(conn, before)
    if stray and not dry_run:
        with engine.begin() as conn:
            create_partitions(conn, stray)
    with engine.connect() as conn:
        doomed = [p for p in partitions(conn) if p.end <= before]
        if dry_run:  # what moving the default's old rows would create
            known = {p.name for p in doomed}
            doomed += [Partition(partition_name(m), month_start(m),
                                 month_start(next_month(m))) for m in stray
                       if partition_name(m) not in known]
            doomed.sort(key=lambda p: p.start)
    out = []
    for part in doomed:
        with engine.begin() as conn:
            _lock(conn)
            exists = part.name in {p.name for p in partitions(conn)}
            if not exists and not dry_run:
                continue  # another process dropped it meanwhile
            events = _count(conn, part, exists)
            if not dry_run:
                conn.execute(text(f'ALTER TABLE events DETACH PARTITION "{part.name}"'))
                conn.execute(text(f'DROP TABLE "{part.name}"'))
                conn.execute(text(f"DELETE FROM {KEYS_TABLE} WHERE timestamp >= :start "
                                  "AND timestamp < :end"),
                             {"start": part.start, "end": part.end})
        out.append(Dropped(part.name, part.start, part.end, events))
    return out


def _count(conn: Connection, part: Partition, exists: bool) -> int:
    """Rows of ``part``: its own if it exists, else (a dry run's planned month) those
    the DEFAULT partition holds for its month."""
    if exists:
        return int(conn.execute(text(f'SELECT count(*) FROM "{part.name}"')).scalar_one())
    return int(conn.execute(text(
        f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE timestamp >= :start "
        "AND timestamp < :end"), {"start": part.start, "end": part.end}).scalar_one())


# ---- the layout itself: used by migration 0010 and by Store.create_all ------------------


def to_partitioned(conn: Connection, now: datetime | None = None) -> None:
    """Turn the plain ``events`` table into the partitioned layout, moving its rows.

    Months of stored events and the current month get partitions; ``event_keys``
    receives every stored ``event_id``. The ``id`` sequence is kept (re-owned).
    """
    now = now or datetime.now(UTC)
    for statement in (
        "ALTER TABLE events RENAME TO events_unpartitioned",
        "ALTER TABLE events_unpartitioned RENAME CONSTRAINT pk_events "
        "TO pk_events_unpartitioned",
        "ALTER TABLE events_unpartitioned DROP CONSTRAINT uq_events_event_id",
        "DROP INDEX ix_events_user_id_timestamp",
        "DROP INDEX ix_events_session_id_timestamp",
        "CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (timestamp)",
        "ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (id, timestamp)",
        "ALTER SEQUENCE events_id_seq OWNED BY events.id",
        "CREATE INDEX ix_events_user_id_timestamp ON events (user_id, timestamp)",
        "CREATE INDEX ix_events_session_id_timestamp ON events (session_id, timestamp)",
        f"CREATE TABLE {KEYS_TABLE} (event_id VARCHAR(255) NOT NULL, "
        "timestamp TIMESTAMP WITH TIME ZONE NOT NULL, "
        f"CONSTRAINT pk_{KEYS_TABLE} PRIMARY KEY (event_id))",
        f"CREATE INDEX ix_{KEYS_TABLE}_timestamp ON {KEYS_TABLE} (timestamp)",
        f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF events DEFAULT",
    ):
        conn.execute(text(statement))
    stored = conn.execute(text(
        "SELECT DISTINCT date_trunc('month', timestamp AT TIME ZONE 'UTC') "
        "FROM events_unpartitioned")).scalars()
    create_partitions(conn, {(m.year, m.month) for m in stored} | {(now.year, now.month)})
    conn.execute(text(f"INSERT INTO {KEYS_TABLE} (event_id, timestamp) SELECT event_id, "
                      "timestamp FROM events_unpartitioned WHERE event_id IS NOT NULL"))
    conn.execute(text("INSERT INTO events SELECT * FROM events_unpartitioned"))
    conn.execute(text("DROP TABLE events_unpartitioned"))


def to_plain(conn: Connection) -> None:
    """Undo :func:`to_partitioned`: one plain ``events`` table with a unique
    ``event_id`` again, every row kept, ``event_keys`` dropped."""
    for statement in (
        "ALTER TABLE events RENAME TO events_partitioned",
        "ALTER TABLE events_partitioned RENAME CONSTRAINT pk_events TO pk_events_partitioned",
        "DROP INDEX ix_events_user_id_timestamp",
        "DROP INDEX ix_events_session_id_timestamp",
        "CREATE TABLE events (LIKE events_partitioned INCLUDING DEFAULTS)",
        "ALTER SEQUENCE events_id_seq OWNED BY events.id",
        "INSERT INTO events SELECT * FROM events_partitioned ORDER BY id",
        "ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY (id)",
        "ALTER TABLE events ADD CONSTRAINT uq_events_event_id UNIQUE (event_id)",
        "CREATE INDEX ix_events_user_id_timestamp ON events (user_id, timestamp)",
        "CREATE INDEX ix_events_session_id_timestamp ON events (session_id, timestamp)",
        "DROP TABLE events_partitioned",
        f"DROP TABLE {KEYS_TABLE}",
    ):
        conn.execute(text(statement))


def is_partitioned(conn: Connection) -> bool:
    """Whether ``events`` is the partitioned table (PostgreSQL, migration 0010)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text(
        "SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass('events')"))
        .scalar())


def managed_tables(names: Iterable[str]) -> set[str]:
    """Of ``names`` (tables in a database), those this layout owns and the models do not
    describe: the partitions and ``event_keys``."""
    return {n for n in names
            if n in (KEYS_TABLE, DEFAULT_PARTITION) or PARTITION_NAME.match(n)}


def include_object_for(dialect: str) -> Callable[..., bool]:
    """An alembic ``include_object`` for ``dialect``: on PostgreSQL the partition layout
    stays out of model comparisons (partitions, ``event_keys``, and the ``event_id``
    uniqueness that ``event_keys`` replaces); SQLite is compared as the models say."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool,
                compare_to: Any) -> bool:
        if dialect != "postgresql":
            return True
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        if table is not None and managed_tables([table]):
            return False
        return not (type_ == "unique_constraint" and name == "uq_events_event_id")

    return include
