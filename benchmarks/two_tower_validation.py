"""Validation NDCG@10 of ``two_tower`` settings on MovieLens-100K, never touching test.

For tuning defaults: each setting is fitted on the *training* part of the protocol's
per-user random 80/20 split (``--seed``), with ``refit = false``, and reports the
plugin's own early-stopping curve: NDCG@10 on ``deep_training.validation_split``
(``validation_share`` of each user's training interactions, training items masked)
every ``eval_every`` epochs, and the best of them. The test part of the split is
dropped before anything is fitted.

    PYTHONPATH=. python benchmarks/two_tower_validation.py [--data ../shared/data/ml-100k]
        [--seed 42] [--max-epochs 24] [--set LABEL:KEY=VALUE[,KEY=VALUE...] ...]

Without ``--set`` it runs the defaults only; each ``--set`` is one setting (changes
from the defaults; ``LABEL:`` alone is the defaults).
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path
from typing import Any

from recsdk.evaluation.files import read_interactions, read_items
from recsdk.evaluation.offline import FittedPlugin, PluginSpec, catalog_from_items, implicit_dataset
from recsdk.evaluation.splits import random_split

TEST_RATIO = 0.2  # as benchmarks/evaluate_ml100k.py


def parse_setting(text: str) -> tuple[str, dict[str, Any]]:
    """``LABEL:KEY=VALUE,KEY=VALUE`` -> (label, params); values read as Python literals."""
    label, _, body = text.partition(":")
    params: dict[str, Any] = {}
    for part in filter(None, body.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"--set {text!r}: {part!r} is not KEY=VALUE")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = value.strip()
    return label or "defaults", params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-epochs", type=int, default=24)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    args = parser.parse_args(argv)

    frame = read_interactions(args.data / "ml-100k.inter")
    items = read_items(args.data / "ml-100k.item", category_column="class")
    items = items.rename(columns={"movie_title": "title"})
    train = random_split(frame, TEST_RATIO, args.seed).train  # the test part is never used
    dataset = implicit_dataset(train, catalog_from_items(items))
    print("| setting | validation NDCG@10 by epoch | best | at epoch | s/epoch (wall) |")
    print("|---|---|---|---|---|")
    for label, changes in map(parse_setting, args.settings or [":"]):
        params = {"refit": False, "max_epochs": args.max_epochs, "num_threads": 1, **changes}
        start = time.perf_counter()
        with FittedPlugin(PluginSpec(label, "two_tower", params), dataset,
                          seed=args.seed, device="cpu") as fitted:
            report = fitted.manager.get(label).report_
        curve = ", ".join(f"{e}: {s:.4f}" for e, s in report.history)
        print(f"| {label} {changes} | {curve} | {report.best_score:.4f} | "
              f"{report.best_epoch} | {report.seconds_per_epoch:.1f} |", flush=True)
        print(f"{label}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
