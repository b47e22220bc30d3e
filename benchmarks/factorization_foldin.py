"""Does fold-in serve? NDCG@10 of folded-in users against stored factors (ML-100K).

Per-user random 80/20 split of MovieLens-100K (the project protocol, seeded); then 20%
of the users are kept out of training entirely. For those users the table gives:

* stored: NDCG@10 from their stored factors, the model trained with them;
* refold: the same model, their vectors recomputed by fold-in from their training rows
  (the fold-in solver against the factors training produced for them);
* unseen: a model trained without them, their vectors folded in from their training
  rows at request time: the case of a user who arrives after training;

and the mean fold-in time per user (one request's solve; ALS's batch solve is the
same per row), with BLAS on one thread: per-request solves are small, and several BLAS
threads per worker on a shared machine made the same solve 10-60x slower and erratic.
Training items are filtered out; full ranking over the model's items.

    PYTHONPATH=. python benchmarks/factorization_foldin.py [--data ../shared/data/ml-100k]
        [--plugin als --plugin bpr --plugin lmf] [--param NAME.KEY=VALUE ...] [--seed 42]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsdk.config import Settings
from recsdk.evaluation.comparison import held_out_truth
from recsdk.evaluation.files import read_interactions
from recsdk.evaluation.metrics import hit_matrix, ndcg
from recsdk.evaluation.offline import IMPLICIT_EVENT, implicit_dataset
from recsdk.evaluation.splits import random_split
from recsdk.plugin_manager import discover_plugins
from recsdk.types import PluginContext

K = 10
NEW_USER_SHARE = 0.2


def fit(name: str, params: dict[str, Any], train: pd.DataFrame, seed: int) -> Any:
    plugin = discover_plugins()[name].load().from_config(params, name)
    ctx = PluginContext(settings=Settings(seed=seed, device="cpu",
                                          event_weights={IMPLICIT_EVENT: 1.0}),
                        seed=seed, device_setting="cpu")
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=implicit_dataset(train), context=ctx)
    return plugin


def rows_of(plugin: Any, frame: pd.DataFrame, users: list[str]) -> sp.csr_matrix:
    """Users' interactions as rows in the plugin's item space (unknown items dropped)."""
    index = plugin.rows_.item_index
    user_pos = {u: n for n, u in enumerate(users)}
    part = frame[frame["user"].isin(user_pos)]
    codes = part["item"].map(index)
    keep = codes.notna().to_numpy()
    return sp.csr_matrix((np.ones(keep.sum(), np.float32),
                          (part["user"].map(user_pos).to_numpy()[keep],
                           codes.to_numpy()[keep].astype(np.int64))),
                         shape=(len(users), plugin.rows_.n_items))


def ndcg_of(plugin: Any, vectors: np.ndarray, seen: sp.csr_matrix,
            truth: sp.csr_matrix) -> float:
    scores = vectors @ plugin.item_factors_.T.astype(np.float64)
    scores[seen.nonzero()] = -np.inf
    scores[~np.isfinite(scores).any(axis=1)] = 0.0
    top = np.argsort(-scores, axis=1)[:, :K]
    n_rel = np.diff(truth.indptr)
    ok = n_rel > 0
    return float(ndcg(hit_matrix(top, truth)[ok], n_rel[ok]).mean())


def measure(name: str, params: dict[str, Any], frame: pd.DataFrame, seed: int) -> str:
    split = random_split(frame, 0.2, seed)
    truth_all = held_out_truth(split.train, split.test)
    users = sorted(truth_all["user"].astype(str).unique())
    rng = np.random.default_rng(seed)
    new = sorted(rng.choice(users, int(NEW_USER_SHARE * len(users)), replace=False))
    full = fit(name, params, split.train, seed)
    train_new = split.train[split.train["user"].astype(str).isin(new)]
    without = fit(name, params, split.train[~split.train.index.isin(train_new.index)], seed)
    results = []
    for model, label in ((full, "full"), (without, "without")):
        seen = rows_of(model, train_new, new)
        truth = rows_of(model, truth_all, new)
        if label == "full":
            codes = np.array([model.rows_.user_index[u] for u in new])
            stored = model.user_factors_[codes].astype(np.float64)
            results.append(ndcg_of(model, stored, seen, truth))
        with threadpool_limits(1, "blas"):  # as a serving worker runs; see the docstring
            start = time.perf_counter()
            folded = model.fold_in_batch(seen)
            per_user = (time.perf_counter() - start) / len(new) * 1e3
        results.append(ndcg_of(model, np.nan_to_num(folded), seen, truth))
    stored, refold, unseen = results
    return (f"| {name} | {len(new)} | {stored:.4f} | {refold:.4f} | {unseen:.4f} | "
            f"{per_user:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--plugin", action="append", default=None)
    parser.add_argument("--param", action="append", default=[], metavar="NAME.KEY=VALUE")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    frame = read_interactions(args.data / "ml-100k.inter")
    params: dict[str, dict[str, Any]] = {}
    for item in args.param:
        key, value = item.split("=", 1)
        plugin, field = key.split(".", 1)
        params.setdefault(plugin, {})[field] = float(value) if "." in value else int(value)
    print(f"ml-100k, per-user random 80/20 split, seed {args.seed}; "
          f"{NEW_USER_SHARE:.0%} of users held out of training for 'unseen'\n")
    print("| plugin | users | ndcg@10 stored | ndcg@10 refold | ndcg@10 unseen (fold-in) | "
          "fold-in ms/user |")
    print("|---|---|---|---|---|---|")
    for name in args.plugin or ["als", "bpr", "lmf"]:
        print(measure(name, params.get(name, {}), frame, args.seed), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
