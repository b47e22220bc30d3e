"""Served NDCG@10 of the demo blend with candidate pools on, against every item scored.

The pools (``[pipeline] retrieval``) bound what a request scores; this measures what
that costs in list quality, through ``RecSDK.recommend()`` itself
(:func:`recsdk.evaluation.served.evaluate_served`), on synthetic shops
(:func:`recsdk.data.synthetic.generate_shop`, ``--events`` events over ``--items``
items, typed events, the shop's catalogue; seeds ``--seeds``). Protocol as in
benchmarks/quickstart_blend.py: a temporal split holds out the newest 20% of events
(users without training events dropped), k = 10, training items excluded.

The pool size is chosen on a validation split, never on the test part: the training
part is split again (its newest 20% held out), each ``--sizes`` value is served there,
and the smallest size whose mean validation NDCG@10 is within ``--tolerance``
(relative) of scoring every item is kept; only then is the test part served, once
with pools off and once with the chosen size. Every retriever gets the same size:
the pool retrievers through ``[pipeline] pool_size``, `als` through its ``quota`` with
``index = "exact"`` (what its HNSW index gives from 100,000 items, without building one).

    PYTHONPATH=.shim:. python benchmarks/pool_quality.py [--seeds 1 2] [--events 50000]
        [--items 5000] [--sizes 50 100 200 400] [--tolerance 0.01]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.quickstart_blend import shop_split
from recsdk.evaluation.catalogue import EvaluationCatalogue
from recsdk.evaluation.served import evaluate_served
from recsdk.evaluation.splits import temporal_split

#: config/demo.toml's blend (rating_mf has weight 0 there and is left out)
DEMO = {"als": {"weight": 1.0}, "category_popularity": {"weight": 0.3},
        "trending": {"weight": 0.1, "half_life_hours": 72},
        "popularity": {"weight": 0.1}, "cooccurrence": {"weight": 0.1}}


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The newest 20% held out; test users without training events dropped."""
    parts = temporal_split(frame, 0.2)
    return parts.train, parts.test[parts.test["user"].isin(set(parts.train["user"]))]


def config(size: int | None) -> dict[str, Any]:
    if size is None:
        return {"plugins": DEMO, "pipeline": {"fallback": "popularity", "retrieval": "off"}}
    plugins = {**DEMO, "als": {**DEMO["als"], "index": "exact", "quota": size}}
    return {"plugins": plugins,
            "pipeline": {"fallback": "popularity", "retrieval": "on", "pool_size": size}}


def ndcg(cfg: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame,
         catalogue: EvaluationCatalogue) -> float:
    return float(evaluate_served(cfg, train, test, k=10, catalogue=catalogue)
                 .result.main["ndcg"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args(argv)
    shops = {s: shop_split(args.events, s, args.items) for s in args.seeds}
    outer = {s: (train, test) for s, (train, test, _) in shops.items()}
    validation: dict[int | None, list[float]] = {}
    for size in [None, *sorted(args.sizes)]:
        for s in args.seeds:
            inner_train, inner_test = split(outer[s][0])
            validation.setdefault(size, []).append(
                ndcg(config(size), inner_train, inner_test, shops[s][2]))
        print(f"validation, pool {size or 'off'}: "
              + ", ".join(f"{v:.4f}" for v in validation[size]), flush=True)
    base = float(np.mean(validation[None]))
    chosen = next((z for z in sorted(args.sizes)
                   if np.mean(validation[z]) >= base * (1 - args.tolerance)),
                  max(args.sizes))
    test = {label: [ndcg(config(z), *outer[s], shops[s][2]) for s in args.seeds]
            for label, z in (("off", None), (f"pool {chosen}", chosen))}
    print(f"\n{args.events:,} events, {args.items:,} items per shop; seeds "
          f"{', '.join(map(str, args.seeds))}; chosen on validation: pool {chosen}\n")
    print("| split | pools | " + " | ".join(f"ndcg@10 seed {s}" for s in args.seeds)
          + " | mean | relative to off |")
    print("|---|---|" + "---|" * (len(args.seeds) + 2))
    for size, values in validation.items():
        mean = float(np.mean(values))
        print(f"| validation | {size or 'off'} | " + " | ".join(f"{v:.4f}" for v in values)
              + f" | {mean:.4f} | {mean / base - 1:+.2%} |")
    test_base = float(np.mean(test["off"]))
    for label, values in test.items():
        mean = float(np.mean(values))
        print(f"| test | {label.removeprefix('pool ')} | "
              + " | ".join(f"{v:.4f}" for v in values)
              + f" | {mean:.4f} | {mean / test_base - 1:+.2%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
