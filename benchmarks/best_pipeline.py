"""The best configured pipeline (scorers blended, then the ``ltr`` LambdaMART ranker),
served exactly as ``recsdk recommend-batch --config`` serves it, under the MovieLens-100K
protocol or on the synthetic shop against its oracle.

MovieLens-100K (default): per-user random 80/20 split per seed (as
benchmarks/evaluate_ml100k.py), full ranking, training items filtered, k = 10; the
configuration's pipeline is trained on the training part through
:class:`recsdk.evaluation.served.ServedPipeline` (the code path of ``recsdk
recommend-batch --train T --config C --out RECS``) and every test user is served. With
``--items`` the ml-100k.item catalogue is the store's (genres as tags, release year as
an attribute), as ``recommend-batch --items`` does. ``--blend`` also serves the same
configuration without its ranker, to show what the ranker adds.

``--tune`` scores on a split carved from each seed's *training* part (per-user random
80/20 again) instead of the test part: how the configuration's defaults were chosen
without looking at test data.

``--shop``: the synthetic shop of benchmarks/evaluate_shop.py (temporal 80/20 split,
oracle NDCG from the planted preferences), the pipeline's NDCG as a share of the
oracle's. With ``--tune`` the shop's *training* pairs are split again the same way
(the newest 20% of them as pseudo-test, users without earlier pairs dropped) and the
pipeline and the oracle are scored there: how ``config/shop-best.toml`` was chosen
without looking at the test weeks.

    PYTHONPATH=. python benchmarks/best_pipeline.py [--data ../shared/data/ml-100k]
        [--config config/ml100k-best.toml] [--items] [--seed 42] [--seeds 5] [--blend]
        [--tune] [--set PLUGIN.KEY=VALUE ...]
    PYTHONPATH=. python benchmarks/best_pipeline.py --shop [--config config/shop-best.toml]
        [--events 100000] [--seeds 3] [--blend] [--tune] [--set PLUGIN.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsdk.evaluation.catalogue import EvaluationCatalogue, read_catalogue
from recsdk.evaluation.comparison import evaluate_plugin, evaluate_recommendations, held_out_truth
from recsdk.evaluation.files import read_interactions
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.served import ServedPipeline
from recsdk.evaluation.splits import random_split

TEST_RATIO = 0.2
RANKER = "ltr"


def load_config(path: Path, sets: list[str]) -> dict[str, Any]:
    """The TOML file as a dict, with ``PLUGIN.KEY=VALUE`` (or ``pipeline.KEY=VALUE``)
    overrides (values parsed as JSON, else text)."""
    config = tomllib.loads(path.read_text())
    for item in sets:
        key, _, value = item.partition("=")
        table, _, name = key.rpartition(".")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        target = config.setdefault("pipeline", {}) if table == "pipeline" else \
            config.setdefault("plugins", {}).setdefault(table, {})
        target[name] = parsed
    return config


def ml100k_split(frame: pd.DataFrame, seed: int, tune: bool
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed's per-user random (train, test) split; with ``tune``, its training part
    split again the same way (an inner split: how choices are made without test data).
    benchmarks/ltr_replay.py and blend_probe.py score on these same inner splits."""
    split = random_split(frame, TEST_RATIO, seed)
    if tune:
        split = random_split(split.train, TEST_RATIO, seed)
    return split.train, split.test


def label_of(config: dict[str, Any]) -> str:
    ranked = any(t.get("plugin", n) == RANKER and t.get("enabled", True)
                 for n, t in config.get("plugins", {}).items())
    return "pipeline with ltr" if ranked else "pipeline (no ranker)"


def without_ranker(config: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out["plugins"] = {n: t for n, t in out["plugins"].items()
                      if t.get("plugin", n) != RANKER}
    return out


def served_ndcg(config: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame, k: int,
                catalogue: EvaluationCatalogue | None) -> tuple[float, dict[str, Any] | None,
                                                                 int, float]:
    """NDCG@k of the served lists, the ranker's report (None without one), degraded
    lists and seconds; the same steps as ``recommend-batch`` then ``evaluate``."""
    start = time.perf_counter()
    truth = held_out_truth(train, test)
    users = sorted(truth["user"].unique())
    with ServedPipeline(config, train, catalogue=catalogue) as served:
        lists = served.recommend(users, k)
        ranker = next((served.sdk.plugins.get(n) for n, t in config["plugins"].items()
                       if t.get("plugin", n) == RANKER), None)
        report = ranker.report_.as_dict() if ranker is not None else None
    result = evaluate_recommendations("pipeline", lists.recommendations, truth, k=k,
                                      train=train)
    return result.main["ndcg"], report, lists.degraded, time.perf_counter() - start


def print_importances(reports: list[dict[str, Any]], top: int = 20) -> None:
    names = list(reports[0]["importances"])
    mean = {n: float(np.mean([r["importances"].get(n, 0.0) for r in reports])) for n in names}
    print(f"\nltr feature importances (share of total gain, mean of {len(reports)} runs):\n")
    print("| feature | gain share |\n|---|---|")
    for n in sorted(mean, key=lambda n: -mean[n])[:top]:
        print(f"| {n} | {mean[n]:.3f} |")
    rounds = [r["best_iteration"] for r in reports]
    print(f"\nboosting rounds (early stopping): {rounds}; early-stopping users' NDCG@10, "
          f"ranker vs blend: " + ", ".join(f"{r['ndcg_ranker']:.4f}/{r['ndcg_blend']:.4f}"
                                           for r in reports))


def table(rows: dict[str, list[float]], seeds: list[int], k: int,
          reference: float | None = None) -> str:
    head = f"| pipeline | ndcg@{k} mean | sd | per seed |"
    lines = [head + (" share of oracle |" if reference else ""),
             "|---|---|---|---|" + ("---|" if reference else "")]
    for label, values in rows.items():
        v = np.array(values)
        sd = v.std(ddof=1) if len(v) > 1 else 0.0
        line = f"| {label} | {v.mean():.4f} | {sd:.4f} | {' '.join(f'{x:.4f}' for x in v)} |"
        if reference:
            line += f" {v.mean() / reference:.1%} |"
        lines.append(line)
    return "\n".join(lines) + f"\n\nseeds {seeds[0]}-{seeds[-1]}"


def ml100k(args: argparse.Namespace, config: dict[str, Any]) -> None:
    frame = read_interactions(args.data / "ml-100k.inter")
    catalogue = read_catalogue(args.data / "ml-100k.item") if args.items else None
    seeds = list(range(args.seed, args.seed + args.seeds))
    rows: dict[str, list[float]] = {}
    reports = []
    for seed in seeds:
        train, test = ml100k_split(frame, seed, args.tune)  # tune: never the test part
        runs = [(label_of(config), config)]
        if args.blend:
            runs.append(("blend alone", without_ranker(config)))
        for label, cfg in runs:
            ndcg, report, degraded, seconds = served_ndcg(cfg, train, test, args.k, catalogue)
            rows.setdefault(label, []).append(ndcg)
            if report is not None:
                reports.append(report)
            print(f"seed {seed} {label}: ndcg@{args.k} {ndcg:.4f} ({seconds:.0f} s, "
                  f"{degraded} degraded lists)", file=sys.stderr, flush=True)
            if report is not None:  # a long run's figures survive an interruption
                print(f"seed {seed} ltr: {json.dumps(report)}", file=sys.stderr, flush=True)
    where = "inner split of the training part" if args.tune else "test part"
    print(f"MovieLens-100K, per-user random 80/20, scored on the {where}, full ranking, "
          f"training items filtered; config {args.config}"
          f"{' + ml-100k.item catalogue' if args.items else ''}; "
          f"python {platform.python_version()}, {platform.machine()}\n")
    print(table(rows, seeds, args.k))
    if reports:
        print_importances(reports)


def shop(args: argparse.Namespace, config: dict[str, Any]) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from evaluate_shop import TEST_RATIO as SHOP_TEST_RATIO
    from evaluate_shop import make_shop

    from recsdk.evaluation.splits import temporal_split

    seeds = list(range(args.seed, args.seed + args.seeds))
    rows: dict[str, list[float]] = {}
    oracle: list[float] = []
    reports = []
    for seed in seeds:
        s = make_shop(args.events, seed)
        train, test = s.train, s.test
        if args.tune:  # the newest pairs of the training weeks, never the test weeks
            inner = temporal_split(train, SHOP_TEST_RATIO)
            train = inner.train
            test = inner.test[inner.test["user"].isin(set(train["user"]))]
        items = s.items.rename(columns={"category": "categories"})
        items["categories"] = items["categories"].map(lambda c: [c])
        oracle.append(evaluate_plugin(PluginSpec("oracle", "oracle", {}), train, test,
                                      k=args.k, items=items, seed=seed,
                                      extra_plugins={"oracle": s.oracle}).main["ndcg"])
        catalogue = shop_catalogue(s.items)
        runs = [(label_of(config), config)]
        if args.blend:
            runs.append(("blend alone", without_ranker(config)))
        for label, cfg in runs:
            ndcg, report, degraded, seconds = served_ndcg(cfg, train, test, args.k,
                                                          catalogue)
            rows.setdefault(label, []).append(ndcg)
            if report is not None:
                reports.append(report)
            print(f"shop {seed} {label}: ndcg@{args.k} {ndcg:.4f}, oracle {oracle[-1]:.4f} "
                  f"({seconds:.0f} s, {degraded} degraded)", file=sys.stderr, flush=True)
    rows["oracle"] = oracle
    where = ("newest 20% of the training pairs (inner split; the test weeks unread)"
             if args.tune else "test weeks")
    print(f"synthetic shops, {args.events:,} events each, temporal 80/20, scored on the "
          f"{where}; config {args.config}; python {platform.python_version()}, "
          f"{platform.machine()}\n")
    print(table(rows, seeds, args.k, reference=float(np.mean(oracle))))
    if reports:
        print_importances(reports)


def shop_catalogue(items: pd.DataFrame) -> EvaluationCatalogue:
    """The shop's items (leaf category, title) as a store catalogue."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.csv"
        items[["item", "category", "title"]].to_csv(path, index=False)
        return read_catalogue(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--config", type=Path, default=None,
                        help="default: config/ml100k-best.toml (config/shop-best.toml "
                             "with --shop)")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="PLUGIN.KEY=VALUE", help="override a configuration value")
    parser.add_argument("--items", action="store_true",
                        help="ml-100k: serve with the ml-100k.item catalogue")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--blend", action="store_true",
                        help="also serve the configuration without its ranker")
    parser.add_argument("--tune", action="store_true",
                        help="score on a split of the training part, not on test "
                             "(ml-100k: per-user random; --shop: the newest training pairs)")
    parser.add_argument("--shop", action="store_true", help="the synthetic shop")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    if args.config is None:
        args.config = root / "config" / ("shop-best.toml" if args.shop else "ml100k-best.toml")
    config = load_config(args.config, args.sets)
    started = time.perf_counter()
    (shop if args.shop else ml100k)(args, config)
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
