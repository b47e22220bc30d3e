"""Where the Spark engine reads events: PostgreSQL over JDBC, or a Parquet export.

Both give the same frame (:data:`SOURCE_COLUMNS`: the stored event columns, ``timestamp``
a Spark timestamp in UTC, ``id`` the row id). JDBC reads are split by row-id ranges
over the executors and stream rows (``fetchsize``), so no process holds the table.
``recsdk export --format parquet`` writes the layout :func:`read_parquet` reads:
``DIR/events`` and ``DIR/items``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from recsdk.errors import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Event columns a source gives (the ``events`` table's, without ``event_id``/``context``).
SOURCE_COLUMNS = ("id", "user_id", "session_id", "item_id", "type", "timestamp", "value")
#: Sub-directories of a Parquet export.
EVENTS_DIR = "events"
ITEMS_DIR = "items"
#: Rows the PostgreSQL driver fetches per round trip (it would fetch all without one).
JDBC_FETCH_SIZE = 10_000
#: Events per JDBC partition: the read is split into row-id ranges of about this size.
EVENTS_PER_PARTITION = 1_000_000


def jdbc_options(database_url: str) -> dict[str, str]:
    """Spark JDBC options (url, user, password, driver) for a PostgreSQL database URL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"the Spark engine reads events over JDBC from PostgreSQL only, and the "
            f"database is {url.get_backend_name()}: write a Parquet export with `recsdk "
            "export --format parquet DIR` and train with `--parquet DIR`")
    host = url.host or "localhost"
    port = url.port or 5432
    options = {"url": f"jdbc:postgresql://{host}:{port}/{url.database or ''}",
               "driver": "org.postgresql.Driver", "fetchsize": str(JDBC_FETCH_SIZE)}
    if url.username:
        options["user"] = url.username
    if url.password:
        options["password"] = str(url.password)
    return options


def read_jdbc(spark: SparkSession, database_url: str, through_id: int) -> DataFrame:
    """Events with row id 1..``through_id`` from PostgreSQL, read in id-range partitions."""
    from pyspark.sql import functions as F

    partitions = max(1, min(1000, through_id // EVENTS_PER_PARTITION + 1))
    frame = (spark.read.format("jdbc").options(**jdbc_options(database_url))
             .option("dbtable", "events").option("partitionColumn", "id")
             .option("lowerBound", "1").option("upperBound", str(through_id + 1))
             .option("numPartitions", str(partitions)).load())
    return frame.where(F.col("id") <= through_id).select(*SOURCE_COLUMNS)


def parquet_events(path: str | Path) -> str:
    """Where the events of a Parquet export (``DIR`` or ``DIR/events``) are, checked
    before Spark starts; a URL (``s3a://``, ``hdfs://``) is Spark's to check."""
    if "://" in str(path):
        return f"{str(path).rstrip('/')}/{EVENTS_DIR}"
    root = Path(path)
    events = root / EVENTS_DIR if (root / EVENTS_DIR).is_dir() else root
    if not events.is_dir() or not any(events.glob("*.parquet")):
        raise ConfigurationError(
            f"no Parquet events at {events}: write them with `recsdk export --format "
            f"parquet {root}`")
    return str(events)


def read_parquet(spark: SparkSession, path: str | Path) -> DataFrame:
    """The events of a Parquet export (see :func:`parquet_events`)."""
    events = parquet_events(path)
    frame = spark.read.parquet(events)
    missing = [c for c in SOURCE_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"the Parquet events at {events} lack column(s) {missing}; "
                                 f"expected {list(SOURCE_COLUMNS)} (recsdk export's layout)")
    return frame.select(*SOURCE_COLUMNS)
