"""Choose a plugin's parameters by cross-validation: grid or random search.

Candidates come from scikit-learn's ``ParameterGrid`` and ``ParameterSampler`` (lists,
or scipy.stats distributions for random search); every candidate is scored on the same
folds, so differences come from the parameters and not from the split.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.evaluator import LOWER_IS_BETTER, METRICS
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.splits import Split, kfold_splits


@dataclass(frozen=True)
class SearchResult:
    """Every candidate's mean and spread over the folds, and the best one."""

    plugin: str
    metric: str
    k: int
    table: pd.DataFrame
    best_params: dict[str, Any]
    best_score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin, "metric": self.metric, "k": self.k,
            "best_params": self.best_params, "best_score": self.best_score,
            "candidates": [
                {"params": row.params, "mean": row.mean, "std": row.std,
                 "folds": [float(x) for x in row.folds]}
                for row in self.table.itertuples()
            ],
        }


def grid_candidates(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the listed values."""
    from sklearn.model_selection import ParameterGrid  # slow import: only when tuning

    return list(ParameterGrid(dict(grid))) if grid else [{}]


def random_candidates(space: Mapping[str, Any], n_iter: int, seed: int) -> list[dict[str, Any]]:
    """``n_iter`` draws from lists (uniform choice) or scipy.stats distributions."""
    if n_iter < 1:
        raise ValueError(f"n_iter must be at least 1, got {n_iter}")
    if not space:
        return [{}]
    from sklearn.model_selection import ParameterSampler

    draws = ParameterSampler(dict(space), n_iter=n_iter, random_state=seed)
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in draw.items()}
            for draw in draws]


def cross_validate(spec: PluginSpec, folds: Sequence[Split], metric: str = "ndcg",
                   k: int = 10, seed: int = 42, **options: Any) -> np.ndarray:
    """``metric`` at ``k`` of ``spec`` on each fold (see ``evaluate_plugin`` for options)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    scores = []
    for split in folds:
        result = evaluate_plugin(spec, split.train, split.test, k=k, seed=seed, **options)
        value = result.main[metric]
        scores.append(np.nan if value is None else float(value))
    return np.array(scores)


def search(
    frame: pd.DataFrame,
    plugin: str,
    candidates: Iterable[Mapping[str, Any]],
    *,
    folds: int | Sequence[Split] = 5,
    metric: str = "ndcg",
    k: int = 10,
    seed: int = 42,
    progress: bool = False,
    **options: Any,
) -> SearchResult:
    """Cross-validate each candidate on the same ``folds`` and report the best mean.

    ``folds`` is a number (per-user k-fold of ``frame`` with ``seed``) or ready splits.
    Ties keep the earlier candidate.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    splits = kfold_splits(frame, folds, seed) if isinstance(folds, int) else list(folds)
    candidates = [dict(c) for c in candidates]
    rows = []
    for params in tqdm(candidates, desc=f"tuning {plugin}", unit="candidate",
                       disable=None if progress else True):
        spec = PluginSpec(plugin, plugin, params)
        scores = cross_validate(spec, splits, metric, k, seed, **options)
        defined = scores[~np.isnan(scores)]
        rows.append({"params": params,
                     "mean": float(defined.mean()) if len(defined) else np.nan,
                     "std": float(defined.std()) if len(defined) else np.nan,
                     "folds": scores})
    table = pd.DataFrame(rows)
    means = table["mean"].to_numpy()
    if np.isnan(means).all():
        raise ValueError(f"metric {metric!r} could not be computed on any fold (diversity "
                         "needs item categories or embeddings)")
    best = int(np.nanargmin(means) if metric in LOWER_IS_BETTER else np.nanargmax(means))
    return SearchResult(plugin, metric, k, table, dict(candidates[best]), float(means[best]))
