"""``als`` on Spark MLlib (``recsdk train --engine spark``): the weighted matrix in Spark
SQL, the factors by MLlib's implicit-feedback ALS, state as the local plugin saves it.

MLlib solves the same objective as implicit (Hu, Koren & Volinsky 2008; confidence
1 + alpha x strength, preference 1 where the strength is positive) with one difference:
it scales the L2 penalty of each user (item) by that user's (item's) count of positive
cells ("ALS-WR"), where implicit's is the same for everyone. :func:`mllib_reg_param`
turns the plugin's ``regularization`` into MLlib's ``regParam`` so that the penalty is
the same at the mean count of users and items (docs/spark.md has the measurements).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recsdk.errors import ConfigurationError
from recsdk.interactions import SECONDS_PER_DAY, UserRows, Weighting

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from recsdk.engines.spark_data import SparkEvents


def weighted_cells(data: SparkEvents, weighting: Weighting, plugin: str) -> DataFrame:
    """(``user``, ``item``, ``strength``) cells of the weighted matrix, as
    :func:`recsdk.interactions.weighted_matrix` builds it: type weights (0 for types
    filtered out), halved every ``half_life_days`` before the newest event, summed per
    cell, positive cells only. Raises :class:`ConfigurationError` naming ``plugin`` when
    no cell is positive."""
    from pyspark.sql import functions as F

    weight = F.col("weight").cast("double")
    if weighting.event_types is not None:
        weight = F.when(F.col("type").isin(list(weighting.event_types)), weight).otherwise(0.0)
    if weighting.half_life_days is not None:
        age = F.greatest(F.lit(data.data_end) - F.col("timestamp"), F.lit(0.0))
        weight = weight * F.pow(F.lit(2.0), -age / (weighting.half_life_days
                                                  * SECONDS_PER_DAY))
    cells = (data.events.groupBy("user", "item").agg(F.sum(weight).alias("strength"))
             .where(F.col("strength").cast("float") > 0).cache())
    if cells.isEmpty():
        present = sorted(r[0] for r in data.events.select("type").distinct().collect())
        wanted = list(weighting.event_types) if weighting.event_types else "any type"
        cells.unpersist()
        raise ConfigurationError(
            f"plugins.{plugin}: the training data has no positive interaction of event "
            f"types {wanted} (event types present: {present or 'none'}); nothing to learn")
    return cells


def mllib_reg_param(regularization: float, matrix: sp.csr_matrix) -> float:
    """MLlib's ``regParam`` for implicit's ``regularization``: MLlib multiplies it by a
    row's positive cells, so it is divided by the mean of the users' and the items' mean
    count (the penalty then matches implicit's for a typical user and item)."""
    n_users = max(int((np.diff(matrix.indptr) > 0).sum()), 1)
    n_items = max(int((np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0).sum()), 1)
    typical = 0.5 * (matrix.nnz / n_users + matrix.nnz / n_items)
    return regularization / max(typical, 1.0)


def fit_als(data: SparkEvents, params: dict, weighting: Weighting, seed: int,
            plugin: str = "als", reg_param: float | None = None
            ) -> tuple[UserRows, np.ndarray, np.ndarray]:
    """The weighted rows and the (users x factors, items x factors) float32 factors of
    MLlib's implicit ALS with the plugin's ``factors``, ``iterations``,
    ``regularization`` and ``alpha``; ``reg_param`` overrides MLlib's ``regParam``
    (default: :func:`mllib_reg_param`; benchmarks/spark_als.py compares)."""
    from pyspark.ml.recommendation import ALS

    from recsdk.engines.spark_data import collect_vectors

    cells = weighted_cells(data, weighting, plugin)
    try:
        matrix = data.csr(cells, "strength", dtype=np.float32)
        matrix.data = np.clip(matrix.data, 0, None)
        matrix.eliminate_zeros()
        blocks = max(1, data.spark.sparkContext.defaultParallelism)
        model = ALS(rank=params["factors"], maxIter=params["iterations"],
                    regParam=(mllib_reg_param(params["regularization"], matrix)
                              if reg_param is None else reg_param),
                    alpha=params["alpha"], implicitPrefs=True, seed=seed,
                    numUserBlocks=blocks, numItemBlocks=blocks, userCol="user",
                    itemCol="item", ratingCol="strength").fit(cells)
        users = collect_vectors(model.userFactors, data.n_users, params["factors"])
        items = collect_vectors(model.itemFactors, data.n_items, params["factors"])
    finally:
        cells.unpersist()
    rows = UserRows(matrix, data.vocabulary.user_index, data.vocabulary.item_index,
                    weighting, data.data_end)
    return rows, users, items
