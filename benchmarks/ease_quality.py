"""EASE on MovieLens-100K: what ``max_items`` restriction costs, which similarity to serve,
and the request latency.

1. Restriction: the ML-100K protocol (per-user random 80/20, full ranking, training
   items filtered, k = 10; benchmarks/evaluate_ml100k.py) with ``max_items`` below the
   catalogue, so the model keeps only the most used items (the others score NaN and
   are never recommended), against the full model, seeds 42.. (``--seeds``).
2. Similar items: for every test user, the query is their latest training item; items
   are ranked by each candidate similarity (training items and the query removed) and
   NDCG@10 is taken against the user's test items (binary relevance): a proxy for "more
   like this" that rewards what users went on to choose. Candidates: row j of B (what
   the plugin serves: the scores of a one-item history), column j of B, and cosine
   between rows or between columns of B.
3. Latency: ``recsdk_score`` of one request over the whole catalogue (known user with
   a newer event folded in), median and 95th percentile over the test users.

    PYTHONPATH=. python benchmarks/ease_quality.py --data ../shared/data/ml-100k [--seeds 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from recsdk_plugins.ease import EASE

from recsdk.config import Settings
from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.files import read_interactions, read_items
from recsdk.evaluation.offline import IMPLICIT_EVENT, PluginSpec, implicit_dataset
from recsdk.evaluation.splits import random_split
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

K = 10


def restriction(frame: pd.DataFrame, items: pd.DataFrame, seeds: list[int],
                limits: list[int | None]) -> str:
    lines = [f"| max_items | ndcg@{K} mean | sd | recall@{K} | coverage@{K} | test interactions "
             "on kept items |", "|---|---|---|---|---|---|"]
    for limit in limits:
        params = {} if limit is None else {"max_items": limit}
        ndcg, recall, coverage, kept = [], [], [], []
        for seed in seeds:
            split = random_split(frame, 0.2, seed)
            run = evaluate_plugin(PluginSpec("ease", "ease", params), split.train, split.test,
                                  k=K, items=items, seed=seed)
            ndcg.append(run.main["ndcg"])
            recall.append(run.main["recall"])
            coverage.append(run.main["coverage"])
            counts = split.train.groupby("item")["user"].nunique()
            top = set(counts.sort_values(ascending=False, kind="stable").index[:limit]) \
                if limit is not None else set(counts.index)
            kept.append(split.test["item"].isin(top).mean())
        lines.append(f"| {limit if limit is not None else 'none (full)'} | "
                     f"{np.mean(ndcg):.4f} | {np.std(ndcg, ddof=1):.4f} | "
                     f"{np.mean(recall):.4f} | {np.mean(coverage):.4f} | {np.mean(kept):.1%} |")
    return "\n".join(lines)


def ndcg_at_k(ranked: np.ndarray, relevant: set[int]) -> float:
    gains = np.array([1.0 if c in relevant else 0.0 for c in ranked[:K]])
    ideal = np.sum(1.0 / np.log2(np.arange(2, min(len(relevant), K) + 2)))
    return float(np.sum(gains / np.log2(np.arange(2, len(gains) + 2))) / ideal)


def cosine(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1)
    norms[norms == 0] = 1.0
    unit = m / norms[:, None]
    return unit @ unit.T


def fitted(train: pd.DataFrame) -> tuple[EASE, object]:
    dataset = implicit_dataset(train)
    plugin = EASE.from_config({}, "ease")
    context = PluginContext(settings=Settings(event_weights={IMPLICIT_EVENT: 1.0}))
    plugin.recsdk_configure(context=context)
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin, dataset


def similar(frame: pd.DataFrame, seeds: list[int]) -> str:
    kinds = ("row of B (served)", "column of B", "cosine of B rows", "cosine of B columns")
    results: dict[str, list[float]] = {k: [] for k in kinds}
    for seed in seeds:
        split = random_split(frame, 0.2, seed)
        plugin, dataset = fitted(split.train)
        full = np.zeros((dataset.n_items, dataset.n_items))
        full[np.ix_(plugin.items_, plugin.items_)] = plugin.b_
        matrices = dict(zip(kinds, (full, full.T, cosine(full), cosine(full.T)), strict=True))
        train = split.train.assign(u=dataset.user_codes(split.train["user"].astype(str)),
                                   i=dataset.item_codes(split.train["item"].astype(str)))
        latest = train.sort_values("timestamp", kind="stable").groupby("u")["i"].last()
        seen = train.groupby("u")["i"].apply(set)
        test = split.test.assign(u=dataset.user_codes(split.test["user"].astype(str)),
                                 i=dataset.item_codes(split.test["item"].astype(str)))
        truth = test[test["i"] >= 0].groupby("u")["i"].apply(set)
        for kind, m in matrices.items():
            scores = []
            for user, relevant in truth.items():
                if user not in latest:
                    continue
                row = m[latest[user]].copy()
                row[list(seen[user])] = -np.inf
                ranked = np.argsort(-row, kind="stable")
                scores.append(ndcg_at_k(ranked, relevant))
            results[kind].append(float(np.mean(scores)))
    lines = [f"| similarity | ndcg@{K} mean | sd | seeds |", "|---|---|---|---|"]
    for kind, values in results.items():
        lines.append(f"| {kind} | {np.mean(values):.4f} | {np.std(values, ddof=1):.4f} | "
                     f"{seeds[0]}-{seeds[-1]} |")
    return "\n".join(lines)


def latency(frame: pd.DataFrame) -> str:
    split = random_split(frame, 0.2, 42)
    plugin, dataset = fitted(split.train)
    candidates = CandidateSet(dataset.item_ids, np.arange(dataset.n_items))
    newest = float(split.train["timestamp"].max())
    times = []
    for user, item in zip(split.test["user"].astype(str), split.test["item"].astype(str),
                          strict=True):
        history = UserHistory([item], [IMPLICIT_EVENT], [newest + 1.0])
        request = RecommendationRequest(user, k=K, history=history)
        start = time.perf_counter()
        plugin.recsdk_score(request=request, candidates=candidates)
        times.append(time.perf_counter() - start)
        if len(times) == 1000:
            break
    ms = np.array(times) * 1000
    return (f"recsdk_score, {dataset.n_items} candidates, {len(ms)} requests: median "
            f"{np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    frame = read_interactions(args.data / "ml-100k.inter")
    items = read_items(args.data / "ml-100k.item", "class")
    seeds = list(range(42, 42 + args.seeds))
    print(restriction(frame, items, seeds, [250, 500, 1000, None]))
    print()
    print(similar(frame, seeds))
    print()
    print(latency(frame))


if __name__ == "__main__":
    main()
