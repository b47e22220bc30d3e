"""Fit time, peak memory and request latency of ``cooccurrence`` on a large catalogue.

Random baskets (sizes 1 + Poisson(``--mean-size`` - 1), items drawn from a Zipf law over
``--items`` items, seeded) become purchase events of one session each; the plugin is
fitted through its hooks and a 3-item cart is scored over the whole catalogue. Prints a
Markdown table. Peak memory is the process's maximum resident set (ru_maxrss) after
the data is built and after the fit, so their difference bounds what the fit added.

    PYTHONPATH=. python benchmarks/cooccurrence_scale.py --items 100000
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from recsdk_plugins.cooccurrence import Cooccurrence

from recsdk.config import DEFAULT_EVENT_WEIGHTS, Settings
from recsdk.dataset import InteractionDataset
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def events(n_items: int, n_baskets: int, mean_size: float, zipf: float,
           seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = 1 + rng.poisson(mean_size - 1, n_baskets)
    weights = 1.0 / np.arange(1, n_items + 1) ** zipf
    items = rng.choice(n_items, size=int(sizes.sum()), p=weights / weights.sum())
    basket = np.repeat(np.arange(n_baskets), sizes)
    # one user per 5 baskets, baskets a day apart: every basket its own session
    return pd.DataFrame({"user_id": (basket // 5).astype(str), "item_id": items.astype(str),
                         "type": "purchase",
                         "timestamp": 1.7e9 + basket % 5 * 86400.0 + np.arange(len(items))})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--baskets", type=int, default=300_000)
    parser.add_argument("--mean-size", type=float, default=4.0)
    parser.add_argument("--zipf", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    frame = events(args.items, args.baskets, args.mean_size, args.zipf, args.seed)
    dataset = InteractionDataset.from_frame(frame, None, DEFAULT_EVENT_WEIGHTS)
    before = peak_mib()
    context = PluginContext(settings=Settings(event_weights=DEFAULT_EVENT_WEIGHTS))
    plugin = Cooccurrence.from_config({})
    plugin.recsdk_configure(context=context)
    start = time.perf_counter()
    plugin.recsdk_fit(dataset=dataset, context=context)
    fit_s = time.perf_counter() - start
    after = peak_mib()
    state = plugin.recsdk_save_state()
    state_mib = sum(v.nbytes for v in state.values()) / 2**20
    candidates = CandidateSet(dataset.item_ids, np.arange(dataset.n_items))
    rng = np.random.default_rng(args.seed)
    latencies = []
    for _ in range(200):
        cart = list(dataset.item_ids[rng.choice(min(1000, dataset.n_items), 3, replace=False)])
        request = RecommendationRequest(user_id=None, k=10, context={"cart": cart})
        t = time.perf_counter()
        plugin.recsdk_score(request=request, candidates=candidates)
        latencies.append(time.perf_counter() - t)
    ms = np.array(latencies) * 1000
    print(f"| items | baskets | events | pairs kept | fit s | peak RSS before / after fit MiB "
          f"| state MiB | cart score p50 / p99 ms |\n|---|---|---|---|---|---|---|---|\n"
          f"| {dataset.n_items} | {args.baskets} | {len(frame)} | "
          f"{plugin.associations_.nnz} | {fit_s:.1f} | {before:.0f} / {after:.0f} | "
          f"{state_mib:.1f} | {np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f} |")


if __name__ == "__main__":
    main()
