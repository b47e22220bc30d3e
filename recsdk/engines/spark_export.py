"""``recsdk export --format parquet``: the events and items as Parquet, for Spark runs
(``recsdk train --engine spark --parquet DIR``) or any other Parquet reader.

Memory stays bounded whatever the event count: from PostgreSQL, Spark reads the events
over JDBC in row-id ranges and writes them (no rows pass through this process); from
another database (SQLite), events are read ``chunk_rows`` at a time by row id and each
chunk is appended to the Parquet dataset before the next is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from recsdk.engines.spark_sources import EVENTS_DIR, ITEMS_DIR, SOURCE_COLUMNS, read_jdbc
from recsdk.errors import ConfigurationError
from recsdk.storage import models

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from recsdk.storage.store import Store

#: Spark schema of the exported events (the ``events`` table's columns that train).
EVENTS_SCHEMA = ("id long, user_id string, session_id string, item_id string, type string, "
                 "timestamp timestamp, value double")
#: Item columns exported; ``tags`` and ``attributes`` as JSON text.
ITEM_COLUMNS = ("id", "title", "description", "category_id", "tags", "price",
                "original_price", "stock", "active", "image_url", "attributes",
                "created_at", "updated_at")
ITEMS_SCHEMA = ("id string, title string, description string, category_id string, tags "
                "string, price double, original_price double, stock long, active boolean, "
                "image_url string, attributes string, created_at timestamp, updated_at "
                "timestamp")
DEFAULT_CHUNK_ROWS = 100_000


def check_target(out: Path) -> None:
    """Refuse to write into an existing non-empty directory (an export is one snapshot)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigurationError(f"{out} already exists and is not empty; export into a new "
                                 "directory")


def _chunks(store: Store, table: Any, columns: tuple[str, ...], chunk_rows: int,
            start: Any, *where: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of ``table`` ``chunk_rows`` at a time, by primary key (the first column)
    after ``start``: each chunk one query, none holding the table."""
    key = table.c[columns[0]]
    last = start
    while True:
        stmt = (select(*[table.c[c] for c in columns]).where(key > last, *where)
                .order_by(key).limit(chunk_rows))
        with store.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(stmt)]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def event_chunks(store: Store, through_id: int, chunk_rows: int
                 ) -> Iterator[list[tuple[Any, ...]]]:
    """Stored events with row id up to ``through_id``, ``chunk_rows`` at a time, by id."""
    table = models.Event.__table__
    return _chunks(store, table, SOURCE_COLUMNS, chunk_rows, 0, table.c.id <= through_id)


def _item_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    out = list(row)
    for i, name in enumerate(ITEM_COLUMNS):
        value = out[i]
        if name in ("tags", "attributes") and value is not None:
            out[i] = json.dumps(value, sort_keys=True)
        elif name in ("price", "original_price") and value is not None:
            out[i] = float(value)
    return tuple(out)


def export_parquet(spark: SparkSession, store: Store, database_url: str, out: str | Path,
                   chunk_rows: int = DEFAULT_CHUNK_ROWS) -> dict[str, int]:
    """Write ``out/events`` and ``out/items``; return the row counts written."""
    if chunk_rows < 1:
        raise ConfigurationError(f"chunk rows must be at least 1, got {chunk_rows}")
    root = Path(out)
    check_target(root)
    through = store.max_event_id()
    events_path = str(root / EVENTS_DIR)
    if make_url(database_url).get_backend_name() == "postgresql" and through > 0:
        frame = read_jdbc(spark, database_url, through)
        frame.write.mode("errorifexists").parquet(events_path)
        n_events = spark.read.parquet(events_path).count()
    else:
        n_events = 0
        for rows in event_chunks(store, through, chunk_rows):
            spark.createDataFrame(rows, EVENTS_SCHEMA, verifySchema=False).write.mode(
                "append").parquet(events_path)
            n_events += len(rows)
        if n_events == 0:  # an empty export still has the schema
            spark.createDataFrame([], EVENTS_SCHEMA).write.parquet(events_path)
    n_items = 0
    for rows in _chunks(store, models.Item.__table__, ITEM_COLUMNS, chunk_rows, ""):
        spark.createDataFrame([_item_row(r) for r in rows], ITEMS_SCHEMA).write.mode(
            "append").parquet(str(root / ITEMS_DIR))
        n_items += len(rows)
    if n_items == 0:
        spark.createDataFrame([], ITEMS_SCHEMA).write.parquet(str(root / ITEMS_DIR))
    return {"events": n_events, "items": n_items}
