"""Embedding retrieval: faiss HNSW against exact search, recall@100 and request latency.

Synthetic factors (say so when quoting): item vectors are Gaussian in ``--dim``
dimensions with log-normal norms (sd 0.5), the skew matrix-factorisation item vectors
show between popular and rare items; user queries are Gaussian. For each catalogue
size: the index's build time and file size, recall@``--n`` of its answer against the
exact top ``--n`` by inner product, and the latency of one retrieval call
(``EmbeddingRetriever.retrieve``: search plus exact re-scoring of the hits, one query
at a time, as a request makes it), exact (numpy) against HNSW, p50 and p99 over
``--queries`` queries. faiss and numpy run single-threaded, as one request would.

    PYTHONPATH=. python benchmarks/ann_retrieval.py [--sizes 1000 10000 100000]
        [--dim 64] [--n 100] [--queries 500] [--ef 64 128 256 512] [--m 32]
        [--ef-construction 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

from recsdk.retrieval import EmbeddingRetriever, HnswIndex


def synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)) * rng.lognormal(0, 0.5, (n, 1))).astype(np.float32)


def latencies(retriever: EmbeddingRetriever, queries: np.ndarray, n: int
              ) -> tuple[np.ndarray, list[list[str]]]:
    times, answers = [], []
    for q in queries:
        start = time.perf_counter()
        got = retriever.retrieve(q, n)
        times.append(time.perf_counter() - start)
        answers.append(got.ids)
    return np.array(times) * 1e3, answers


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact,
                                                                        strict=True)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    args = parser.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)
    print(f"synthetic factors, dim {args.dim}; HNSW M={args.m}, "
          f"efConstruction={args.ef_construction}; {args.queries} queries, n={args.n}; "
          f"faiss {faiss.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, one thread\n")
    print(f"| items | index | ef_search | recall@{args.n} | p50 ms | p99 ms | build s | "
          "index MiB |")
    print("|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for size in args.sizes:
            items = synthetic(size, args.dim, seed=size)
            ids = [f"i{n}" for n in range(size)]
            queries = np.random.default_rng(1).normal(size=(args.queries, args.dim)) \
                .astype(np.float32)
            exact = EmbeddingRetriever(ids, items)
            times, truth = latencies(exact, queries, args.n)
            print(f"| {size:,} | exact | - | 1.000 | {np.percentile(times, 50):.3f} | "
                  f"{np.percentile(times, 99):.3f} | - | - |", flush=True)
            start = time.perf_counter()
            index = HnswIndex.build(items, args.m, args.ef_construction)
            build = time.perf_counter() - start
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "index.faiss")
                index.write(path)
                mib = os.path.getsize(path) / 2**20
            for ef in args.ef:
                index.ef_search = ef
                times, found = latencies(EmbeddingRetriever(ids, items, index), queries,
                                         args.n)
                print(f"| {size:,} | hnsw | {ef} | {recall(found, truth):.3f} | "
                      f"{np.percentile(times, 50):.3f} | {np.percentile(times, 99):.3f} | "
                      f"{build:.1f} | {mib:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
