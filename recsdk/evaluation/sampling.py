"""Sampled-negative candidates, for comparisons with papers that rank 1 + N items.

Full ranking is the default because sampled metrics can reorder models (Krichene and
Rendle, 2020); this exists only for when a user asks for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsdk.dataset import InteractionDataset


def sample_candidates(dataset: InteractionDataset, truth: pd.DataFrame, n_negatives: int,
                      seed: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Each truth user's candidate item codes: their test items plus ``n_negatives``.

    Negatives are drawn uniformly, without replacement, from the items the user has
    neither in training nor in the test set, with a generator seeded by ``seed`` and the
    user's position, so the sample does not depend on batch sizes or user order.
    Returns the allowed codes and the number of negatives drawn per user.
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives must be at least 1, got {n_negatives}")
    codes = dataset.item_codes(truth["item"])
    grouped = pd.Series(codes).groupby(truth["user"].to_numpy()).agg(list)
    allowed: dict[str, np.ndarray] = {}
    drawn: dict[str, int] = {}
    for position, (user, test_codes) in enumerate(sorted(grouped.items())):
        relevant = np.unique([c for c in test_codes if c >= 0]).astype(np.int64)
        excluded = np.union1d(relevant, dataset.user_items(user))
        pool = np.setdiff1d(np.arange(dataset.n_items), excluded, assume_unique=True)
        rng = np.random.default_rng([seed, position])
        negatives = rng.choice(pool, size=min(n_negatives, len(pool)), replace=False)
        allowed[user] = np.concatenate([relevant, negatives]).astype(np.int64)
        drawn[user] = len(negatives)
    return allowed, drawn
