"""two_tower's candidate retrieval at catalogue scale: faiss HNSW against exact search.

Item vectors come from the model: a ``two_tower`` is trained on a small synthetic shop
(:func:`recsdk.data.synthetic.generate_shop`, TF-IDF text), then a synthetic catalogue
of ``--sizes`` products drawn from the same category tree (titles, descriptions, tags,
prices) is embedded by its item tower from content alone, as products new since
training are. So the vectors have the model's dimension and the clustering its
content gives them (by category, price, words); the queries are the trained users'
vectors. This reuses :mod:`ann_retrieval` (same latency and recall definitions).

For each size: the index's build time and size, recall@``--n`` of the HNSW answer
against the exact top ``--n`` by inner product, and per-request latency, p50 and p99
over ``--queries`` requests, one at a time on one thread, as wall time and as the
thread's CPU time (on a loaded machine the wall time includes waiting for a core):

* ``retrieve``: ``EmbeddingRetriever.retrieve`` (search plus exact re-scoring);
* ``request``: the plugin's request path for a user with a fresh event (so the user
  tower runs on the history): ``recsdk_retrieve_candidates`` then ``recsdk_score``
  on the retrieved candidates, which is what the pipeline calls for this plugin.

    PYTHONPATH=. python benchmarks/two_tower_ann.py [--sizes 100000 1000000]
        [--n 100] [--queries 300] [--ef 256 512 1024] [--m 32] [--ef-construction 200]
        [--build-threads 1]
        [--epochs 10] [--dim 64]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import tempfile
import time

import numpy as np
import torch
from ann_retrieval import recall
from recsdk_plugins.two_tower import TwoTower, fit_width
from recsdk_plugins.two_tower.features import MAX_DEPTH, ItemArrays
from recsdk_plugins.two_tower.model import embed_items, item_tensors
from threadpoolctl import threadpool_limits

from recsdk.catalog import Catalog
from recsdk.config import Settings
from recsdk.data.synthetic import generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.features.activity import unix_seconds
from recsdk.retrieval import EmbeddingRetriever, HnswIndex
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 3.0, "purchase": 5.0, "rating": 0.0,
           "review": 0.0, "return": -5.0}
SEED = 7
CHUNK = 100_000


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


def catalogue_vectors(plugin: TwoTower, size: int) -> tuple[np.ndarray, Catalog, ItemArrays]:
    """Content-only item-tower vectors of ``size`` synthetic products (same tree), the
    catalogue, and the products' category paths."""
    shop = generate_shop(1000, seed=SEED, n_items=size)
    catalog = Catalog.from_frames(shop.items, shop.categories)
    vectors, paths = [], []
    for start in range(0, size, CHUNK):
        arrays = plugin.content_.transform(shop.items.iloc[start:start + CHUNK], catalog)
        tensors = item_tensors(arrays, "cpu")
        vectors.append(embed_items(plugin.net_, tensors,
                                   torch.zeros(len(arrays), dtype=bool), "cpu"))
        paths.append(fit_width(arrays.cat, MAX_DEPTH, plugin.content_.n_nodes))
    cat = np.concatenate(paths)
    empty = np.zeros((size, 1), dtype=np.int64)
    return np.concatenate(vectors), catalog, ItemArrays(cat, empty, empty.astype(np.float32),
                                                        np.zeros((size, 3), np.float32))


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


def cells(wall: np.ndarray, cpu: np.ndarray) -> str:
    """p50 and p99 wall ms, then p50 and p99 CPU ms."""
    return " | ".join(f"{np.percentile(x, q):.2f}" for x in (wall, cpu) for q in (50, 99))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ef", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--build-threads", type=int, default=1,
                        help="faiss threads while building the index (searches use one)")
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=None,
                        help="vector length (default: the plugin's default)")
    args = parser.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    with threadpool_limits(1):
        plugin = trained(args.epochs, args.dim)
        dim = plugin.item_vectors_.shape[1]
        print(f"two_tower item-tower vectors (content only), dim {dim}; HNSW M={args.m}, "
              f"efConstruction={args.ef_construction}; {args.queries} queries (trained "
              f"users' vectors), n={args.n}; faiss {faiss.__version__}, torch "
              f"{torch.__version__}, python {platform.python_version()}, "
              f"{platform.machine()}, one thread\n")
        print(f"| items | search | ef_search | recall@{args.n} | retrieve p50 ms | "
              "p99 ms | CPU p50 ms | CPU p99 ms | request p50 ms | p99 ms | CPU p50 ms | "
              "CPU p99 ms | build s | index MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for size in args.sizes:
            start = time.perf_counter()
            vectors, catalog, arrays = catalogue_vectors(plugin, size)
            embedded = time.perf_counter() - start
            ids = np.asarray(catalog.ids, dtype=object)
            queries = plugin.user_vectors_[rng.choice(len(plugin.user_vectors_),
                                                      args.queries)]
            exact = EmbeddingRetriever(ids, vectors)
            wall, cpu, truth = latencies(exact, queries, args.n)
            install(plugin, catalog, vectors, arrays, exact)
            request = request_latency(plugin, args.queries, args.n, catalog, rng)
            print(f"| {size:,} | exact | - | 1.000 | {cells(wall, cpu)} | "
                  f"{cells(*request)} | - | - |", flush=True)
            faiss.omp_set_num_threads(args.build_threads)
            start = time.perf_counter()
            index = HnswIndex.build(vectors, args.m, args.ef_construction)
            build = time.perf_counter() - start
            faiss.omp_set_num_threads(1)
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "index.faiss")
                index.write(path)
                mib = os.path.getsize(path) / 2**20
            for ef in args.ef:
                index.ef_search = ef
                retriever = EmbeddingRetriever(ids, vectors, index)
                wall, cpu, found = latencies(retriever, queries, args.n)
                install(plugin, catalog, vectors, arrays, retriever)
                request = request_latency(plugin, args.queries, args.n, catalog, rng)
                print(f"| {size:,} | hnsw | {ef} | {recall(found, truth):.3f} | "
                      f"{cells(wall, cpu)} | {cells(*request)} | {build:.0f} | {mib:.0f} |",
                      flush=True)
            print(f"(embedding {size:,} items from content: {embedded:.0f} s; peak RSS "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB)",
                  flush=True)
            del vectors, catalog, arrays, index, exact, retriever
            plugin.retriever_ = None
            gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
