"""Per-request cost of ``category_popularity`` as the catalogue grows (issue 14).

Trains ``category_popularity`` on a generated shop with 10,000 and 100,000 items
(the synthetic shop's 5x4x3 category tree) and times ``recsdk_score`` for one request
(a user with 20 history items) over every catalogue item, the full-ranking case the
pipeline hands it without a retriever. Side by side in the same run: ``popularity``'s
``recsdk_score`` (a lookup by item code, the bare minimum a scorer costs per item), and
the ratio of the two.

Run (from the repository root):
    PYTHONPATH=.shim:. python benchmarks/category_popularity_request.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import inspect
import time

import numpy as np
from recsdk_plugins.popularity import CategoryPopularity, GlobalPopularity

from recsdk.catalog import Catalog
from recsdk.data.synthetic import generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.pipeline import ModelState
from recsdk.types import RecommendationRequest, UserHistory


def score(plugin: object, request: RecommendationRequest, candidates: object) -> object:
    """``recsdk_score`` with the arguments the implementation takes (as pluggy calls it)."""
    hook = plugin.recsdk_score
    given = {"request": request, "candidates": candidates}
    return hook(**{k: v for k, v in given.items() if k in inspect.signature(hook).parameters})


def best_ms(call, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print("| items | category_popularity (ms) | popularity (ms) | ratio |")
    print("|---|---|---|---|")
    for n_items in (10_000, 100_000):
        shop = generate_shop(200_000, seed=0, n_items=n_items, n_users=5_000)
        events = shop.events.astype({"user_id": str, "item_id": str, "type": str})
        catalog = Catalog.from_frames(shop.items, shop.categories)
        dataset = InteractionDataset.from_frame(events, catalog=catalog)
        state = ModelState.build(catalog, dataset)
        plugins = [CategoryPopularity.from_config({}, "category_popularity"),
                   GlobalPopularity.from_config({}, "popularity")]
        for plugin in plugins:
            plugin.recsdk_fit(dataset=dataset)
        rng = np.random.default_rng(0)
        touched = [str(i) for i in rng.choice(dataset.item_ids, 20)]
        history = UserHistory(item_ids=touched, types=["view"] * 20,
                              timestamps=[0.0] * 20, values=[float("nan")] * 20,
                              session_ids=[None] * 20)
        request = RecommendationRequest(user_id="u", k=10, history=history, catalog=catalog)
        candidates = state.all_candidates
        timings = [best_ms(lambda p=p, r=request, c=candidates: score(p, r, c), args.repeat)
                   for p in plugins]
        print(f"| {n_items:,} | {timings[0]:.2f} | {timings[1]:.2f} | "
              f"{timings[0] / timings[1]:.1f} |")


if __name__ == "__main__":
    main()
