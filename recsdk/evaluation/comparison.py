"""Compare plugins on one train/test split: fit, recommend, score, time each of them.

The command line, the benchmark scripts and the reports all take their rows from here,
so a table in the docs and a table on a user's screen are computed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsdk.errors import ValidationFailed
from recsdk.evaluation.evaluator import EvaluationInput, evaluation_input
from recsdk.evaluation.offline import FittedPlugin, PluginSpec, catalog_from_items, implicit_dataset
from recsdk.evaluation.sampling import sample_candidates


@dataclass(frozen=True)
class RunResult:
    """One row of a comparison: metrics at each k, timings, what was recommended."""

    label: str
    metrics: Mapping[int, Mapping[str, float | None]]
    k: int
    plugin: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    fit_seconds: float | None = None
    score_seconds: float | None = None
    recommended_popularity: np.ndarray = field(default_factory=lambda: np.array([]))
    recommendations: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def main(self) -> Mapping[str, float | None]:
        """The metrics at the comparison's main ``k``."""
        return self.metrics[self.k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "plugin": self.plugin, "params": dict(self.params),
            "k": self.k, "fit_seconds": self.fit_seconds, "score_seconds": self.score_seconds,
            "metrics": dict(self.main),
            "metrics_at_k": {str(k): dict(v) for k, v in sorted(self.metrics.items())},
        }


def held_out_truth(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Test (user, item) pairs that are not training pairs, once each.

    Training items are filtered from every list, so a test pair that repeats a training
    pair could never be hit; keeping it would only lower every plugin's score alike.
    """
    pairs = test[["user", "item"]].drop_duplicates()
    trained = pd.MultiIndex.from_frame(train[["user", "item"]])
    fresh = pairs[~pd.MultiIndex.from_frame(pairs).isin(trained)].reset_index(drop=True)
    if len(fresh) == 0:
        raise ValidationFailed({"rows": ["empty test set: every test pair is also a training "
                                         "pair (or the test set has no rows)"]},
                               test.attrs.get("source", "test"))
    return fresh


def _results_by_k(data: EvaluationInput, ks: Iterable[int]) -> dict[int, dict[str, float | None]]:
    return {k: dict(data.metrics_at(k)) for k in sorted(set(ks))}


def evaluate_recommendations(
    label: str, recommendations: pd.DataFrame, truth: pd.DataFrame, k: int = 10,
    ks: Sequence[int] = (), **inputs: Any,
) -> RunResult:
    """Score a recommendation frame made elsewhere (see :func:`evaluation_input`)."""
    data = evaluation_input(recommendations, truth, **inputs)
    return RunResult(label, _results_by_k(data, [k, *ks]), k,
                     recommended_popularity=data.recommended_popularity(k))


def evaluate_plugin(
    spec: PluginSpec,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    ks: Sequence[int] = (),
    items: pd.DataFrame | None = None,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    negatives: int | None = None,
    seed: int = 42,
    progress: bool = False,
    extra_plugins: Mapping[str, type] | None = None,
    keep_recommendations: bool = False,
    device: str = "auto",
) -> RunResult:
    """Fit ``spec`` on ``train``, recommend for every test user and score the lists.

    Full ranking over the training vocabulary (and the ``items`` catalogue, when given),
    training items filtered; with ``negatives`` each user ranks their test items
    among that many sampled items instead. ``keep_recommendations`` keeps the top-k
    lists (``user,item,rank,score``) on the result. ``device``: where deep plugins
    train and score (``auto``: CUDA when present).
    """
    truth = held_out_truth(train, test)
    catalog = catalog_from_items(items) if items is not None else None
    dataset = implicit_dataset(train, catalog)
    depth = max([k, *ks])
    users = sorted(truth["user"].unique())
    allowed = drawn = None
    if negatives is not None:
        allowed, drawn = sample_candidates(dataset, truth, negatives, seed)
    with FittedPlugin(spec, dataset, seed=seed, device=device,
                      extra_plugins=extra_plugins) as fitted:
        start = time.perf_counter()
        top = fitted.top_k(users, depth, allowed=allowed, progress=progress)
        score_seconds = time.perf_counter() - start
    recommendations = top.to_frame()
    data = evaluation_input(recommendations, truth, train=train, items=items,
                            embeddings=embeddings, n_negative=drawn)
    return RunResult(spec.label, _results_by_k(data, [k, *ks]), k, spec.plugin,
                     dict(spec.params), fitted.fit_seconds, score_seconds,
                     data.recommended_popularity(k),
                     recommendations[recommendations["rank"] <= k].reset_index(drop=True)
                     if keep_recommendations else None)


def compare_plugins(specs: Sequence[PluginSpec], train: pd.DataFrame, test: pd.DataFrame,
                    progress: bool = False, **options: Any) -> list[RunResult]:
    """One :func:`evaluate_plugin` row per spec, in order (see its options)."""
    labels = [s.label for s in specs]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ValueError(f"plugin label(s) {repeated} given twice; name each run "
                         "LABEL=PLUGIN to compare one plugin with different parameters")
    return [evaluate_plugin(spec, train, test, progress=progress, **options)
            for spec in tqdm(specs, desc="plugins", unit="plugin",
                             disable=None if progress and len(specs) > 1 else True)]
