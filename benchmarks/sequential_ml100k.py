"""Next-item benchmark on MovieLens-100K: leave-last-one-out by time (RecBole-style).

Protocol: each user's interactions are ordered by timestamp (ties keep the file's order);
the last one is the test item, the rest are training. Every item is ranked for every
user, the user's training items filtered out; NDCG@10 and HR@10 over users (one
relevant item each). Exact score ties count in the test item's favour, so the count
baselines are given popularity as a tie-breaker.

Rows, all in one run on the same split:

* ``popularity``: training interactions per item;
* ``markov``: first-order Markov chain, transition counts from the user's last item
  (consecutive pairs of the training sequences), popularity breaking ties;
* ``sknn``: session-based kNN (Jannach & Ludewig, RecSys 2017) over the users' recent
  items: the user's newest ``m`` items against every other user's newest ``m``
  (cosine of the item sets), the ``k`` most similar vote with their similarity;
* ``sasrec`` and ``gru4rec``: the plugins, once per seed each (their variance).

``--validation`` moves everything one step back: each user's second-to-last item is
the target and the training data lose their last item (the test item is never read);
this is where the baselines' ``m``/``k`` and the plugins' defaults were chosen.

``--param key=value`` sets a parameter of both plugins, ``--param gru4rec.key=value``
of one.

    PYTHONPATH=. python benchmarks/sequential_ml100k.py \
        [--data ../shared/data/ml-100k] [--seeds 3] [--validation] \
        [--param [plugin.]key=value ...] [--threads 1] [--jobs 3] \
        [--only baselines|sasrec|gru4rec]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

K = 10
SKNN_M = 10
SKNN_K = 100


def read_sequences(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path / "ml-100k.inter", sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    frame = frame.rename(columns={"user_id": "user_id", "item_id": "item_id"})
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["row"] = np.arange(len(frame))
    return frame.sort_values(["user_id", "timestamp", "row"], kind="stable")


def split_last(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(everything but each user's last interaction, the last interactions)."""
    last = ~frame["user_id"].duplicated(keep="last")
    return frame[~last], frame[last]


def metrics(scores: np.ndarray, seen: sp.csr_matrix, target: np.ndarray) -> dict[str, float]:
    s = np.array(scores, dtype=np.float64)
    s[np.isnan(s)] = -np.inf
    r, c = seen.nonzero()
    s[r, c] = -np.inf
    t = s[np.arange(len(s)), target]
    rank = (s > t[:, None]).sum(axis=1)
    hit = rank < K
    return {"ndcg@10": float(np.mean(np.where(hit, 1 / np.log2(rank + 2), 0.0))),
            "hr@10": float(np.mean(hit))}


def sequences(train: pd.DataFrame, users: np.ndarray,
              item_index: dict[str, int]) -> list[np.ndarray]:
    groups = {u: g["item_id"].map(item_index).to_numpy() for u, g in
              train.groupby("user_id", sort=False)}
    return [groups.get(u, np.zeros(0, dtype=np.int64)) for u in users]


def popularity(seqs: list[np.ndarray], n_items: int) -> np.ndarray:
    return np.bincount(np.concatenate(seqs), minlength=n_items).astype(np.float64)


def markov(seqs: list[np.ndarray], n_items: int) -> np.ndarray:
    pop = popularity(seqs, n_items)
    a = np.concatenate([s[:-1] for s in seqs])
    b = np.concatenate([s[1:] for s in seqs])
    trans = sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(n_items, n_items)).toarray()
    last = np.array([s[-1] for s in seqs])
    return trans[last] + pop[None] / (pop.max() + 1)


def sknn(seqs: list[np.ndarray], n_items: int, m: int, k: int) -> np.ndarray:
    pop = popularity(seqs, n_items)
    recent = [s[-m:] for s in seqs]
    rows = np.repeat(np.arange(len(recent)), [len(r) for r in recent])
    x = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(recent))),
                      shape=(len(seqs), n_items))
    x.data[:] = 1.0
    norm = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
    sim = (x @ x.T).toarray() / np.outer(norm, norm).clip(1e-12)
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[1]:
        cut = np.argpartition(-sim, k - 1, axis=1)[:, k:]
        np.put_along_axis(sim, cut, 0.0, axis=1)
    return sim @ x.toarray() + pop[None] / (pop.max() + 1)


DEEP = ("sasrec", "gru4rec")


def plugin_class(name: str) -> type:
    if name == "sasrec":
        from recsdk_plugins.sasrec import SASRec

        return SASRec
    from recsdk_plugins.gru4rec import GRU4Rec

    return GRU4Rec


def run_plugin(name: str, train: pd.DataFrame, users: np.ndarray, items: np.ndarray,
               seed: int, params: dict[str, Any], threads: int | None,
               ) -> tuple[np.ndarray, dict]:
    from recsdk.config import Settings
    from recsdk.dataset import InteractionDataset
    from recsdk.types import CandidateSet, PluginContext

    frame = train[["user_id", "item_id", "timestamp"]].assign(type="rating")
    dataset = InteractionDataset.from_frame(frame, event_weights={"rating": 1.0})
    plugin = plugin_class(name).from_config({"num_threads": threads, **params}, name)
    context = PluginContext(settings=Settings(seed=seed, device="cpu"), seed=seed,
                            device_setting="cpu")
    plugin.recsdk_configure(context=context)
    start = time.perf_counter()
    plugin.recsdk_fit(dataset=dataset, context=context)
    seconds = time.perf_counter() - start
    candidates = CandidateSet(np.asarray(items, dtype=object), dataset.item_codes(items))
    scores = plugin.recsdk_score_users(user_ids=list(users), candidates=candidates)
    report = plugin.report_.as_dict() if plugin.report_ else {}
    report["fit_seconds"] = seconds
    return scores, report


def plugin_row(name: str, train: pd.DataFrame, users: np.ndarray, items: np.ndarray,
               seed: int, params: dict[str, Any], threads: int | None, seen: sp.csr_matrix,
               target: np.ndarray) -> dict[str, float]:
    """One seed of one plugin, its metrics printed as soon as it is done."""
    scores, report = run_plugin(name, train, users, items, seed, params, threads)
    row = metrics(scores, seen, target)
    print(f"{name} seed {seed}: {row}; epochs {report.get('epochs')} best "
          f"{report.get('best_epoch')} val {report.get('best_score')} "
          f"{report.get('seconds_per_epoch', 0):.2f} s/epoch, fit "
          f"{report['fit_seconds']:.0f} s; history {report.get('history')}", flush=True)
    return row


def parse_params(pairs: list[str], plugin: str) -> dict[str, Any]:
    """The ``key=value`` pairs for ``plugin``: unprefixed keys and ``plugin.key``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        owner, dot, bare = key.rpartition(".")
        if dot and owner != plugin:
            continue
        out[bare] = json.loads(value) if value[:1] in "-0123456789[{tfn" else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42, help="first seed")
    parser.add_argument("--validation", action="store_true",
                        help="score each user's second-to-last item (never the test item)")
    parser.add_argument("--param", action="append", default=[],
                        help="[sasrec.|gru4rec.]key=value (no prefix: both)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs (plugin x seed) trained in parallel")
    parser.add_argument("--only", choices=["baselines", *DEEP], default=None)
    parser.add_argument("--sknn-m", type=int, default=SKNN_M)
    parser.add_argument("--sknn-k", type=int, default=SKNN_K)
    args = parser.parse_args()

    frame = read_sequences(args.data)
    train, test = split_last(frame)
    if args.validation:
        train, test = split_last(train)
    users = test["user_id"].to_numpy()
    items = np.array(sorted(frame["item_id"].unique(), key=int), dtype=object)
    item_index = {t: i for i, t in enumerate(items)}
    seqs = sequences(train, users, item_index)
    n_items = len(items)
    target = test["item_id"].map(item_index).to_numpy()
    rows = np.repeat(np.arange(len(users)), [len(s) for s in seqs])
    seen = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(seqs))),
                         shape=(len(users), n_items))
    target_name = "second-to-last (validation)" if args.validation else "last (test)"
    print(f"ml-100k: {len(users)} users, {n_items} items, {len(train)} training "
          f"interactions; target: {target_name}")
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"python {platform.python_version()}; threads {args.threads}")
    results: list[tuple[str, dict[str, float]]] = []
    if args.only in (None, "baselines"):
        pop = popularity(seqs, n_items)
        results.append(("popularity", metrics(np.tile(pop, (len(users), 1)), seen, target)))
        results.append(("markov", metrics(markov(seqs, n_items), seen, target)))
        results.append((f"sknn (m={args.sknn_m}, k={args.sknn_k})",
                        metrics(sknn(seqs, n_items, args.sknn_m, args.sknn_k), seen, target)))
        for name, row in results:
            print(f"{name}: {row}", flush=True)
    deep = [name for name in DEEP if args.only in (None, name)]
    if deep:
        seeds = list(range(args.seed, args.seed + args.seeds))
        runs = [(name, seed) for name in deep for seed in seeds]
        params = {name: parse_params(args.param, name) for name in deep}
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            per_run = list(pool.map(plugin_row, *zip(*[
                (name, train, users, items, seed, params[name], args.threads, seen, target)
                for name, seed in runs], strict=True)))
        for name in deep:
            per_seed = [row for (n, _), row in zip(runs, per_run, strict=True) if n == name]
            mean = {m: float(np.mean([r[m] for r in per_seed])) for m in per_seed[0]}
            std = {m: float(np.std([r[m] for r in per_seed])) for m in per_seed[0]}
            results.append((f"{name} {params[name] or ''} ({len(per_seed)} seeds)", mean))
            print(f"{name} std over seeds: {std}")
    print("\n| model | NDCG@10 | HR@10 |\n|---|---|---|")
    for name, row in results:
        print(f"| {name} | {row['ndcg@10']:.4f} | {row['hr@10']:.4f} |")


if __name__ == "__main__":
    main()
