"""The availability filters' training state with Spark SQL: who consumed what."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from recsdk.engines.spark_data import SparkEvents


def consumed_matrix(data: SparkEvents, types: Sequence[str] | None) -> sp.csr_matrix:
    """Users x items, 1 where the user had an event of ``types`` (None: any) on the
    item: the matrix :meth:`AvailabilityFilters.recsdk_fit` builds."""
    from pyspark.sql import functions as F

    events = data.events
    if types is not None:
        events = events.where(F.col("type").isin(list(types)))
    consumed = data.csr(events.select("user", "item").distinct(), dtype=np.int8)
    return consumed
