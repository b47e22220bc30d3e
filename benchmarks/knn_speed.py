"""Fit time, fit memory, state size and request latency of item_knn and user_knn.

Synthetic implicit data per catalogue size n: n users with 25 distinct items each,
items drawn with Zipf-like popularity (p ~ 1 / rank^0.8), seeded. Each plugin is fitted
with its default parameters through its hooks; ``fit peak MiB`` is tracemalloc's peak
during ``recsdk_fit`` (numpy and scipy buffers); a request is one ``recsdk_score`` for a
known user whose history has one event newer than the training data (so the fold-in
path runs), over every item of the catalogue (full ranking).

    PYTHONPATH=. python benchmarks/knn_speed.py [--sizes 1000,10000,100000]
        [--requests 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

import numpy as np
import pandas as pd
from recsdk_plugins.knn import ItemKNN, UserKNN

from recsdk.config import PluginSettings, Settings
from recsdk.dataset import InteractionDataset
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

ITEMS_PER_USER = 25
WEIGHTS = {"view": 1.0}


def synthetic(n_items: int, seed: int) -> pd.DataFrame:
    """n_items users x 25 items each, Zipf-like item popularity."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p /= p.sum()
    users = np.repeat(np.arange(n_items), ITEMS_PER_USER * 2)
    items = rng.choice(n_items, size=len(users), p=p)
    frame = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates()
    frame = frame.groupby("user_id").head(ITEMS_PER_USER)
    return pd.DataFrame({"user_id": "u" + frame["user_id"].astype(str),
                         "item_id": "i" + frame["item_id"].astype(str), "type": "view",
                         "timestamp": np.arange(len(frame), dtype=np.float64)})


def measure(cls: type, dataset: InteractionDataset, frame: pd.DataFrame, requests: int,
            seed: int) -> dict[str, float]:
    name = cls.default_name
    context = PluginContext(settings=Settings(event_weights=WEIGHTS,
                                              plugins=(PluginSettings(name, name),)))
    plugin = cls.from_config({}, name=name)
    plugin.recsdk_configure(context=context)
    tracemalloc.start()
    start = time.perf_counter()
    plugin.recsdk_fit(dataset=dataset, context=context)
    fit_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    state = plugin.recsdk_save_state()
    candidates = CandidateSet(np.asarray(dataset.item_ids), np.arange(dataset.n_items))
    rng = np.random.default_rng(seed)
    by_user = frame.groupby("user_id")["item_id"].apply(list)
    users = rng.choice(by_user.index.to_numpy(), size=requests)
    newest = float(frame["timestamp"].max())
    latencies = []
    for user in users:
        items = [*by_user[user], str(rng.choice(dataset.item_ids))]
        history = UserHistory(items, ["view"] * len(items),
                              [0.0] * (len(items) - 1) + [newest + 1.0])
        request = RecommendationRequest(user_id=str(user), k=10, history=history)
        start = time.perf_counter()
        plugin.recsdk_score(request=request, candidates=candidates)
        latencies.append(time.perf_counter() - start)
    ms = np.array(latencies) * 1000
    return {"fit_s": fit_s, "peak_mib": peak / 2**20,
            "state_mib": sum(v.nbytes for v in state.values()) / 2**20,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}; "
          f"{ITEMS_PER_USER} items per user, users = items; {args.requests} requests\n")
    print("| plugin | items | users | interactions | fit s | fit peak MiB | state MiB | "
          "request p50 ms | request p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        frame = synthetic(n, args.seed)
        dataset = InteractionDataset.from_frame(frame, event_weights=WEIGHTS)
        for cls in (ItemKNN, UserKNN):
            r = measure(cls, dataset, frame, args.requests, args.seed)
            print(f"| {cls.default_name} | {dataset.n_items:,} | {dataset.n_users:,} | "
                  f"{len(frame):,} | {r['fit_s']:.2f} | {r['peak_mib']:.0f} | "
                  f"{r['state_mib']:.1f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
