"""Do the knn defaults tuned on ML-100K hold on other data? NDCG@10 on synthetic shops.

Shops from :func:`recsdk.data.synthetic.generate_shop` (seeded); every event is an
implicit interaction with timestamp; per-user random 80/20 split of the distinct
(user, item) pairs; full ranking, training items filtered out, k = 10 (the ML-100K
protocol of docs/benchmarks.md on other data). Each row is a parameter set.

    PYTHONPATH=. python benchmarks/knn_shop.py [--events 60000] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from recsdk.data.synthetic import generate_shop
from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.splits import random_split

PLAIN = {"similarity": "cosine", "alpha": 0.5, "shrink": 0.0, "neighbours": 100,
         "weighting": "none"}
SPECS = [
    PluginSpec("item_knn (defaults)", "item_knn"),
    PluginSpec("item_knn (plain cosine, 100)", "item_knn", PLAIN),
    PluginSpec("user_knn (defaults)", "user_knn"),
    PluginSpec("user_knn (plain cosine, 100)", "user_knn", PLAIN),
    PluginSpec("popularity", "popularity"),
]


def interactions(n_events: int, seed: int) -> pd.DataFrame:
    events = generate_shop(n_events, seed=seed).events
    frame = pd.DataFrame({"user": events["user_id"].astype(str),
                          "item": events["item_id"].astype(str),
                          "timestamp": pd.to_datetime(events["timestamp"]).astype("int64")
                          / 1e9})
    return frame.sort_values("timestamp").drop_duplicates(["user", "item"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[float]] = {spec.label: [] for spec in SPECS}
    for seed in seeds:
        frame = interactions(args.events, seed)
        split = random_split(frame, 0.2, seed)
        for spec in SPECS:
            run = evaluate_plugin(spec, split.train, split.test, k=10, seed=seed)
            results[spec.label].append(run.main["ndcg"])
    print(f"synthetic shops: {args.events:,} events each, seeds {args.seeds}; "
          f"{len(frame):,} distinct user-item pairs in the last\n")
    print("| run | ndcg@10 mean | sd |")
    print("|---|---|---|")
    for label, values in results.items():
        v = np.array(values)
        print(f"| {label} | {v.mean():.4f} | {v.std(ddof=1) if len(v) > 1 else 0:.4f} |")


if __name__ == "__main__":
    main()
