"""CFGAN on MovieLens-100K: validation figures, training cost and test NDCG per seed.

Same protocol as ``evaluate_ml100k.py`` and ``lightgcn_ml100k.py`` (per-user random
80/20 split per seed, full ranking over the ml-100k.item catalogue, training items
filtered, k = 10). Besides the test NDCG@10 and recall@10 it prints what the plugin's
training report holds: the NDCG@10 on the validation split the plugin carves from the
*training* data (what the defaults were chosen on), the epochs run, the best epoch, the
refit epochs and seconds per epoch (CPU time of this process per epoch as well as wall
time, since the machine is shared).

``--validation-only`` skips the test split altogether (parameter search: the test
split is never looked at). ``--holdout`` replaces the test split by a per-user random
10% of the *training* split (the model trains on the other 90% and carves its own
validation split from those): how choices that are not plain parameters (refit) were
measured without the test split. ``--split-seed`` fixes the split (and the
validation split carved from it) while ``--seed``/``--seeds`` vary the model's seed:
the spread that comes from the adversarial training alone.

    PYTHONPATH=. python benchmarks/cfgan_ml100k.py --data ../shared/data/ml-100k
        [--param KEY=VALUE ...] [--seed 42] [--seeds 5] [--split-seed 42]
        [--validation-only | --holdout]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from recsdk.evaluation.comparison import evaluate_recommendations, held_out_truth
from recsdk.evaluation.files import read_interactions, read_items
from recsdk.evaluation.offline import FittedPlugin, PluginSpec, catalog_from_items, implicit_dataset
from recsdk.evaluation.specs import parse_value
from recsdk.evaluation.splits import random_split

TEST_RATIO = 0.2
HOLDOUT_RATIO = 0.1
K = 10


def run_seed(params: dict[str, Any], frame: pd.DataFrame, items: pd.DataFrame, seed: int,
             validation_only: bool, holdout: bool = False,
             split_seed: int | None = None) -> dict[str, Any]:
    """Fit with ``seed`` on the split of ``split_seed`` (default: ``seed``)."""
    split_seed = seed if split_seed is None else split_seed
    split = random_split(frame, TEST_RATIO, split_seed)
    if holdout:
        split = random_split(split.train, HOLDOUT_RATIO, split_seed)
    dataset = implicit_dataset(split.train, catalog_from_items(items))
    spec = PluginSpec("cfgan", "cfgan", params)
    row: dict[str, Any] = {"seed": seed, "split": split_seed}
    cpu_start = time.process_time()
    with FittedPlugin(spec, dataset, seed=seed, device="cpu") as fitted:
        cpu = time.process_time() - cpu_start
        plugin = fitted.manager.get("cfgan")
        report, refit = plugin.report_, plugin.refit_report_
        # with ``ensemble``, the table's epochs and validation are the first generator's;
        # CPU s/epoch divides by every generator's epochs
        epochs = sum(r.epochs + (f.epochs if f else 0) for r, f in plugin.member_reports_)
        row.update(fit_s=fitted.fit_seconds, val_ndcg=report.best_score,
                   epochs=report.epochs, best_epoch=report.best_epoch,
                   refit_epochs=refit.epochs if refit else 0,
                   s_per_epoch=report.seconds_per_epoch,
                   cpu_s_per_epoch=cpu / max(epochs, 1),
                   history=" ".join(f"{e}:{s:.4f}" for e, s in report.history))
        if not validation_only:
            truth = held_out_truth(split.train, split.test)
            users = sorted(truth["user"].unique())
            top = fitted.top_k(users, K)
            result = evaluate_recommendations("cfgan", top.to_frame(), truth, k=K,
                                              train=split.train)
            row["test_ndcg"] = float(result.main["ndcg"])
            row["test_recall"] = float(result.main["recall"])
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--param", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--validation-only", action="store_true")
    parser.add_argument("--holdout", action="store_true")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="one split for every model seed (default: the model seed)")
    args = parser.parse_args(argv)
    params = {}
    for text in args.param:
        key, _, value = text.partition("=")
        params[key.strip()] = parse_value(value.strip())
    frame = read_interactions(args.data / "ml-100k.inter")
    items = read_items(args.data / "ml-100k.item", category_column="class")
    print(f"cfgan {params}; python {platform.python_version()} {platform.machine()}",
          file=sys.stderr)
    started = time.perf_counter()
    rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        row = run_seed(params, frame, items, seed, args.validation_only, args.holdout,
                       args.split_seed)
        print("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()), flush=True)
        rows.append(row)
    table = pd.DataFrame(rows).drop(columns="history")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for record in table.to_dict("records"):
        print("| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v)
                                for v in record.values()) + " |")
    if len(rows) > 1:
        means = table.drop(columns=["seed", "split"]).mean()
        sds = table.drop(columns=["seed", "split"]).std(ddof=1)
        print("mean " + "  ".join(f"{k}={means[k]:.4f}±{sds[k]:.4f}" for k in means.index))
    print(f"total {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
