"""What the plugins add to implicit: fit time of ``als``, ``bpr``, ``lmf`` against implicit alone.

``bpr`` is measured with ``solver = "implicit"`` (the solver on implicit, with its
defaults) for the ratio; its default solver, ``adam`` (numpy, no implicit), gets a
row of its own with the plugin's fit time only.

Same matrix, same parameters, same seed, same process: each round times the plugin's
``recsdk_fit`` (event weighting into the users x items matrix, implicit's fit, copying
the factors out, similarity caches; ``index = "none"``) and then implicit's estimator
fitted directly on the matrix the plugin built. Both run under one BLAS thread, as
implicit advises for its own threads. Rounds alternate; the fastest of each is kept,
since a shared machine's noise only adds time.

    PYTHONPATH=. python benchmarks/implicit_speed.py [--data ../shared/data/ml-100k]
        [--rounds 5] [--threads 0] [--plugin als ...]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

from recsdk_plugins.factorization import ALS, BPR, LMF
from threadpoolctl import threadpool_limits

from recsdk.config import Settings
from recsdk.evaluation.files import read_interactions
from recsdk.evaluation.offline import IMPLICIT_EVENT, implicit_dataset
from recsdk.types import PluginContext

SEED = 42


def plugin_fit(cls: type, params: dict[str, Any], dataset: Any) -> tuple[float, Any]:
    plugin = cls.from_config({**params, "index": "none"}, cls.NAME)
    ctx = PluginContext(settings=Settings(seed=SEED, device="cpu",
                                          event_weights={IMPLICIT_EVENT: 1.0}),
                        seed=SEED, device_setting="cpu")
    start = time.perf_counter()
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset, context=ctx)
    return time.perf_counter() - start, plugin


def implicit_fit(plugin: Any) -> float:
    """implicit alone, on the plugin's matrix, with the plugin's estimator settings."""
    start = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model = plugin.make_model(False, SEED)
        model.fit(plugin.rows_.matrix, show_progress=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--plugin", action="append", choices=["als", "bpr", "lmf"])
    args = parser.parse_args(argv)
    frame = read_interactions(args.data / "ml-100k.inter")
    dataset = implicit_dataset(frame)
    print(f"ml-100k: {dataset.n_users} users, {dataset.n_items} items, {len(frame)} "
          f"interactions; default parameters, num_threads={args.threads}, "
          f"{args.rounds} alternating rounds, fastest kept; python "
          f"{platform.python_version()}, {platform.machine()}\n")
    print("| plugin | plugin fit s | implicit fit s | ratio |")
    print("|---|---|---|---|")
    for cls in (c for c in (ALS, BPR, LMF) if args.plugin is None or c.NAME in args.plugin):
        params: dict[str, Any] = {"num_threads": args.threads}
        label = cls.NAME
        if cls is BPR:
            params["solver"] = "implicit"
            label = "bpr (solver = implicit)"
        ours, theirs = [], []
        for _ in range(args.rounds):
            seconds, plugin = plugin_fit(cls, params, dataset)
            ours.append(seconds)
            theirs.append(implicit_fit(plugin))
        print(f"| {label} | {min(ours):.3f} | {min(theirs):.3f} | "
              f"{min(ours) / min(theirs):.2f}x |", flush=True)
        if cls is BPR:  # the default solver: numpy Adam, nothing of implicit's to compare
            adam = [plugin_fit(cls, {"solver": "adam"}, dataset)[0]
                    for _ in range(args.rounds)]
            print(f"| bpr (solver = adam, default) | {min(adam):.3f} | - | - |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
