"""In-process ``recommend()`` p50/p99 as the catalogue grows, with the demo blend's plugins.

Issue 14 asks for request latency independent of catalogue size: p99 <= 20 ms at
1,000,000 items and p99(1M) / p99(10k) <= 1.5. This benchmark serves config/demo.toml's
plugins (`als` 1.0, `category_popularity` 0.3, `trending` 0.1, `popularity` 0.1,
`cooccurrence` 0.1, and the default `filters` rerank chain; `rating_mf` has weight 0
there, is never called by ``recommend()`` and is not trained here) on seeded synthetic
shops of ``--sizes`` items.

Shop (synthetic, seeded; say so when quoting): ``max(--min-users, items / 5)`` users,
Poisson(``--events``) events each in sessions of 5 (one leaf category per session, a
minute apart; 75% views, 15% carts, 10% purchases) over 90 days; ``items / 200`` leaf
categories (at least 50) under ``leaves / 20`` parents; each user has one or two
favourite leaves; 80% of sessions are in a favourite leaf, 20% anywhere (leaves by
catalogue-wide popularity), items within a leaf Zipf(1.3) by one random popularity
order; 5% of items out of stock. The catalogue goes into SQLite (temp dir), items by
plain chunked INSERTs into the new table; events are given to ``fit_dataset`` as a
frame, and the timed users' own events are also stored (``track_many``, with their
timestamps), so that their recent history is what a live shop would hold. `als` uses
``--factors`` and ``--iterations``, with the
default ``index = "auto"`` (a faiss HNSW from 100,000 items: ``--hnsw-m``,
``--hnsw-ef-construction``, smaller than the defaults so that the 1M build fits the
shared machine).

Instances, all loading the same trained run and interleaved in random order per user:

* ``default``: this tree's defaults (``[pipeline] retrieval = "auto"``: pools from
  100,000 items);
* ``off`` (``--modes``): ``retrieval = "off"``: no pools (only `als`'s HNSW retrieves
  from 100,000 items, as before the pools);
* ``on``: ``retrieval = "on"`` (pools at every size).

Result cache off except for the ``hit`` rows: a ``default`` instance with the cache on
(memory, or Redis with ``--redis-url``), each user asked twice, the second call timed:
what a precomputed top-N in the cache would cost to serve (``--in-trainer``: the
training instance alone is timed, in mode ``default``, without ``hit`` rows; it saves
reading the catalogue and the run again, minutes at 1M items here). Besides wall time, each
request's process CPU time (``time.process_time``, every thread: the plugin workers'
too) is reported: on a shared machine wall time is mostly waiting for a core, CPU time
is what the request itself costs. A request whose plugin overran its 250 ms budget
(waiting for a core) is served degraded and counted, not dropped. Users: ``--known`` served from
stored factors, ``--foldin`` with 3 events after training (fold-in per request). One
numpy / faiss thread. ``--profile``: cProfile of the ``default`` instance's timed
requests at the largest size.

    PYTHONPATH=.shim:. python benchmarks/catalogue_latency.py [--sizes 10000 100000 1000000]
        [--modes default off] [--known 300] [--foldin 100] [--events 15] [--factors 64]
        [--iterations 10] [--profile] [--redis-url redis://127.0.0.1:6379/0]
        [--recall-ef 256 512 1024] [--als-ef-growth G]

Run it against another tree (the code before a change) with ``--modes default`` and
that tree on PYTHONPATH: the modes other than ``default`` need this tree's settings.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from benchmarks.recommend_latency import percentiles
from recsdk import RecSDK
from recsdk.dataset import InteractionDataset

TYPES = np.array(["view", "add_to_cart", "purchase"], dtype=object)
TYPE_P = [0.75, 0.15, 0.10]
SESSION = 5
MODE_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {}, "off": {"retrieval": "off"}, "on": {"retrieval": "on"}}
DEMO_WEIGHTS = {"als": 1.0, "category_popularity": 0.3, "trending": 0.1,
                "popularity": 0.1, "cooccurrence": 0.1}


def synthetic_shop(n_items: int, n_users: int, events: float, seed: int
                   ) -> tuple[pd.DataFrame, pd.DataFrame, int, int]:
    """Items (id, leaf, stock), events (user_id, item_id, type, timestamp), leaves, parents.
    Vectorised: no Python loop over users or items."""
    rng = np.random.default_rng(seed)
    n_leaves = max(50, n_items // 200)
    leaf = rng.integers(0, n_leaves, n_items)
    rank = np.empty(n_items, dtype=np.int64)
    rank[rng.permutation(n_items)] = np.arange(n_items)  # global popularity rank
    by_leaf = np.lexsort((rank, leaf))                   # items by leaf, popular first
    leaf_start = np.concatenate([[0], np.cumsum(np.bincount(leaf, minlength=n_leaves))])
    leaf_size = np.diff(leaf_start)
    sessions = np.maximum(1, rng.poisson(events / SESSION, n_users))
    n_sessions = int(sessions.sum())
    session_user = np.repeat(np.arange(n_users), sessions)
    favourites = rng.integers(0, n_leaves, (n_users, 2))
    n_fav = rng.integers(1, 3, n_users)
    pick = (rng.random(n_sessions) * n_fav[session_user]).astype(np.int64)
    own_leaf = favourites[session_user, pick]
    leaf_pop = 1.0 / np.arange(1, n_leaves + 1)
    any_leaf = rng.choice(n_leaves, n_sessions, p=leaf_pop / leaf_pop.sum())
    session_leaf = np.where(rng.random(n_sessions) < 0.8, own_leaf, any_leaf)
    now = time.time()
    session_time = now - 86400 * (1 + 89 * rng.random(n_sessions))
    n_events = n_sessions * SESSION
    event_session = np.repeat(np.arange(n_sessions), SESSION)
    ev_leaf = session_leaf[event_session]
    within = np.minimum(rng.zipf(1.3, n_events) - 1, leaf_size[ev_leaf] - 1)
    items = by_leaf[leaf_start[ev_leaf] + np.maximum(within, 0)]
    frame = pd.DataFrame({
        "user_id": pd.Categorical.from_codes(session_user[event_session],
                                             [f"u{u}" for u in range(n_users)]),
        "item_id": pd.Categorical.from_codes(items, [f"i{i}" for i in range(n_items)]),
        "type": rng.choice(TYPES, size=n_events, p=TYPE_P),
        "timestamp": session_time[event_session] + 60.0 * (np.arange(n_events) % SESSION),
    })
    frame = frame[leaf_size[ev_leaf] > 0].reset_index(drop=True)
    catalogue = pd.DataFrame({"id": [f"i{i}" for i in range(n_items)],
                              "category_id": [f"c{x}" for x in leaf],
                              "stock": np.where(rng.random(n_items) < 0.05, 0, 10)})
    return catalogue, frame, n_leaves, max(5, n_leaves // 20)


def config(folder: Path, mode: str, args: argparse.Namespace, cache_on: bool = False
           ) -> dict[str, Any]:
    plugins: dict[str, Any] = {name: {"weight": w} for name, w in DEMO_WEIGHTS.items()}
    plugins["als"].update(factors=args.factors, iterations=args.iterations,
                          hnsw_m=args.hnsw_m, hnsw_ef_construction=args.hnsw_ef_construction)
    if args.als_ef_growth is not None:
        plugins["als"]["hnsw_ef_growth"] = args.als_ef_growth
    plugins["trending"]["half_life_hours"] = 72
    plugins["filters"] = {}
    out: dict[str, Any] = {
        "database_url": f"sqlite:///{folder / 'shop.db'}", "device": "cpu", "seed": 42,
        "cache": {"result_ttl_s": 600 if cache_on else 0},
        "pipeline": {"fallback": "popularity", "k": 10, **MODE_SETTINGS[mode]},
        "plugins": plugins,
    }
    if cache_on and args.redis_url:
        out["redis_url"] = args.redis_url
    return out


HOOKS = ("recsdk_extract_features", "recsdk_retrieve_candidates", "recsdk_score",
         "recsdk_rerank")


def time_hooks(sdk: RecSDK) -> dict[str, list[float]]:
    """Wrap every plugin's request hooks of ``sdk`` with a timer (the calls run on the
    isolation workers, which a cProfile of the caller does not see)."""
    spent: dict[str, list[float]] = {}
    pm = sdk.plugins._pm  # a benchmark's instrument: the pluggy manager
    for hook in HOOKS:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            label = f"{impl.plugin_name}.{hook.removeprefix('recsdk_')}"
            times = spent.setdefault(label, [])

            def timed(*a: Any, _f: Any = impl.function, _t: list[float] = times) -> Any:
                t0 = time.perf_counter()
                try:
                    return _f(*a)
                finally:
                    _t.append((time.perf_counter() - t0) * 1e3)
            impl.function = timed
    return spent


def store_shop(sdk: RecSDK, catalogue: pd.DataFrame, n_leaves: int, n_parents: int) -> None:
    """Categories (two levels) through the SDK; items inserted into the new, empty items
    table in chunks (one plain INSERT per chunk: the store's upsert checks and merges row
    by row, 25 minutes for 1M items on the loaded machine), then one catalogue refresh."""
    from recsdk.storage.models import Item

    sdk.upsert_categories([{"id": f"p{p}", "name": f"parent {p}"} for p in range(n_parents)])
    sdk.upsert_categories([{"id": f"c{c}", "name": f"leaf {c}",
                            "parent_id": f"p{c % n_parents}"} for c in range(n_leaves)])
    rows = catalogue.to_dict("records")
    with sdk.store.engine.begin() as conn:
        for start in range(0, len(rows), 50_000):
            conn.execute(Item.__table__.insert(), [
                {"id": r["id"], "title": r["id"], "category_id": r["category_id"],
                 "price": 10.0, "stock": int(r["stock"])} for r in rows[start:start + 50_000]])
    sdk.refresh_catalog()


def hnsw_recall(sdk: RecSDK, users: list[str], n: int, efs: list[int]) -> None:
    """Recall@n of `als`'s HNSW index against exact search, and the search's time, for
    each search list in ``efs``, over the stored factors of ``users`` (users the timed
    requests do not use: a validation set for choosing the list)."""
    als = sdk.plugins._pm.get_plugin("als")  # a benchmark's instrument
    retriever = getattr(als, "retriever_", None)
    if retriever is None or retriever.index is None:
        print("  recall: als built no HNSW index at this size", flush=True)
        return
    from recsdk.retrieval import HnswIndex

    codes = [c for c in (als.rows_.user_code(u) for u in users) if c is not None]
    queries = np.ascontiguousarray(als.user_factors_[codes], dtype=np.float32)
    exact = [set(retriever.exact_search(q, n)[0].tolist()) for q in queries]
    graph = retriever.index
    print(f"  als HNSW recall@{n} against exact search, {len(queries)} validation users; "
          f"graph of {len(graph):,} non-zero item vectors (the default list at this "
          f"size: {graph.effective_ef_search}):", flush=True)
    for ef in efs:
        fixed = HnswIndex(graph.index, ef, 0.0, graph.members)
        spent, hits = [], 0
        for q, truth in zip(queries, exact, strict=True):
            t0 = time.process_time()
            found = fixed.search(q, n)[0][0]
            spent.append((time.process_time() - t0) * 1e3)
            hits += len(truth & set(found.tolist()))
        p50, p99 = percentiles(spent)
        print(f"    ef {ef:5d}: recall {hits / (n * len(queries)):.4f}, CPU ms per search "
              f"p50 {p50:.2f} p99 {p99:.2f}", flush=True)


def run_size(n_items: int, args: argparse.Namespace, profile: bool) -> list[str]:
    out: list[str] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp)
        n_users = max(args.min_users, n_items // 5)
        t0 = time.perf_counter()
        catalogue, frame, n_leaves, n_parents = synthetic_shop(n_items, n_users,
                                                              args.events, seed=n_items)
        gen = time.perf_counter() - t0
        trainer = RecSDK(config(folder, "default", args), environ={})
        t0 = time.perf_counter()
        store_shop(trainer, catalogue, n_leaves, n_parents)
        upsert = time.perf_counter() - t0
        dataset = InteractionDataset.from_frame(frame, trainer.catalog,
                                                trainer.settings.event_weights)
        rng = random.Random(n_items)
        user_ids = sorted(set(frame["user_id"].astype(str).unique()))
        chosen = rng.sample(user_ids, args.known + args.foldin)
        known, foldin = chosen[:args.known], chosen[args.known:]
        mine = frame[frame["user_id"].isin(chosen)]
        trainer.track_many([{"user_id": str(r.user_id), "item_id": str(r.item_id),
                             "type": str(r.type), "timestamp": float(r.timestamp)}
                            for r in mine.itertuples(index=False)])
        import faiss

        faiss.omp_set_num_threads(args.cores)
        t0 = time.perf_counter()
        with threadpool_limits(args.cores):
            report = trainer.fit_dataset(dataset, save=True)
        fit = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)
        in_stock = catalogue.loc[catalogue["stock"] > 0, "id"].tolist()
        for u in foldin:  # events after training: als folds these users in
            trainer.track_many([{"user_id": u, "item_id": rng.choice(in_stock),
                                 "type": rng.choice(["view", "add_to_cart", "purchase"])}
                                for _ in range(3)])
        if args.recall_ef:
            timed = set(chosen)
            others = [u for u in user_ids if u not in timed]
            sample = random.Random(n_items + 1).sample(others, min(args.recall_users,
                                                                   len(others)))
            hnsw_recall(trainer, sample,
                        int(trainer.settings.pipeline["candidate_limit"]), args.recall_ef)
        if not args.in_trainer:
            trainer.close()
        print(f"{n_items:,} items, {n_leaves:,} leaves: {report.users:,} users, "
              f"{report.interactions:,} events; data {gen:.1f} s, catalogue {upsert:.1f} s, "
              f"fit {fit:.1f} s", flush=True)
        t0 = time.perf_counter()
        if args.in_trainer:  # the training process serves its new run itself
            sdks = {"default": trainer}
        else:
            sdks = {m: RecSDK(config(folder, m, args), environ={}) for m in args.modes}
            sdks["hit"] = RecSDK(config(folder, "default", args, cache_on=True), environ={})
        load = (time.perf_counter() - t0) / len(sdks)
        try:
            for m, sdk in sdks.items():
                assert sdk.trained, f"mode {m}: the run did not load"
            users = [(u, "known") for u in known] + [(u, "fold-in") for u in foldin]
            for u, _ in users:  # warm: each user's history into each instance's cache
                for m in args.modes:
                    sdks[m].recommend(u, k=10)
            times: dict[tuple[str, str], list[float]] = {}
            cpus: dict[tuple[str, str], list[float]] = {}
            degraded: dict[tuple[str, str], int] = {}
            lists: dict[str, dict[str, list[str]]] = {m: {} for m in sdks}
            profiler = cProfile.Profile() if profile else None
            hooks = time_hooks(sdks[args.modes[0]]) if profile else {}
            for u, group in users:
                order = list(sdks)
                rng.shuffle(order)
                for m in order:
                    if m == "hit":
                        sdks[m].recommend(u, k=10)  # fills the cache
                    if profiler is not None and m == args.modes[0]:
                        profiler.enable()
                    t0, c0 = time.perf_counter(), time.process_time()
                    result = sdks[m].recommend(u, k=10)
                    elapsed = (time.perf_counter() - t0) * 1e3
                    cpu = (time.process_time() - c0) * 1e3
                    if profiler is not None and m == args.modes[0]:
                        profiler.disable()
                    for g in (group, "all"):
                        degraded[(m, g)] = degraded.get((m, g), 0) + int(result.degraded)
                        times.setdefault((m, g), []).append(elapsed)
                        cpus.setdefault((m, g), []).append(cpu)
                    lists[m][u] = result.item_ids
            base = args.modes[0]
            for group in ("all", "known", "fold-in"):
                for m in sdks:
                    p50, p99 = percentiles(times[(m, group)])
                    c50, c99 = percentiles(cpus[(m, group)])
                    names = [u for u, g in users if group in ("all", g)]
                    same = np.mean([len(set(lists[m][u]) & set(lists[base][u]))
                                    / max(1, len(lists[base][u])) for u in names])
                    out.append(f"| {n_items:,} | {group} ({len(names)}) | {m} | {p50:.2f} | "
                               f"{p99:.2f} | {c50:.2f} | {c99:.2f} | {same:.3f} | "
                               f"{degraded[(m, group)]} |")
            print(f"  load per instance {load:.1f} s", flush=True)
            if profiler is not None:
                buf = io.StringIO()
                stats = pstats.Stats(profiler, stream=buf)
                stats.sort_stats("tottime").print_stats(25)
                print(f"\nplugin hooks, mode {args.modes[0]}, {n_items:,} items "
                      f"(on the isolation workers; ms):", flush=True)
                for label, ms in sorted(hooks.items(), key=lambda kv: -sum(kv[1])):
                    if ms:
                        p50, p99 = percentiles(ms)
                        print(f"  {label:42s} calls {len(ms):4d}  mean {np.mean(ms):6.2f}  "
                              f"p50 {p50:6.2f}  p99 {p99:6.2f}")
                print(f"\ncProfile of the calling thread, mode {args.modes[0]}, {n_items:,} "
                      f"items, {len(users)} requests (tottime):\n{buf.getvalue()}", flush=True)
        finally:
            for sdk in sdks.values():
                sdk.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--modes", nargs="+", choices=list(MODE_SETTINGS),
                        default=["default", "off"])
    parser.add_argument("--min-users", type=int, default=20_000)
    parser.add_argument("--events", type=float, default=15.0)
    parser.add_argument("--known", type=int, default=300)
    parser.add_argument("--foldin", type=int, default=100)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--hnsw-ef-construction", type=int, default=80)
    parser.add_argument("--als-ef-growth", type=float, default=None,
                        help="als's hnsw_ef_growth (default: the plugin's)")
    parser.add_argument("--recall-ef", type=int, nargs="*", default=[],
                        help="after training, als's HNSW recall against exact search at "
                        "these search lists, on users the timed requests do not use")
    parser.add_argument("--recall-users", type=int, default=500)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--tmp", default=None, help="folder for the temporary SQLite shop")
    parser.add_argument("--in-trainer", action="store_true",
                        help="time the training instance itself (mode default only, no "
                        "hit rows): saves loading the catalogue and the run again")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the default instance at the largest size")
    args = parser.parse_args(argv)
    if args.in_trainer:
        args.modes = ["default"]
    import faiss

    print(f"demo blend {DEMO_WEIGHTS} + filters; als factors {args.factors}, iterations "
          f"{args.iterations}, hnsw m {args.hnsw_m} ef_construction "
          f"{args.hnsw_ef_construction}; one thread per request; python "
          f"{platform.python_version()}, faiss {faiss.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} cores (shared)\n", flush=True)
    table = []
    header = (f"| items | users | mode | p50 ms | p99 ms | CPU p50 ms | CPU p99 ms | "
              f"share of {args.modes[0]}'s top 10 | degraded |"
              "\n|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for size in args.sizes:
            rows = run_size(size, args, args.profile and size == max(args.sizes))
            print(header + "\n" + "\n".join(rows) + "\n", flush=True)  # as each size ends
            table += rows
    print(f"\nall sizes:\n{header}\n" + "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
