"""MovieLens-100K offline benchmark: one row per scoring plugin, under the project protocol.

Protocol (docs/benchmarks.md, "Offline evaluation"): every rating is an implicit
interaction; per-user random 80/20 split (seeded); full ranking over all items;
each user's training items filtered out; k = 10. Genres (``class``) are the item
categories and titles the item text, for category- and content-aware plugins. Every
installed plugin that can score users gets a row, so a new plugin is measured by
re-running this script.

With ``--served`` each plugin also runs through the served pipeline
(``RecSDK.recommend()`` per user: the plugin alone with the filters rerank chain and
no fallback, ml-100k.item as the store's catalogue, the training ratings as stored
history), beside its per-plugin row: the same NDCG where both paths score alike, and
what serving each list through the SDK costs, as a ratio of wall time.

    PYTHONPATH=. python benchmarks/evaluate_ml100k.py [--data ../shared/data/ml-100k]
        [--plugin [LABEL=]NAME ...] [--param [LABEL.]KEY=VALUE ...] [--seed 42]
        [--seeds 5] [-k 10] [--report-dir runs/ml100k] [--served]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsdk.errors import ConfigurationError, PluginError
from recsdk.evaluation.catalogue import EvaluationCatalogue, read_catalogue
from recsdk.evaluation.comparison import RunResult, evaluate_plugin
from recsdk.evaluation.files import read_interactions, read_items
from recsdk.evaluation.offline import PluginSpec, default_specs, scoring_plugins
from recsdk.evaluation.served import evaluate_served
from recsdk.evaluation.specs import parse_plugin_specs
from recsdk.evaluation.splits import random_split
from recsdk.evaluation.tables import markdown_table

COLUMNS = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate", "coverage", "novelty",
           "diversity", "gini")
TEST_RATIO = 0.2
KS = (1, 5, 10, 20)


def run_plugin(spec: PluginSpec, frame: pd.DataFrame, items: pd.DataFrame, seed: int,
               k: int) -> RunResult | None:
    """One plugin on the split of ``seed``; None (and a message) when it fails."""
    split = random_split(frame, TEST_RATIO, seed)
    try:
        return evaluate_plugin(spec, split.train, split.test, k=k, ks=KS, items=items,
                               seed=seed, progress=True)
    except (PluginError, ConfigurationError) as exc:
        print(f"plugin {spec.label} failed on ml-100k (seed {seed}): {exc}", file=sys.stderr)
        return None


def seed_spread(specs: list[PluginSpec], frame: pd.DataFrame, items: pd.DataFrame,
                seeds: list[int], k: int) -> str:
    """NDCG@k over several splits, as a Markdown table: how much of a gap is noise."""
    lines = [f"| plugin | ndcg@{k} mean | sd | min | max | seeds |", "|---|---|---|---|---|---|"]
    for spec in specs:
        runs = [run_plugin(spec, frame, items, seed, k) for seed in seeds]
        values = np.array([r.main["ndcg"] for r in runs if r is not None])
        if len(values) == len(seeds):
            lines.append(f"| {spec.label} | {values.mean():.4f} | {values.std(ddof=1):.4f} | "
                         f"{values.min():.4f} | {values.max():.4f} | "
                         f"{seeds[0]}-{seeds[-1]} |")
    return "\n".join(lines)


def served_comparison(specs: list[PluginSpec], runs: dict[str, tuple[RunResult, float]],
                      frame: pd.DataFrame, catalogue: EvaluationCatalogue, seed: int,
                      k: int) -> str:
    """Each plugin through the served pipeline beside its per-plugin row (Markdown)."""
    split = random_split(frame, TEST_RATIO, seed)
    lines = [f"| plugin | ndcg@{k} per-plugin | ndcg@{k} served | per-plugin s | served s | "
             "served / per-plugin | served: sdk, catalogue, history, fit, recommend s | "
             "degraded |", "|---|---|---|---|---|---|---|---|"]
    for spec in specs:
        if spec.label not in runs:
            continue
        alone, alone_seconds = runs[spec.label]
        config = {"plugins": {spec.label: {"plugin": spec.plugin, **spec.params}},
                  "pipeline": {"fallback": ""}}
        start = time.perf_counter()
        try:
            served = evaluate_served(config, split.train, split.test, k=k, label=spec.label,
                                     catalogue=catalogue, progress=True)
        except (PluginError, ConfigurationError) as exc:
            print(f"plugin {spec.label} failed served: {exc}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - start
        steps = ", ".join(f"{served.timings[s]:.1f}"
                          for s in ("sdk", "catalogue", "history", "fit", "recommend"))
        lines.append(f"| {spec.label} | {alone.main['ndcg']:.4f} | "
                     f"{served.result.main['ndcg']:.4f} | {alone_seconds:.1f} | {seconds:.1f} | "
                     f"{seconds / alone_seconds:.1f}x | {steps} | {served.lists.degraded} |")
    return "\n".join(lines)


def history_cost(frame: pd.DataFrame, seed: int, k: int, rounds: int = 3) -> str:
    """Popularity served with and without the training history stored, alternating
    ``rounds`` times; the fastest round of each, as a shared machine's noise only adds
    time (Markdown)."""
    split = random_split(frame, TEST_RATIO, seed)
    best: dict[bool, dict[str, float]] = {}
    ndcg: dict[bool, float] = {}
    for _ in range(rounds):
        for history in (True, False):
            start = time.perf_counter()
            served = evaluate_served({"plugins": {"popularity": {}}}, split.train,
                                     split.test, k=k, history=history, progress=True)
            took = {"history": served.timings["history"],
                    "recommend": served.timings["recommend"],
                    "total": time.perf_counter() - start}
            ndcg[history] = served.result.main["ndcg"]
            best[history] = {n: min(v, best.get(history, {}).get(n, v)) for n, v in took.items()}
    lines = [f"| popularity served (best of {rounds}) | ndcg@{k} | history s | recommend s | "
             "total s |", "|---|---|---|---|---|"]
    for history in (True, False):
        b = best[history]
        lines.append(f"| {'with' if history else 'without'} history | {ndcg[history]:.4f} | "
                     f"{b['history']:.1f} | {b['recommend']:.1f} | {b['total']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"),
                        help="folder with RecBole's ml-100k.inter and ml-100k.item")
    parser.add_argument("--plugin", action="append", default=[],
                        help="[LABEL=]NAME to run (default: every plugin that scores users)")
    parser.add_argument("--param", action="append", default=[],
                        help="[LABEL.]KEY=VALUE plugin parameter")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=1,
                        help="also print NDCG@k over this many splits (seed, seed+1, ...)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--report-dir", type=Path, default=None,
                        help="also write report.html and report.json here")
    parser.add_argument("--served", action="store_true",
                        help="also run each plugin through the served pipeline, and "
                             "popularity with and without the stored history")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    frame = read_interactions(args.data / "ml-100k.inter")
    items = read_items(args.data / "ml-100k.item", category_column="class")
    items = items.rename(columns={"movie_title": "title"})  # text for content plugins
    if args.plugin:
        specs = parse_plugin_specs(args.plugin, args.param)
    else:
        names, broken = scoring_plugins()
        for name, reason in broken.items():
            print(f"skipped plugin {name}: cannot be loaded ({reason})", file=sys.stderr)
        specs = default_specs(names)
    print(f"ml-100k: {frame['user'].nunique()} users, {frame['item'].nunique()} items, "
          f"{len(frame)} interactions; per-user random {1 - TEST_RATIO:.0%}/{TEST_RATIO:.0%} "
          f"split, seed {args.seed}; python {platform.python_version()}, "
          f"{platform.machine()}", file=sys.stderr)
    timed: dict[str, tuple[RunResult, float]] = {}
    for spec in tqdm(specs, desc="plugins", unit="plugin"):
        start = time.perf_counter()
        result = run_plugin(spec, frame, items, args.seed, args.k)
        if result is not None:
            timed[spec.label] = (result, time.perf_counter() - start)
    runs = [r for r, _ in timed.values()]
    print(markdown_table(runs, COLUMNS))
    if args.served:
        catalogue = read_catalogue(args.data / "ml-100k.item")
        print()
        print(served_comparison(specs, timed, frame, catalogue, args.seed, args.k))
        print()
        print(history_cost(frame, args.seed, args.k))
    if args.seeds > 1:
        measured = [s for s in specs if s.label in {r.label for r in runs}]
        seeds = list(range(args.seed, args.seed + args.seeds))
        print()
        print(seed_spread(measured, frame, items, seeds, args.k))
    if args.report_dir:
        from recsdk.evaluation.report import write_report

        protocol = {"data": str(args.data), "split": "per-user random 80/20",
                    "seed": args.seed, "candidates": "all items (full ranking)",
                    "training items": "filtered out", "k": args.k}
        html_path, _ = write_report(runs, args.report_dir, "MovieLens-100K", protocol)
        print(f"report: {html_path}", file=sys.stderr)
    print(f"total {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
