"""Small generated data sets for the evaluation tests (never the shared MovieLens copy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def make_interactions(n_users: int = 40, n_items: int = 30, seed: int = 0) -> pd.DataFrame:
    """Users with 3 to 12 distinct items each, popular items likelier (a Zipf-like skew)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    rows = []
    for u in range(n_users):
        count = int(rng.integers(3, 13))
        items = rng.choice(n_items, size=count, replace=False, p=weights / weights.sum())
        for item in items:
            rows.append((f"u{u}", f"i{item}", float(rng.integers(1, 6)),
                         float(rng.integers(1_000_000, 2_000_000))))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def write(path: Path, text: str) -> Path:
    """Write ``text`` (lines joined by the caller) to ``path`` and return it."""
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def interactions() -> pd.DataFrame:
    return make_interactions()
