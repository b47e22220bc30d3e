"""How the quick start's pipeline (config/demo.toml) was chosen: served lists on other shops.

Each candidate pipeline is trained and served through ``RecSDK.recommend()``
(:func:`recsdk.evaluation.served.evaluate_served`) on synthetic shops like the one
``make run`` generates (50,000 events) but with other seeds, so the choice is not
fitted to the demo data: typed events with the configured event weights, the shop's
catalogue, a temporal split (the newest 20% of events held out; users without
training events dropped), k = 10, training items excluded.

    PYTHONPATH=. python benchmarks/quickstart_blend.py [--seeds 1 2] [--events 50000]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from recsdk.data.frames import ShopData
from recsdk.data.synthetic import generate_shop
from recsdk.evaluation.catalogue import EvaluationCatalogue
from recsdk.evaluation.served import evaluate_served
from recsdk.evaluation.splits import temporal_split

POPULARITY_ONLY = {"popularity": {"weight": 0.3}, "category_popularity": {"weight": 1.0},
                   "trending": {"weight": 0.3}}
CHOSEN = {"als": {"weight": 1.0}, "category_popularity": {"weight": 0.3},
          "trending": {"weight": 0.1}, "popularity": {"weight": 0.1}}
CANDIDATES: dict[str, dict[str, Any]] = {
    "popularity plugins (the quick start before)": POPULARITY_ONLY,
    "als alone": {"als": {}, "popularity": {"weight": 0.0}},
    "item_knn alone": {"item_knn": {}, "popularity": {"weight": 0.0}},
    "ease alone": {"ease": {}, "popularity": {"weight": 0.0}},
    "als 1, category_popularity .3, trending .1, popularity .1": CHOSEN,
    "als 1, category_popularity .1, trending .05, popularity .05": {
        "als": {"weight": 1.0}, "category_popularity": {"weight": 0.1},
        "trending": {"weight": 0.05}, "popularity": {"weight": 0.05}},
    "chosen + cooccurrence .1 (config/demo.toml)": {**CHOSEN,
                                                    "cooccurrence": {"weight": 0.1}},
    "chosen + cooccurrence .3": {**CHOSEN, "cooccurrence": {"weight": 0.3}},
}


def shop_split(n_events: int, seed: int, n_items: int | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame, EvaluationCatalogue]:
    shop = generate_shop(n_events, n_items=n_items, seed=seed)
    events = shop.events
    frame = pd.DataFrame({"user": events["user_id"].astype(str),
                          "item": events["item_id"].astype(str),
                          "type": events["type"].astype(str),
                          "timestamp": events["timestamp"].astype("int64") // 10**9})
    split = temporal_split(frame, 0.2)
    test = split.test[split.test["user"].isin(set(split.train["user"]))]
    catalogue = EvaluationCatalogue(
        ShopData(categories=shop.categories, items=shop.items),
        pd.DataFrame({"item": shop.items["id"].astype(str),
                      "categories": [[c] for c in shop.items["category_id"].astype(str)]}))
    return split.train, test, catalogue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args(argv)
    scores: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for seed in args.seeds:
        train, test, catalogue = shop_split(args.events, seed)
        for name, plugins in CANDIDATES.items():
            config = {"plugins": plugins, "pipeline": {"fallback": "popularity"}}
            run = evaluate_served(config, train, test, k=10, catalogue=catalogue)
            scores[name].append(run.result.main["ndcg"])
    seeds = ", ".join(map(str, args.seeds))
    print("| pipeline | " + " | ".join(f"ndcg@10 seed {s}" for s in args.seeds)
          + " | mean |")
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for name, values in scores.items():
        cells = " | ".join(f"{v:.4f}" for v in values)
        print(f"| {name} | {cells} | {np.mean(values):.4f} |")
    print(f"\n{args.events:,} events per shop, seeds {seeds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
