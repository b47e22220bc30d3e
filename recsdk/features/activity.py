"""Behavioural item statistics: popularity and freshness.

They are not content, but rankers and reports want them next to the content features,
computed once from the same interactions. Freshness counts days since the item first
existed: the earlier of its ``created_at`` and its first event, because a catalogue
imported today still holds items people bought last year.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400.0


def item_popularity(interactions: pd.DataFrame, n_items: int) -> np.ndarray:
    """Distinct users with a positive-weight event per item code."""
    if not len(interactions):
        return np.zeros(n_items)
    positive = interactions[interactions["weight"] > 0]
    pairs = positive[["user", "item"]].drop_duplicates()
    return np.bincount(pairs["item"].to_numpy(), minlength=n_items).astype(np.float64)


def first_seen(interactions: pd.DataFrame, n_items: int) -> np.ndarray:
    """UNIX seconds of each item code's first event (NaN when it has none)."""
    out = np.full(n_items, np.nan)
    if len(interactions):
        first = interactions.groupby("item")["timestamp"].min()
        out[first.index.to_numpy()] = first.to_numpy(float)
    return out


def unix_seconds(values: pd.Series) -> np.ndarray:
    """Datetimes (any resolution) or numbers as float UNIX seconds; NaN where missing.

    Not ``astype("int64") / 1e9``: pandas keeps microseconds for parsed datetimes, and
    that division would then be off by a factor of a thousand.
    """
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)


def created_seconds(items: pd.DataFrame) -> np.ndarray:
    """``created_at`` as UNIX seconds (NaN where missing)."""
    if "created_at" not in items:
        return np.full(len(items), np.nan)
    return unix_seconds(items["created_at"])


def freshness_days(created: np.ndarray, first_event: np.ndarray, now: float) -> np.ndarray:
    """Days from the item's first appearance to ``now``; NaN when neither is known."""
    start = np.fmin(created, first_event)
    return np.maximum((now - start) / SECONDS_PER_DAY, 0.0)


def reference_time(timestamps: Sequence[float] | np.ndarray) -> float:
    """The newest event time, so an offline data set is "now" at its end."""
    values = np.asarray(timestamps, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.max()) if len(values) else 0.0
