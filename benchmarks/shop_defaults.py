"""Do the ML-100K-tuned defaults of ``ease`` and ``rating_mf`` hold on a second data set?

The synthetic shop (recsdk.data.synthetic.generate_shop, seeded) is unlike MovieLens:
many users with short histories, Zipf popularity within category leaves, a purchase
funnel. Both checks use a per-user random 80/20 split (seed 42) of the shop's events.

* ``ease``: NDCG@10 under the offline protocol (every event an implicit interaction,
  full ranking, training items filtered) for a grid of ``l2`` around the default.
* ``rating_mf``: RMSE of the ``rating`` events' stars for a grid of ``reg`` and
  ``factors`` around the defaults, beside the training mean and scikit-surprise SVD
  (the shop plants no per-user taste in the stars, so little beyond the biases is
  learnable: this checks that the defaults do not overfit sparse ratings).

    PYTHONPATH=. python benchmarks/shop_defaults.py [--events 1000000]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from benchmarks.rating_mf import errors, fit_plugin, plugin_predictions, surprise_svd
from recsdk.data.synthetic import generate_shop
from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.splits import random_split


def ease_grid(events: pd.DataFrame, grid: list[float]) -> str:
    frame = pd.DataFrame({"user": events["user_id"].astype(str),
                          "item": events["item_id"].astype(str),
                          "timestamp": events["timestamp"].astype("int64") / 1e9})
    frame = frame.drop_duplicates(["user", "item"]).reset_index(drop=True)
    split = random_split(frame, 0.2, 42)
    lines = [f"interactions: {len(frame):,}, users {frame['user'].nunique():,}, items "
             f"{frame['item'].nunique():,}", "", "| l2 | ndcg@10 | recall@10 |",
             "|---|---|---|"]
    for l2 in grid:
        run = evaluate_plugin(PluginSpec("ease", "ease", {"l2": l2}), split.train, split.test,
                              k=10)
        lines.append(f"| {l2:g} | {run.main['ndcg']:.4f} | {run.main['recall']:.4f} |")
    return "\n".join(lines)


def rating_grid(events: pd.DataFrame, grid: list[dict[str, float]]) -> str:
    rated = events[events["type"] == "rating"]
    frame = pd.DataFrame({"user": rated["user_id"].astype(str),
                          "item": rated["item_id"].astype(str),
                          "rating": rated["value"].astype(float),
                          "timestamp": rated["timestamp"].astype("int64") / 1e9})
    split = random_split(frame.reset_index(drop=True), 0.2, 42)
    truth = split.test["rating"].to_numpy(float)
    mean = split.train["rating"].mean()
    lines = [f"ratings: {len(frame):,}, users {frame['user'].nunique():,}, items "
             f"{frame['item'].nunique():,}", "", "| model | rmse | mae |", "|---|---|---|"]
    rmse, mae = errors(np.full_like(truth, mean), truth)
    lines.append(f"| training mean | {rmse:.4f} | {mae:.4f} |")
    pred, _ = surprise_svd(split.train, split.test, 42)
    rmse, mae = errors(pred, truth)
    lines.append(f"| surprise SVD | {rmse:.4f} | {mae:.4f} |")
    for params in grid:
        plugin, dataset, _ = fit_plugin(split.train, params, 42)
        pred, _ = plugin_predictions(plugin, dataset, split.test)
        rmse, mae = errors(pred, truth)
        lines.append(f"| rating_mf {params or '(defaults)'} | {rmse:.4f} | {mae:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    events = generate_shop(args.events, seed=0).events
    print(ease_grid(events, [100, 200, 500, 1000, 2000]))
    print()
    print(rating_grid(events, [{}, {"reg": 5.0}, {"reg": 20.0}, {"factors": 10}]))


if __name__ == "__main__":
    main()
