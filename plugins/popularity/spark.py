"""The popularity plugins' state computed with Spark SQL (``recsdk train --engine spark``).

Each function returns what the plugin's ``recsdk_fit`` computes from a local dataset,
array for array: :func:`item_popularity` equals :func:`recsdk_plugins.popularity.item_popularity`
(counts exactly; weight sums up to float rounding order), :func:`trending_scores` the
decayed sums of :class:`~recsdk_plugins.popularity.TrendingPopularity`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recsdk.engines.spark_data import SparkEvents


def item_popularity(data: SparkEvents, count: str, window_days: float | None = None
                    ) -> np.ndarray:
    """Popularity of every item code by ``count`` (users, events or weight), over the
    events of positive weight in the last ``window_days`` before the newest event."""
    from pyspark.sql import functions as F

    events = data.events
    if window_days is not None:
        events = events.where(F.col("timestamp") >= data.data_end - window_days * 86400)
    events = events.where(F.col("weight") > 0)
    if count == "events":
        value = F.count(F.lit(1))
    elif count == "weight":
        value = F.sum(F.col("weight").cast("double"))
    else:
        value = F.countDistinct("user")
    return data.item_vector(events.groupBy("item").agg(value.cast("double").alias("v")), "v")


def trending_scores(data: SparkEvents, half_life_s: float) -> np.ndarray:
    """sum over events e on an item of weight_e * 2 ** (-(newest - t_e) / half_life)."""
    from pyspark.sql import functions as F

    decay = F.pow(F.lit(2.0), -(F.lit(data.data_end) - F.col("timestamp")) / half_life_s)
    scores = data.events.groupBy("item").agg(
        F.sum(F.col("weight").cast("double") * decay).alias("v"))
    return data.item_vector(scores, "v")
