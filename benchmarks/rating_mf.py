"""Rating prediction on MovieLens-100K: the ``rating_mf`` plugin next to scikit-surprise's SVD.

Protocol: per-user random 80/20 split of the ratings (recsdk.evaluation.splits.
random_split, seeds 42.. for ``--seeds N``), the same split for every model; RMSE and
MAE over every test rating. A test pair the model cannot score (an item without
training ratings) is predicted as ``mu + b_u`` (clipped), which is what surprise's SVD
does for an unknown item, so both models answer every pair. ``--tune`` first
cross-validates a grid of the plugin's parameters (3 per-user folds of the seed-42
training split only) and prints the table.

    PYTHONPATH=. python benchmarks/rating_mf.py --data ../shared/data/ml-100k [--seeds 5]
        [--tune] [--svdpp] [--param KEY=VALUE ...]

scikit-surprise is a benchmark-only dependency.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from recsdk_plugins.rating_mf import RatingMF

from recsdk.config import DEFAULT_EVENT_WEIGHTS, Settings
from recsdk.dataset import InteractionDataset
from recsdk.evaluation.files import read_interactions
from recsdk.evaluation.splits import kfold_splits, random_split
from recsdk.types import PluginContext

TUNING_GRID: dict[str, list[Any]] = {
    "factors": [10, 20, 50],
    "reg": [5.0, 7.5, 10.0, 15.0, 20.0],
    "iterations": [15],
}


def fit_plugin(train: pd.DataFrame, params: Mapping[str, Any],
               seed: int) -> tuple[RatingMF, InteractionDataset, float]:
    """The plugin fitted through its hooks on ``train``'s ratings, and the fit seconds."""
    events = pd.DataFrame({"user_id": train["user"], "item_id": train["item"],
                           "type": "rating", "timestamp": train["timestamp"],
                           "value": train["rating"]})
    dataset = InteractionDataset.from_frame(events, event_weights={"rating": 1.0})
    plugin = RatingMF.from_config(dict(params), "rating_mf")
    context = PluginContext(settings=Settings(seed=seed, event_weights=DEFAULT_EVENT_WEIGHTS),
                            seed=seed)
    start = time.perf_counter()
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin, dataset, time.perf_counter() - start


def plugin_predictions(plugin: RatingMF, dataset: InteractionDataset,
                       test: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Predictions for every test pair (unknown item: mu + b_u), and the unknown share."""
    model = plugin.model_
    users = dataset.user_codes(test["user"].astype(str))
    items = dataset.item_codes(test["item"].astype(str))
    pred = model.predict(users, items)
    missing = np.isnan(pred)
    bias = np.where(users >= 0, model.user_bias[np.maximum(users, 0)], 0.0)
    pred[missing] = np.clip(model.mu + bias[missing], *model.scale)
    return pred, float(missing.mean())


def surprise_svd(train: pd.DataFrame, test: pd.DataFrame, seed: int,
                 plus_plus: bool = False) -> tuple[np.ndarray, float]:
    """scikit-surprise SVD (or SVD++) with its default parameters; predictions and fit
    seconds."""
    from surprise import SVD, Dataset, Reader, SVDpp

    low, high = float(train["rating"].min()), float(train["rating"].max())
    data = Dataset.load_from_df(train[["user", "item", "rating"]].astype(
        {"user": str, "item": str}), Reader(rating_scale=(low, high)))
    trainset = data.build_full_trainset()
    algo = SVDpp(random_state=seed, cache_ratings=True) if plus_plus else SVD(random_state=seed)
    start = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - start
    pred = np.array([algo.predict(str(u), str(i)).est
                     for u, i in zip(test["user"], test["item"], strict=True)])
    return pred, seconds


def errors(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    diff = pred - truth
    return float(np.sqrt(np.mean(diff ** 2))), float(np.mean(np.abs(diff)))


def tune(frame: pd.DataFrame, folds: int = 3) -> str:
    """Cross-validated RMSE of each grid point on the seed-42 training split (Markdown)."""
    train = random_split(frame, 0.2, 42).train
    splits = kfold_splits(train, folds, 42)
    keys = list(TUNING_GRID)
    lines = ["| " + " | ".join(keys) + " | cv rmse | sd | cv mae |",
             "|" + "---|" * (len(keys) + 3)]
    best: tuple[float, dict[str, Any]] | None = None
    for values in itertools.product(*TUNING_GRID.values()):
        params = dict(zip(keys, values, strict=True))
        rmse, mae = [], []
        for split in splits:
            plugin, dataset, _ = fit_plugin(split.train, params, 42)
            pred, _ = plugin_predictions(plugin, dataset, split.test)
            r, m = errors(pred, split.test["rating"].to_numpy(float))
            rmse.append(r)
            mae.append(m)
        lines.append("| " + " | ".join(str(v) for v in values) +
                     f" | {np.mean(rmse):.4f} | {np.std(rmse, ddof=1):.4f} | {np.mean(mae):.4f} |")
        if best is None or np.mean(rmse) < best[0]:
            best = (float(np.mean(rmse)), params)
    assert best is not None
    lines.append(f"\nbest: {json.dumps(best[1])} (cv rmse {best[0]:.4f})")
    return "\n".join(lines)


def compare(frame: pd.DataFrame, seeds: list[int], params: Mapping[str, Any],
            svdpp: bool = False) -> str:
    """The models on each seed's split: per-seed rows and the mean (Markdown)."""
    lines = ["| seed | model | rmse | mae | fit s | unknown items |", "|---|---|---|---|---|---|"]
    results: dict[str, list[tuple[float, float, float]]] = {"rating_mf": [], "surprise SVD": []}
    if svdpp:
        results["surprise SVD++"] = []
    for seed in seeds:
        split = random_split(frame, 0.2, seed)
        truth = split.test["rating"].to_numpy(float)
        plugin, dataset, seconds = fit_plugin(split.train, params, seed)
        pred, unknown = plugin_predictions(plugin, dataset, split.test)
        rmse, mae = errors(pred, truth)
        results["rating_mf"].append((rmse, mae, seconds))
        lines.append(f"| {seed} | rating_mf | {rmse:.4f} | {mae:.4f} | {seconds:.2f} | "
                     f"{unknown:.2%} |")
        pred, seconds = surprise_svd(split.train, split.test, seed)
        rmse, mae = errors(pred, truth)
        results["surprise SVD"].append((rmse, mae, seconds))
        lines.append(f"| {seed} | surprise SVD | {rmse:.4f} | {mae:.4f} | {seconds:.2f} | |")
        if svdpp:
            pred, seconds = surprise_svd(split.train, split.test, seed, plus_plus=True)
            rmse, mae = errors(pred, truth)
            results["surprise SVD++"].append((rmse, mae, seconds))
            lines.append(f"| {seed} | surprise SVD++ | {rmse:.4f} | {mae:.4f} | "
                         f"{seconds:.2f} | |")
    lines += ["", "| model | rmse mean | sd | mae mean | sd | fit s mean | seeds |",
              "|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        a = np.array(rows)
        lines.append(f"| {name} | {a[:, 0].mean():.4f} | {a[:, 0].std(ddof=1):.4f} | "
                     f"{a[:, 1].mean():.4f} | {a[:, 1].std(ddof=1):.4f} | "
                     f"{a[:, 2].mean():.2f} | {seeds[0]}-{seeds[-1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--svdpp", action="store_true",
                        help="also surprise's SVD++ (slow): what the implicit term gains")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="plugin parameter (JSON value), e.g. factors=20")
    args = parser.parse_args()
    frame = read_interactions(args.data / "ml-100k.inter")
    params = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    print(f"ml-100k ratings: {len(frame)}; per-user random 80/20 split; params {params}")
    if args.tune:
        print(tune(frame))
    print(compare(frame, list(range(42, 42 + args.seeds)), params, args.svdpp))


if __name__ == "__main__":
    main()
