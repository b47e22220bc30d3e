"""EASE fit time and memory against bare numpy solves of the same matrix, in the same run.

For each catalogue size n a seeded synthetic users x items matrix (10 n users, item
popularity Zipf-like, about 40 interactions per user) is built once; then

* ``numpy inv f64 (baseline)``: the textbook solve on the same X: dense
  ``G = X^T X + lambda I`` in float64, ``P = numpy.linalg.inv(G)``, ``B = I - P / diag(P)``;
* ``ease solve``: the plugin's solve on the same X (``gram`` + ``ease_weights``: float32,
  in-place Cholesky inverse by LAPACK ``potrf``/``potri``);
* ``ease plugin recsdk_fit``: the whole fit, weighting the event log into X included;
* ``numpy inv f32``, ``scipy cho_factor/cho_solve f32``: the same inverse in float32 by
  ``numpy.linalg.inv`` and by ``scipy.linalg.cho_factor`` + ``cho_solve(I)``;
* with ``--order-window H``: the whole fit with ``order_window = H`` (the Gram matrix of
  pairs at most H events apart; another model, so no difference to f64 is shown).

Peak memory is tracemalloc's peak during the call (numpy registers its buffers with
tracemalloc, LAPACK's workspace included). Times are the best of ``--repeat`` runs.

    PYTHONPATH=. python benchmarks/ease_speed.py [--sizes 1000 2000 5000] [--repeat 3]
        [--solve-only 10000] [--order-window 60]
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from recsdk_plugins.ease import EASE, GRAM_SPLITS, MIN_BLOCK, ease_weights, gram, regularise

from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.types import PluginContext

L2 = 500.0
PER_USER = 40


def synthetic(n_items: int, seed: int = 0) -> InteractionDataset:
    """10 n users with about PER_USER distinct Zipf-popular items each."""
    rng = np.random.default_rng(seed)
    n_users = 10 * n_items
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    users = np.repeat(np.arange(n_users), PER_USER)
    items = rng.choice(n_items, size=len(users), p=popularity)
    frame = pd.DataFrame({"user_id": users.astype(str), "item_id": items.astype(str)})
    frame = frame.drop_duplicates()
    return InteractionDataset.from_frame(frame, event_weights={"interaction": 1.0})


def measured(fn: Callable[[], Any], repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` calls and the tracemalloc peak of one."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak


def fit_plugin(dataset: InteractionDataset, order_window: int = 0) -> EASE:
    plugin = EASE.from_config({"l2": L2, "max_items": 200_000,
                               "order_window": order_window}, "ease")
    context = PluginContext(settings=Settings(event_weights={"interaction": 1.0}))
    plugin.recsdk_configure(context=context)
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin


def numpy_inv(x: sp.csr_matrix, dtype: type) -> np.ndarray:
    """The textbook solve: dense G from the same sparse X, ``numpy.linalg.inv``, B."""
    g = (x.T @ x).toarray().astype(dtype)
    g[np.diag_indices(len(g))] += L2
    p = np.linalg.inv(g)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def penalised_gram(x: sp.csr_matrix) -> np.ndarray:
    """The plugin's ``X^T X + L2 I`` (plain EASE: no dropout)."""
    return regularise(gram(x), L2, 0.0)


def cho_solve(x: sp.csr_matrix) -> np.ndarray:
    g = penalised_gram(x)
    factor = scipy.linalg.cho_factor(g, check_finite=False)
    p = scipy.linalg.cho_solve(factor, np.eye(len(g), dtype=g.dtype), check_finite=False)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def solvers(x: sp.csr_matrix, dataset: InteractionDataset, reference: np.ndarray,
            order_window: int = 0
            ) -> dict[str, tuple[Callable[[], Any], Callable[[], np.ndarray] | None]]:
    """Each method: what is timed, and the B it gives (for the accuracy column; None for
    another model)."""
    windowed: dict[str, tuple[Callable[[], Any], None]] = {} if not order_window else {
        f"ease plugin recsdk_fit, order_window {order_window}":
            (lambda: fit_plugin(dataset, order_window), None)}
    return {
        "numpy inv f64 (baseline)": (lambda: numpy_inv(x, np.float64), lambda: reference),
        "ease solve (gram + potrf/potri f32)": (lambda: ease_weights(penalised_gram(x)),
                                               lambda: ease_weights(penalised_gram(x))),
        "ease plugin recsdk_fit": (lambda: fit_plugin(dataset),
                                   lambda: fit_plugin(dataset).b_),
        "numpy inv f32": (lambda: numpy_inv(x, np.float32), lambda: numpy_inv(x, np.float32)),
        "scipy cho_factor/cho_solve f32": (lambda: cho_solve(x), lambda: cho_solve(x)),
        **windowed,
    }


def run(sizes: list[int], repeat: int, order_window: int = 0) -> None:
    """Prints one Markdown row per size and method as it is measured."""
    print("| items n | users | nnz | method | s (best of repeat) | / numpy inv f64 | "
          "peak MiB | max abs diff to f64 |\n|---|---|---|---|---|---|---|---|", flush=True)
    for n in sizes:
        dataset = synthetic(n)
        x = dataset.matrix
        reference = numpy_inv(x, np.float64)
        base = None
        for name, (fn, result) in solvers(x, dataset, reference, order_window).items():
            seconds, peak = measured(fn, repeat)
            base = seconds if base is None else base
            diff = "" if result is None else f"{float(np.abs(result() - reference).max()):.1e}"
            print(f"| {n:,} | {dataset.n_users:,} | {x.nnz:,} | {name} | {seconds:.2f} | "
                  f"{seconds / base:.2f} | {peak / 2**20:,.0f} | {diff} |", flush=True)


def memory_table(sizes: list[int]) -> str:
    """Bytes of G and B (float32, one array: B overwrites G) and the fit's peak by
    arithmetic: that array plus the widest block of the sparse gram product."""
    lines = ["| items | G = B (float32, one array) | gram block temporary | fit peak, "
             "without X | state on disk (B) |", "|---|---|---|---|---|"]
    for n in sizes:
        size = 4 * n * n
        temporary = 12 * n * max(MIN_BLOCK, -(-n // GRAM_SPLITS))
        lines.append(f"| {n:,} | {size / 2**20:,.0f} MiB | {temporary / 2**20:,.0f} MiB | "
                     f"{(size + temporary) / 2**20:,.0f} MiB | {size / 2**20:,.0f} MiB |")
    return "\n".join(lines)


def solve_only(sizes: list[int]) -> None:
    """The plugin's solve alone (once each) for sizes where the baselines take too long."""
    print("| items n | users | nnz | ease solve s | peak MiB | 4 n^2 MiB |\n"
          "|---|---|---|---|---|---|", flush=True)
    for n in sizes:
        dataset = synthetic(n)
        x = dataset.matrix
        seconds, peak = measured(lambda x=x: ease_weights(penalised_gram(x)), 1)
        print(f"| {n:,} | {dataset.n_users:,} | {x.nnz:,} | {seconds:.1f} | "
              f"{peak / 2**20:,.0f} | {4 * n * n / 2**20:,.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--solve-only", type=int, nargs="*", default=[10_000],
                        help="sizes measured for the plugin's solve alone")
    parser.add_argument("--order-window", type=int, default=0,
                        help="also time the fit with this order_window")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, {platform.machine()}")
    run(args.sizes, args.repeat, args.order_window)
    print()
    if args.solve_only:
        solve_only(args.solve_only)
        print()
    print(memory_table([1_000, 10_000, 20_000, 50_000, 100_000]))


if __name__ == "__main__":
    main()
