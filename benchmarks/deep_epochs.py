"""Seconds per training epoch of every deep plugin, on the CPU or a GPU, in one run.

Each plugin fits MovieLens-100K's seed-42 training split (per-user random 80/20, the
ml-100k.item catalogue: ``best_pipeline.ml100k_split``) through the hooks the SDK calls, for
``--epochs`` epochs with no validation (``validation_share = 0``: nothing stops early,
so every device runs the same epochs), on ``--device`` (``auto``: CUDA when torch sees a
GPU; there the forward pass runs under bf16 autocast). Printed per plugin: the device,
the first epoch alone (CUDA start-up and kernel selection fall in it), the mean of the
later epochs, the whole fit and the test NDCG@10 after those epochs: a check that the
device trains a model of the same quality, not a quality figure (the defaults train
longer, with early stopping). The NDCG of two devices differs a little: bf16 and
CUDA's kernels do not repeat the CPU's arithmetic.

This is the short script for a GPU when one is lent (``docs/benchmarks.md``, "Deep
plugins: seconds per epoch, CPU and GPU"):

    PYTHONPATH=. python benchmarks/deep_epochs.py --data ../shared/data/ml-100k \\
        [--device auto|cpu|cuda] [--epochs 5] [--threads 1] [--plugins sasrec ...]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsdk.dataset import InteractionDataset
from recsdk.evaluation.comparison import evaluate_recommendations, held_out_truth
from recsdk.evaluation.files import read_interactions, read_items
from recsdk.evaluation.offline import FittedPlugin, PluginSpec, catalog_from_items, implicit_dataset
from recsdk.plugin_manager import discover_plugins

sys.path.insert(0, str(Path(__file__).resolve().parent))
import best_pipeline

K = 10
#: the deep plugins and their parameters besides the epochs; ``num_threads`` (the torch
#: thread count, where a plugin's schema has it) is added from ``--threads``. ``two_tower`` is
#: told TF-IDF so that neither device loads MiniLM (88 MB, which does not travel to the
#: GPU machine); here no text reaches its item tower anyway (ml-100k.item's title column
#: is ``movie_title``, not one of its ``text_fields``).
PLUGINS: dict[str, dict[str, Any]] = {
    "sasrec": {}, "gru4rec": {}, "two_tower": {"text_encoder": "tfidf"},
    "lightgcn": {}, "multvae": {}, "cfgan": {},
}


def test_ndcg(fitted: FittedPlugin, train: pd.DataFrame, test: pd.DataFrame) -> float:
    """NDCG@10 from the project's evaluator: every item ranked, training items filtered."""
    truth = held_out_truth(train, test)
    top = fitted.top_k(sorted(truth["user"].unique()), K)
    return float(evaluate_recommendations("check", top.to_frame(), truth, k=K, train=train)
                 .main["ndcg"])


def measure(plugin: str, dataset: InteractionDataset, train: pd.DataFrame,
            test: pd.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {**PLUGINS[plugin], "max_epochs": args.epochs,
                              "validation_share": 0.0}
    if "num_threads" in discover_plugins()[plugin].load().Params().fields:
        params["num_threads"] = args.threads
    with FittedPlugin(PluginSpec(plugin, plugin, params), dataset, seed=args.seed,
                      device=args.device) as fitted:
        fit = fitted.fit_seconds
        report = fitted.manager.get(plugin).report_
        quality = test_ndcg(fitted, train, test)
    seconds = list(report.epoch_seconds)
    return {"plugin": plugin, "device": report.device, "epochs": len(seconds),
            "first": seconds[0] if seconds else float("nan"),
            "later": float(np.mean(seconds[1:])) if len(seconds) > 1 else float("nan"),
            "fit": fit, "ndcg": quality}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=42, help="split and model seed")
    parser.add_argument("--plugins", nargs="+", choices=sorted(PLUGINS), default=list(PLUGINS))
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.threads < 1:
        parser.error("--epochs must be at least 2 (the first is reported apart) and "
                     "--threads at least 1")
    inter = args.data / "ml-100k.inter"
    if not inter.is_file():
        parser.error(f"{inter}: no such file (--data is the folder of ml-100k.inter)")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here")
    torch.set_num_threads(args.threads)
    train, test = best_pipeline.ml100k_split(read_interactions(inter), args.seed, tune=False)
    items = read_items(args.data / "ml-100k.item", category_column="class")
    dataset = implicit_dataset(train, catalog_from_items(items))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{platform.machine()}, GPU: {gpu}; {args.epochs} epochs, "
          f"{args.threads} CPU thread(s), seed {args.seed}\n", flush=True)
    print("| plugin | device | epochs | first epoch s | later epochs s (mean) | fit s "
          "| ndcg@10 |\n|---|---|---|---|---|---|---|", flush=True)
    for plugin in args.plugins:
        row = measure(plugin, dataset, train, test, args)
        print(f"| {row['plugin']} | {row['device']} | {row['epochs']} | {row['first']:.2f} "
              f"| {row['later']:.2f} | {row['fit']:.1f} | {row['ndcg']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
