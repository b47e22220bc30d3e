"""The events as the Spark engine's plugins see them: integer codes in a Spark frame, the
run's vocabularies on the driver, and collection back into numpy.

The vocabularies are built exactly as :meth:`InteractionDataset.from_frame` builds them
(users sorted; items of the events and of the catalogue, sorted), on the driver, so a
code means the same item whichever engine trained. Ids are few next to events (250,000
users for 10M events), so sorting them in Python costs little and keeps Python's string
order, which the local trainer uses. Events stay in Spark.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: Columns of :attr:`SparkEvents.events` (``InteractionDataset.interactions``' names).
EVENT_COLUMNS = ("user", "item", "type", "timestamp", "value", "weight")


def _weight_of(types: Column, weights: Mapping[str, float]) -> Column:
    """Each event type's implicit-feedback weight; 1.0 for a type without one (as the
    local dataset's ``weight`` column)."""
    from pyspark.sql import functions as F

    pairs = [x for t, w in weights.items() for x in (F.lit(t), F.lit(float(w)))]
    table = F.create_map(*pairs) if pairs else F.create_map().cast("map<string,double>")
    return F.coalesce(F.try_element_at(table, types), F.lit(1.0)).cast("float")


@dataclass
class SparkEvents:
    """What a plugin's ``fit_spark(data, context)`` trains on.

    ``events``: one row per event with the columns of :data:`EVENT_COLUMNS` (``user``
    and ``item`` are the vocabulary codes, ``timestamp`` UNIX seconds, ``weight`` the
    event type's weight), cached. ``vocabulary``: the run's vocabularies and catalogue
    as a dataset without interactions (its ``user_index``/``item_index`` are what
    request-time state needs). ``n_events`` and ``data_end`` (the newest timestamp) are
    computed once for every plugin.
    """

    spark: SparkSession
    events: DataFrame
    vocabulary: InteractionDataset
    n_events: int
    data_end: float

    @property
    def n_users(self) -> int:
        return self.vocabulary.n_users

    @property
    def n_items(self) -> int:
        return self.vocabulary.n_items

    # ---- building ----------------------------------------------------------------------

    @classmethod
    def from_source(cls, spark: SparkSession, source: DataFrame, catalog: Catalog,
                    event_weights: Mapping[str, float] | None = None) -> SparkEvents:
        """From a frame of stored events (``user_id``, ``item_id``, ``type``,
        ``timestamp`` as a Spark timestamp, ``value``): codes joined in, weights mapped."""
        from pyspark.sql import functions as F

        weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        source = source.select(
            F.col("user_id").cast("string"), F.col("item_id").cast("string"),
            F.col("type").cast("string"),
            # a timestamp without zone (another writer's Parquet) is taken as UTC
            (F.unix_micros(F.col("timestamp").cast("timestamp")) / F.lit(1e6))
            .alias("timestamp"),
            F.col("value").cast("double")).cache()
        users = sorted(r[0] for r in source.select("user_id").distinct().toLocalIterator())
        items = {r[0] for r in source.select("item_id").distinct().toLocalIterator()}
        items = sorted(items | {str(i) for i in catalog.ids})
        vocabulary = InteractionDataset.from_vocabulary(
            {"user_ids": np.array(users, dtype=object), "item_ids": np.array(items, dtype=object)},
            catalog)
        user_codes = _code_frame(spark, users, "user_id", "user")
        item_codes = _code_frame(spark, items, "item_id", "item")
        events = (source.join(F.broadcast(user_codes) if len(users) <= 1_000_000
                              else user_codes, "user_id")
                  .join(F.broadcast(item_codes) if len(items) <= 1_000_000 else item_codes,
                        "item_id")
                  .select("user", "item", "type", "timestamp", "value",
                          _weight_of(F.col("type"), weights).alias("weight")))
        out = cls.from_coded(spark, events, vocabulary)
        source.unpersist()
        return out

    @classmethod
    def from_dataset(cls, spark: SparkSession, dataset: InteractionDataset,
                     slices: int | None = None) -> SparkEvents:
        """From a local dataset (benchmarks and tests: the same data both engines fit)."""
        inter = dataset.interactions
        columns = [inter["user"].to_numpy(np.int64).tolist(),
                   inter["item"].to_numpy(np.int64).tolist(),
                   inter["type"].astype(str).tolist(),
                   inter["timestamp"].to_numpy(np.float64).tolist(),
                   [None if v != v else v
                    for v in inter["value"].to_numpy(np.float64).tolist()],
                   inter["weight"].to_numpy(np.float64).tolist()]
        rdd = spark.sparkContext.parallelize(list(zip(*columns, strict=True)), slices)
        events = spark.createDataFrame(rdd, "user int, item int, type string, timestamp "
                                            "double, value double, weight double")
        return cls.from_coded(spark, events.withColumn("weight", events["weight"]
                                                       .cast("float")), dataset)

    @classmethod
    def from_coded(cls, spark: SparkSession, events: DataFrame,
                   vocabulary: InteractionDataset) -> SparkEvents:
        """From a frame that already has :data:`EVENT_COLUMNS`; cached here."""
        from pyspark.sql import functions as F

        events = events.select(*EVENT_COLUMNS).cache()
        n, end = events.agg(F.count(F.lit(1)), F.max("timestamp")).first()
        if not n:
            raise ConfigurationError("the Spark engine found no events to train on")
        return cls(spark, events, vocabulary, int(n), float(end))

    def close(self) -> None:
        """Release the cached events on the cluster."""
        self.events.unpersist()

    # ---- back to numpy -----------------------------------------------------------------

    def item_vector(self, frame: DataFrame, value: str) -> np.ndarray:
        """A float64 array over item codes from a frame of (``item``, ``value``) rows;
        0 for items without a row."""
        out = np.zeros(self.n_items, dtype=np.float64)
        codes, values = collect_columns(frame.select("item", value), (np.int64, np.float64))
        out[codes] = values
        return out

    def csr(self, frame: DataFrame, value: str | None = None,
            dtype: type = np.float32) -> sp.csr_matrix:
        """A users x items CSR matrix from (``user``, ``item``[, ``value``]) rows, built by
        the same scipy construction as the local trainer's (so the same dtypes and
        canonical order); ones where no ``value`` column is given."""
        names = ["user", "item"] + ([value] if value else [])
        columns = collect_columns(frame.select(*names),
                                  (np.int64, np.int64) + ((np.float64,) if value else ()))
        data = (columns[2].astype(dtype) if value
                else np.ones(len(columns[0]), dtype=dtype))
        return sp.csr_matrix((data, (columns[0], columns[1])),
                             shape=(self.n_users, self.n_items))

    def fingerprint(self) -> str:
        """sha256 of the vocabularies and of an order-free digest of the events (count
        and sum of per-event hashes): stable for the same data whatever the partitioning,
        so not equal to the local trainer's fingerprint of the same data."""
        from pyspark.sql import functions as F

        digest = hashlib.sha256()
        for ids in (self.vocabulary.user_ids, self.vocabulary.item_ids):
            digest.update("\x1f".join(map(str, ids)).encode("utf-8", "surrogatepass"))
            digest.update(b"\x1e")
        hashed = F.xxhash64("user", "item", "timestamp", "weight", "type")
        n, total = self.events.agg(F.count(F.lit(1)),
                                   F.sum(hashed.cast("decimal(38,0)"))).first()
        digest.update(f"spark:{n}:{total}".encode())
        return digest.hexdigest()


def _code_frame(spark: SparkSession, ids: Sequence[str], id_column: str,
                code_column: str) -> DataFrame:
    """(id, code) rows for a sorted vocabulary: what joins codes onto the events."""
    return spark.createDataFrame(list(zip(ids, range(len(ids)), strict=True)),
                                 f"{id_column} string, {code_column} int")


def collect_columns(frame: DataFrame, dtypes: Sequence[Any]) -> list[np.ndarray]:
    """A frame's columns as numpy arrays, streamed a partition at a time (driver memory:
    the arrays, not every row's Python objects at once)."""
    n = frame.count()
    out = [np.empty(n, dtype=d) for d in dtypes]
    i = 0
    for row in frame.toLocalIterator():
        if i >= n:  # the frame changed between count and read (not for cached data)
            raise RuntimeError("a Spark frame grew while it was collected")
        for column, value in zip(out, row, strict=True):
            column[i] = value
        i += 1
    return [c[:i] for c in out]


def collect_vectors(frame: DataFrame, n_rows: int, dim: int) -> np.ndarray:
    """MLlib factors (``id``, ``features``) as a float32 (n_rows, dim) array; zeros for
    ids without a row (a user or item with no positive cell)."""
    out = np.zeros((n_rows, dim), dtype=np.float32)
    for row_id, features in frame.select("id", "features").toLocalIterator():
        out[row_id] = features
    return out
