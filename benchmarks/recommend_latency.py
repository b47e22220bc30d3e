"""In-process ``RecSDK.recommend()`` latency of `als` without and with candidate retrieval.

For each catalogue size a seeded synthetic shop (say so when quoting): ``--users``
users with about ``--events`` events each (views, carts, purchases); items belong to
one of 50 topics, a user draws 80% of their items from one or two topics (Zipf,
exponent 1.3, over the topic's items) and 20% from the whole catalogue (probability
1 / popularity rank), both over one random popularity order of the items; 5% of
items are out of stock. The catalogue is stored with ``sdk.upsert_items`` in a SQLite
database in a temp dir; `als` (default parameters unless ``--factors`` /
``--iterations``), `popularity` (the fallback, weight ``--popularity-weight``) and
`filters` (the default rerank chain: consumed and unavailable items dropped) are
trained once with ``fit_dataset`` into the registry. Three RecSDK instances then load
that same run, differing only in how `als` serves (so every mode serves the same
factors):

* ``none``: ``index = "none"``, every catalogue item is scored;
* ``exact``: ``index = "exact"``, ``quota = --quota``: the top ``quota`` items by an
  exact inner product are the candidates, only they are scored;
* ``hnsw``: ``index = "hnsw"`` (the faiss index built at training), same quota.

The result cache is off (``[cache] result_ttl_s = 0``). Each user is requested once by
every instance untimed (it reads the user's recent history from SQLite into the
history cache, as a shop's active users have it), then ``sdk.recommend(user, k=10)``
is timed, the three instances interleaved in a random order per user. Users: ``--known``
users served from their stored factors, and ``--foldin`` users who each get 3 new
events after training (tracked with ``sdk.track``), which makes `als` fold them in
per request. numpy and faiss run on ``--threads`` threads (default 1: one request).
recall@10 compares each mode's final list with ``none``'s for the same user.

    PYTHONPATH=. python benchmarks/recommend_latency.py [--sizes 1000 10000 100000]
        [--users 30000] [--events 20] [--known 300] [--foldin 100] [--quota 200]
        [--iterations 15] [--factors 128] [--popularity-weight 0] [--threads 1]
        [--profile hnsw]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from recsdk import RecSDK
from recsdk.dataset import InteractionDataset

MODES = ("none", "exact", "hnsw")
TYPES = np.array(["view", "add_to_cart", "purchase"], dtype=object)
TYPE_P = [0.75, 0.15, 0.10]
TOPICS = 50


def zipf_draw(rng: np.random.Generator, order: np.ndarray, size: int) -> np.ndarray:
    """``size`` draws from ``order`` with probability proportional to 1 / rank."""
    p = 1.0 / np.arange(1, len(order) + 1)
    return order[rng.choice(len(order), size=size, p=p / p.sum())]


def synthetic_shop(n_items: int, n_users: int, events: int, seed: int
                   ) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Catalogue rows and an event frame (seconds timestamps over the last 90 days)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, TOPICS, n_items)
    order = rng.permutation(n_items)  # global popularity order
    by_topic = [order[topic[order] == t] for t in range(TOPICS)]
    lengths = np.maximum(2, rng.poisson(events, n_users))
    # the 20% drawn from the whole catalogue, all at once (one pass over the items)
    global_picks = iter(zipf_draw(rng, order, int(lengths.sum())))
    user_col, item_col = [], []
    for u in range(n_users):
        n = int(lengths[u])
        own = rng.choice(TOPICS, size=rng.integers(1, 3), replace=False)
        local = rng.random(n) < 0.8
        picks = np.empty(n, dtype=np.int64)
        for j, t in zip(np.flatnonzero(local), rng.choice(own, size=int(local.sum())),
                        strict=True):
            pool = by_topic[t]
            picks[j] = pool[min(int(rng.zipf(1.3)) - 1, len(pool) - 1)] if len(pool) \
                else order[0]
        for j in np.flatnonzero(~local):
            picks[j] = next(global_picks)
        user_col.append(np.full(n, u))
        item_col.append(picks)
    users = np.concatenate(user_col)
    items = np.concatenate(item_col)
    now = time.time()
    frame = pd.DataFrame({
        "user_id": [f"u{u}" for u in users],
        "item_id": [f"i{i}" for i in items],
        "type": rng.choice(TYPES, size=len(users), p=TYPE_P),
        "timestamp": now - 86400 * (1 + 89 * rng.random(len(users))),
    })
    stock = np.where(rng.random(n_items) < 0.05, 0, 10)
    rows = [{"id": f"i{i}", "title": f"item {i}", "category_id": f"c{topic[i]}",
             "price": 10.0, "stock": int(stock[i])} for i in range(n_items)]
    return rows, frame


def config(folder: Path, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    als: dict[str, Any] = {"index": mode, "iterations": args.iterations,
                           "factors": args.factors}
    if mode != "none":
        als["quota"] = args.quota
    return {
        "database_url": f"sqlite:///{folder / 'shop.db'}", "device": "cpu", "seed": 42,
        "cache": {"result_ttl_s": 0},
        "pipeline": {"fallback": "popularity", "k": 10},
        "plugins": {"als": als, "popularity": {"weight": args.popularity_weight},
                    "filters": {}},
    }


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def run_size(n_items: int, args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        rows, frame = synthetic_shop(n_items, args.users, args.events, seed=n_items)
        gen = time.perf_counter() - start
        trainer = RecSDK(config(folder, "hnsw", args), environ={})
        start = time.perf_counter()
        trainer.upsert_categories([{"id": f"c{t}", "name": f"topic {t}"}
                                   for t in range(TOPICS)])
        trainer.upsert_items(rows)
        upsert = time.perf_counter() - start
        dataset = InteractionDataset.from_frame(frame, trainer.catalog,
                                                trainer.settings.event_weights)
        start = time.perf_counter()
        import faiss

        serving_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(args.cores)
        with threadpool_limits(None):  # training may use every core
            report = trainer.fit_dataset(dataset, save=True)
        faiss.omp_set_num_threads(serving_threads)
        fit = time.perf_counter() - start
        rng = random.Random(n_items)
        user_ids = sorted(frame["user_id"].unique())
        chosen = rng.sample(user_ids, args.known + args.foldin)
        known, foldin = chosen[:args.known], chosen[args.known:]
        item_ids = [r["id"] for r in rows if r["stock"]]
        for u in foldin:  # events after training: als folds these users in
            trainer.track_many([{"user_id": u, "item_id": rng.choice(item_ids),
                                 "type": rng.choice(["view", "add_to_cart", "purchase"])}
                                for _ in range(3)])
        trainer.close()
        print(f"{n_items:,} items: {report.users:,} users, {report.interactions:,} events; "
              f"data {gen:.1f} s, upsert_items {upsert:.1f} s, fit (als + HNSW + save) "
              f"{fit:.1f} s", flush=True)
        sdks = {m: RecSDK(config(folder, m, args), environ={}) for m in MODES}
        try:
            for m, sdk in sdks.items():
                assert sdk.trained, f"mode {m}: the run did not load"
            users = [(u, "known") for u in known] + [(u, "fold-in") for u in foldin]
            lists: dict[str, dict[str, list[str]]] = {m: {} for m in MODES}
            times: dict[tuple[str, str], list[float]] = {}
            for u, _ in users:  # warm: history into each instance's cache
                for sdk in sdks.values():
                    sdk.recommend(u, k=10)
            profiler = None
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
            for u, group in users:
                order = list(MODES)
                rng.shuffle(order)
                for m in order:
                    if profiler is not None and m == args.profile:
                        profiler.enable()
                    t0 = time.perf_counter()
                    result = sdks[m].recommend(u, k=10)
                    elapsed = (time.perf_counter() - t0) * 1e3
                    if profiler is not None and m == args.profile:
                        profiler.disable()
                    assert not result.degraded, (m, result.failures)
                    times.setdefault((m, group), []).append(elapsed)
                    times.setdefault((m, "all"), []).append(elapsed)
                    lists[m][u] = result.item_ids
            base = {g: percentiles(times[("none", g)]) for g in ("all", "known", "fold-in")}
            for group in ("all", "known", "fold-in"):
                for m in MODES:
                    p50, p99 = percentiles(times[(m, group)])
                    names = [u for u, g in users if group in ("all", g)]
                    rec = np.mean([len(set(lists[m][u]) & set(lists["none"][u]))
                                   / max(1, len(lists["none"][u])) for u in names])
                    label = m if m == "none" else f"{m}, quota {args.quota}"
                    out.append(f"| {n_items:,} | {group} ({len(names)}) | {label} | "
                               f"{p50:.2f} | {p99:.2f} | {p50 / base[group][0]:.2f} | "
                               f"{p99 / base[group][1]:.2f} | {rec:.3f} |")
            if profiler is not None:
                import pstats

                print(f"\ncProfile of mode {args.profile}, {n_items:,} items:")
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        finally:
            for sdk in sdks.values():
                sdk.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--known", type=int, default=300)
    parser.add_argument("--foldin", type=int, default=100)
    parser.add_argument("--quota", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--factors", type=int, default=128)
    parser.add_argument("--popularity-weight", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="threads for training (faiss HNSW build)")
    parser.add_argument("--profile", choices=MODES, default=None,
                        help="cProfile the timed requests of this mode")
    args = parser.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    print(f"synthetic shop: {args.users:,} users x ~{args.events} events; als factors "
          f"{args.factors}, iterations {args.iterations}; popularity weight "
          f"{args.popularity_weight} (fallback); filters on; result cache off; "
          f"{args.threads} thread(s) per request; python {platform.python_version()}, "
          f"faiss {faiss.__version__}, {platform.machine()}\n", flush=True)
    table = []
    with threadpool_limits(args.threads):
        for size in args.sizes:
            table += run_size(size, args)
    print("\n| items | users | mode | p50 ms | p99 ms | p50 / none | p99 / none | "
          "recall@10 vs none |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
