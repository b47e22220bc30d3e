"""two_tower's candidate retrieval at catalogue scale: faiss HNSW against exact search.

Item vectors come from the model: a ``two_tower`` is trained on a small synthetic shop
(:func:`recsdk.data.synthetic.generate_shop`, TF-IDF text), then a synthetic catalogue
of ``--sizes`` products drawn from the same category tree (titles, descriptions, tags,
prices) is embedded by its item tower from content alone, as products new since
training are. So the vectors have the model's dimension and the clustering its
content gives them (by category, price, words); the queries are the trained users'
vectors. This reuses :mod:`ann_retrieval` (same latency and recall definitions).

For each size: the index's build time, its size and the process's peak memory,
recall@``--n`` of the HNSW answer against the exact top ``--n`` by inner product, and
per-request latency, p50 and p99 over ``--queries`` requests, one at a time on one
thread, as wall time and as the thread's CPU time (on a loaded machine the wall time
includes waiting for a core):

* ``retrieve``: ``EmbeddingRetriever.retrieve`` (search plus exact re-scoring);
* ``request``: the plugin's request path for a user with a fresh event (so the user
  tower runs on the history): ``recsdk_retrieve_candidates`` then ``recsdk_score``
  on the retrieved candidates, which is what the pipeline calls for this plugin.

The trained users are split once (seeded) into ``--validation-queries`` validation
queries and ``--queries`` measurement queries, disjoint: recall is reported on both,
so that a search list chosen on the validation column is judged on queries it was not
chosen on. Rows ``hnsw`` sweep a fixed ``ef_search`` (``--ef``); the row ``rule`` is
the plugin's default search list at that size (``hnsw_ef_search`` grown by
``hnsw_ef_growth``, :func:`recsdk.retrieval.scaled_ef_search`), and ``--before`` adds
the fixed list the plugin used before (512).

``--cache DIR`` keeps each size's item vectors, category paths and built index there
(numpy ``.npy`` and faiss files, with the build's seconds in a JSON file) and reuses
them on the next run: embedding and building a million items take tens of minutes on
a small machine. A cache from another model is refused (the trained users' vectors
are stored with it and compared).

    PYTHONPATH=. python benchmarks/two_tower_ann.py [--sizes 100000 1000000]
        [--n 100] [--queries 300] [--validation-queries 300] [--ef 256 512 1024]
        [--m 48] [--ef-construction 200] [--build-threads 1] [--before 512]
        [--epochs 10] [--dim 128] [--cache DIR] [--no-request]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ann_retrieval import recall
from recsdk_plugins.two_tower import TwoTower, fit_width
from recsdk_plugins.two_tower.features import MAX_DEPTH, ItemArrays
from recsdk_plugins.two_tower.model import embed_items, item_tensors
from recsdk_plugins.two_tower.params import TwoTowerParams
from threadpoolctl import threadpool_limits

from recsdk.catalog import Catalog
from recsdk.config import Settings
from recsdk.data.synthetic import generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.features.activity import unix_seconds
from recsdk.retrieval import EmbeddingRetriever, HnswIndex, scaled_ef_search
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 3.0, "purchase": 5.0, "rating": 0.0,
           "review": 0.0, "return": -5.0}
SEED = 7
CHUNK = 100_000
#: the plugin's index defaults, which the benchmark's flags start from
DEFAULTS = {name: f.load_default for name, f in TwoTowerParams().fields.items()}


def trained(epochs: int, dim: int | None) -> TwoTower:
    """A two_tower fitted on a small synthetic shop (the plugin's defaults but these)."""
    shop = generate_shop(30_000, seed=SEED)
    catalog = Catalog.from_frames(shop.items, shop.categories)
    events = shop.events.astype({"user_id": str, "item_id": str, "type": str})
    events["timestamp"] = unix_seconds(events["timestamp"])
    dataset = InteractionDataset.from_frame(
        events[["user_id", "item_id", "type", "timestamp"]], catalog, WEIGHTS)
    params = {"text_encoder": "tfidf", "max_epochs": epochs, "validation_share": 0.0,
              "index": "none", **({"dim": dim} if dim else {})}
    plugin = TwoTower.from_config(params, "two_tower")
    context = PluginContext(settings=Settings(seed=SEED, device="cpu", event_weights=WEIGHTS),
                            seed=SEED, device_setting="cpu", catalog=catalog)
    plugin.recsdk_configure(context=context)
    plugin.recsdk_fit(dataset=dataset, context=context)
    print(f"trained on {len(events):,} events, {dataset.n_users} users, {dataset.n_items} "
          f"items: {plugin.report_.epochs} epochs, "
          f"{plugin.report_.seconds_per_epoch:.2f} s/epoch", flush=True)
    return plugin


def catalogue_vectors(plugin: TwoTower, size: int, cache: Path | None, requests: bool
                      ) -> tuple[np.ndarray, Catalog | None, ItemArrays | None, float]:
    """Content-only item-tower vectors of ``size`` synthetic products (same tree), the
    catalogue, the products' category paths, and the seconds embedding took (read from
    ``cache`` when it holds them). Without ``requests`` a cached run needs only the
    vectors, and answers no catalogue or paths."""
    dim = plugin.item_vectors_.shape[1]
    files = (cache / f"items_{size}_d{dim}.npy", cache / f"items_{size}_d{dim}.json",
             cache / f"paths_{size}_d{dim}.npy") if cache else None
    if files and not requests and all(f.exists() for f in files[:2]):
        return np.load(files[0]), None, None, json.loads(files[1].read_text())["seconds"]
    shop = generate_shop(1000, seed=SEED, n_items=size)
    catalog = Catalog.from_frames(shop.items, shop.categories)
    if files and all(f.exists() for f in files):
        return (np.load(files[0]), catalog, item_arrays(np.load(files[2])),
                json.loads(files[1].read_text())["seconds"])
    start = time.perf_counter()
    vectors, paths = [], []
    for first in range(0, size, CHUNK):
        arrays = plugin.content_.transform(shop.items.iloc[first:first + CHUNK], catalog)
        tensors = item_tensors(arrays, "cpu")
        vectors.append(embed_items(plugin.net_, tensors,
                                   torch.zeros(len(arrays), dtype=bool), "cpu"))
        paths.append(fit_width(arrays.cat, MAX_DEPTH, plugin.content_.n_nodes))
    cat, seconds = np.concatenate(paths), time.perf_counter() - start
    if files:
        np.save(files[0], np.concatenate(vectors))
        files[1].write_text(json.dumps({"seconds": seconds}))
        np.save(files[2], cat)
    return np.concatenate(vectors), catalog, item_arrays(cat), seconds


def item_arrays(cat: np.ndarray) -> ItemArrays:
    """What the request path reads of the products: category paths, nothing else."""
    empty = np.zeros((len(cat), 1), dtype=np.int64)
    return ItemArrays(cat, empty, empty.astype(np.float32), np.zeros((len(cat), 3),
                                                                     np.float32))


def built_index(vectors: np.ndarray, args: argparse.Namespace, cache: Path | None
                ) -> tuple[HnswIndex, float, float, int]:
    """The HNSW index over ``vectors`` (``--build-threads`` threads), the build's seconds,
    the process's peak RSS in GiB after it and the threads it used (all three from
    ``cache`` when the index is there)."""
    import faiss

    name = f"hnsw_{len(vectors)}_d{vectors.shape[1]}_m{args.m}_efc{args.ef_construction}"
    files = (cache / f"{name}.faiss", cache / f"{name}.json") if cache else None
    if files and all(f.exists() for f in files):
        meta = json.loads(files[1].read_text())
        return (HnswIndex.read(files[0], 512), meta["seconds"], meta["peak_rss_gib"],
                meta["build_threads"])
    faiss.omp_set_num_threads(args.build_threads)
    start = time.perf_counter()
    index = HnswIndex.build(vectors, args.m, args.ef_construction)
    seconds = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if files:
        index.write(files[0])
        files[1].write_text(json.dumps({"seconds": seconds, "peak_rss_gib": peak,
                                        "build_threads": args.build_threads}))
    return index, seconds, peak, args.build_threads


def query_split(plugin: TwoTower, validation: int, measured: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint validation and measurement queries: trained users' vectors, seeded."""
    users = plugin.user_vectors_
    if validation + measured > len(users):
        raise SystemExit(f"--validation-queries {validation} + --queries {measured} is "
                         f"more than the {len(users)} trained users")
    order = rng.permutation(len(users))
    return users[order[:validation]], users[order[validation:validation + measured]]


def check_cache(cache: Path, plugin: TwoTower) -> None:
    """Refuse a cache written for another model (its vectors would not match the
    queries)."""
    cache.mkdir(parents=True, exist_ok=True)
    users = cache / f"users_d{plugin.user_vectors_.shape[1]}.npy"
    if not users.exists():
        np.save(users, plugin.user_vectors_)
    elif not np.array_equal(np.load(users), plugin.user_vectors_):
        raise SystemExit(f"{cache} holds vectors of another model; use another --cache")


def install(plugin: TwoTower, catalog: Catalog, vectors: np.ndarray, arrays: ItemArrays,
            retriever: EmbeddingRetriever) -> None:
    """Serve the big catalogue as if the model had been trained on it."""
    plugin.item_vectors_ = vectors
    plugin.arrays_ = arrays
    plugin._item_index = catalog.index
    plugin._item_ids = np.asarray(catalog.ids, dtype=object)
    plugin.retriever_ = retriever


def latencies(retriever: EmbeddingRetriever, queries: np.ndarray, n: int
              ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """ms per ``retrieve`` call, wall and CPU (this thread), and the answers."""
    wall, cpu, answers = [], [], []
    for q in queries:
        start, start_cpu = time.perf_counter(), time.thread_time()
        got = retriever.retrieve(q, n)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
        answers.append(got.ids)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3, answers


def request_latency(plugin: TwoTower, queries: int, n: int, catalog: Catalog,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ms per request, wall and CPU: retrieve_candidates then score them, for a user the
    model has not seen with five products in their history (the user tower runs)."""
    wall, cpu = [], []
    for _ in range(queries):
        history = [str(i) for i in catalog.ids[rng.choice(len(catalog), 5)]]
        request = RecommendationRequest(
            user_id=None, k=10, catalog=catalog,
            history=UserHistory(history, ["purchase"] * len(history)))
        start, start_cpu = time.perf_counter(), time.thread_time()
        got = plugin.recsdk_retrieve_candidates(request=request, n=n)
        codes = catalog.positions(got.ids)
        plugin.recsdk_score(request=request, candidates=CandidateSet(
            np.asarray(got.ids, dtype=object), codes))
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3


def requests(served: tuple[TwoTower, Catalog | None, np.ndarray, ItemArrays | None],
             retriever: EmbeddingRetriever, args: argparse.Namespace,
             rng: np.random.Generator) -> str:
    """The request path's latency cells through ``retriever`` ("-" without a catalogue,
    ``--no-request``)."""
    plugin, catalog, vectors, arrays = served
    if catalog is None or arrays is None:
        return "- | - | - | -"
    install(plugin, catalog, vectors, arrays, retriever)
    return cells(*request_latency(plugin, args.queries, args.n, catalog, rng))


def cells(wall: np.ndarray, cpu: np.ndarray) -> str:
    """p50 and p99 wall ms, then p50 and p99 CPU ms."""
    return " | ".join(f"{np.percentile(x, q):.2f}" for x in (wall, cpu) for q in (50, 99))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--validation-queries", type=int, default=300)
    parser.add_argument("--ef", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--before", type=int, default=512,
                        help="the fixed ef_search the plugin used before the growth rule")
    parser.add_argument("--target", type=float, default=0.95,
                        help="recall the smallest sufficient --ef is reported for")
    parser.add_argument("--build-threads", type=int, default=1,
                        help="faiss threads while building the index (searches use one)")
    parser.add_argument("--m", type=int, default=DEFAULTS["hnsw_m"])
    parser.add_argument("--ef-construction", type=int,
                        default=DEFAULTS["hnsw_ef_construction"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=None,
                        help="vector length (default: the plugin's default)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder keeping vectors and indexes between runs")
    parser.add_argument("--no-request", action="store_true",
                        help="measure retrieval only, not the plugin's request path")
    args = parser.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    defaults = TwoTowerParams().fields
    ef_search = defaults["hnsw_ef_search"].load_default
    growth = defaults["hnsw_ef_growth"].load_default
    with threadpool_limits(1):
        plugin = trained(args.epochs, args.dim)
        if args.cache:
            check_cache(args.cache, plugin)
        dim = plugin.item_vectors_.shape[1]
        validation, queries = query_split(plugin, args.validation_queries, args.queries,
                                          rng)
        print(f"two_tower item-tower vectors (content only), dim {dim}; HNSW M={args.m}, "
              f"efConstruction={args.ef_construction}; {len(validation)} validation and "
              f"{len(queries)} measurement queries (trained users' vectors, disjoint), "
              f"n={args.n}; rule: hnsw_ef_search={ef_search}, hnsw_ef_growth={growth}; "
              f"faiss {faiss.__version__}, torch {torch.__version__}, python "
              f"{platform.python_version()}, {platform.machine()}, one thread\n")
        print(f"| items | search | ef_search | validation recall@{args.n} | "
              f"recall@{args.n} | retrieve p50 ms | p99 ms | CPU p50 ms | CPU p99 ms | "
              "request p50 ms | p99 ms | CPU p50 ms | CPU p99 ms | build s | index MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for size in args.sizes:
            vectors, catalog, arrays, embedded = catalogue_vectors(
                plugin, size, args.cache, not args.no_request)
            ids = np.asarray(catalog.ids if catalog else np.arange(size).astype(str),
                             dtype=object)
            served = (plugin, catalog, vectors, arrays)
            exact = EmbeddingRetriever(ids, vectors)
            truth_validation = latencies(exact, validation, args.n)[2]
            wall, cpu, truth = latencies(exact, queries, args.n)
            print(f"| {size:,} | exact | - | 1.000 | 1.000 | {cells(wall, cpu)} | "
                  f"{requests(served, exact, args, rng)} | - | - |", flush=True)
            index, build, peak, threads = built_index(vectors, args, args.cache)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "index.faiss")
                index.write(path)
                mib = os.path.getsize(path) / 2**20
            rows = [("hnsw", ef) for ef in args.ef] + [
                ("before", args.before),
                ("rule", scaled_ef_search(ef_search, size, growth))]
            enough = None
            for label, ef in rows:
                index.ef_search = ef
                retriever = EmbeddingRetriever(ids, vectors, index)
                on_validation = recall(latencies(retriever, validation, args.n)[2],
                                       truth_validation)
                if label == "hnsw" and enough is None and on_validation >= args.target:
                    enough = ef
                wall, cpu, found = latencies(retriever, queries, args.n)
                print(f"| {size:,} | {label} | {ef} | {on_validation:.3f} | "
                      f"{recall(found, truth):.3f} | {cells(wall, cpu)} | "
                      f"{requests(served, retriever, args, rng)} | {build:.0f} | "
                      f"{mib:.0f} |", flush=True)
            print(f"({size:,} items: smallest --ef with validation recall@{args.n} >= "
                  f"{args.target}: {enough}; embedding from content {embedded:.0f} s; index "
                  f"build {build:.0f} s on {threads} thread(s); peak RSS after "
                  f"the build {peak:.1f} GiB, at the end "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB)",
                  flush=True)
            del vectors, catalog, arrays, served, index, exact, retriever
            plugin.retriever_ = None
            gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
