"""Do the ML-100K-tuned defaults generalise? als/bpr/lmf on the synthetic shop.

A second data set for the defaults chosen on MovieLens: ``generate_shop`` (planted
category preferences, a view > click > cart > purchase funnel), every event one
implicit interaction (repeats add up), per-user random 80/20 split, full ranking,
training items filtered, NDCG@10. Each plugin runs with its defaults and with
implicit's own defaults (bpr and lmf also with ``refit_users``; bpr also with
``solver = "implicit"`` and that solver's defaults), beside popularity.

    PYTHONPATH=. python benchmarks/factorization_shop.py [--events 200000] [--seed 1]
        [--plugin bpr ...]
"""

from __future__ import annotations

import argparse

import pandas as pd

from recsdk.data.synthetic import generate_shop
from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.splits import random_split

IMPLICIT_DEFAULTS = {
    "als": {"factors": 100, "regularization": 0.01, "alpha": 1.0, "iterations": 15},
    "bpr": {"solver": "implicit", "factors": 100, "learning_rate": 0.01,
            "regularization": 0.01, "iterations": 100},
    "lmf": {"factors": 30, "learning_rate": 1.0, "regularization": 0.6, "iterations": 30},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plugin", action="append", choices=list(IMPLICIT_DEFAULTS),
                        help="only these factorisation plugins (default: all three)")
    args = parser.parse_args(argv)
    shop = generate_shop(args.events, seed=args.seed)
    events = shop.events
    frame = pd.DataFrame({"user": events["user_id"].astype(str),
                          "item": events["item_id"].astype(str)})
    split = random_split(frame, 0.2, args.seed)
    print(f"synthetic shop: {args.events} events, {frame.user.nunique()} users, "
          f"{frame.item.nunique()} items, seed {args.seed}\n")
    print("| plugin | parameters | ndcg@10 | fit s |")
    print("|---|---|---|---|")
    runs = [("popularity", "popularity", {})]
    for name, defaults in IMPLICIT_DEFAULTS.items():
        if args.plugin and name not in args.plugin:
            continue
        runs += [(name, "recsdk defaults", {}), (name, "implicit defaults", defaults)]
        if name == "bpr":  # the default solver is adam; implicit's with its own defaults
            runs.append((name, "solver = implicit", {"solver": "implicit"}))
        if name != "als":
            runs.append((name, "recsdk defaults, refit_users", {"refit_users": True}))
    for name, label, params in runs:
        result = evaluate_plugin(PluginSpec(name, name, params), split.train, split.test,
                                 k=10, seed=args.seed)
        print(f"| {name} | {label} | {result.main['ndcg']:.4f} | "
              f"{result.fit_seconds:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
