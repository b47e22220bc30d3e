"""The factorisation plugins on a GPU against the CPU: same data, same seed, same run.

For the device check of issue 9 ("GPU when present"): implicit's CUDA models are
used when ``implicit.gpu.HAS_CUDA`` is true (pip's implicit wheel carries the CUDA
extension, which loads once ``rmm-cu13`` is installed) and the context's device is
``cuda``. Data: a generated synthetic shop under the temporal protocol of
``benchmarks/evaluate_shop.py``; each plugin with its defaults, once per device.

    PYTHONPATH=. python benchmarks/gpu_factorization.py [--events 400000] [--seed 42]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_shop import make_shop

from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.offline import PluginSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plugin", action="append", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("implicit", "recsdk_plugins.factorization.base"):
        logging.getLogger(name).setLevel(logging.INFO)
    with contextlib.suppress(ImportError):  # loads the CUDA libraries implicit links
        import torch  # noqa: F401
    import implicit
    import implicit.gpu

    print(f"implicit {implicit.__version__}, HAS_CUDA={implicit.gpu.HAS_CUDA}, "
          f"Python {platform.python_version()}")
    shop = make_shop(args.events, args.seed)
    print(f"shop: {args.events:,} events, {shop.users:,} users, {len(shop.items):,} items, "
          f"{len(shop.train):,} training pairs, {len(shop.test):,} test pairs")
    print("\n| plugin | device | ndcg@10 | recall@10 | fit s | score s | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.plugin or ["als", "bpr", "lmf"]:
        for device in ("cpu", "cuda"):
            start = time.perf_counter()
            run = evaluate_plugin(PluginSpec(name, name), shop.train, shop.test, k=10,
                                  items=shop.items, seed=args.seed, device=device)
            print(f"| {name} | {device} | {run.main['ndcg']:.4f} | {run.main['recall']:.4f} "
                  f"| {run.fit_seconds:.2f} | {run.score_seconds:.2f} | "
                  f"{time.perf_counter() - start:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
