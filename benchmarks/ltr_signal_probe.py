"""Is there signal beyond EASE that the ltr ranker could add on MovieLens-100K?

The ``ltr`` pipeline stops near 0.449 NDCG@10 against the issue's aim of 0.47 (EASE
alone 0.444). This probe asks whether the data holds a signal the stacked scorers miss,
before anything is built for it. It never reads a test split: seed 42's per-user
random 80/20 training part is split again the same way (``--inner-seed``), every model
fits the inner 80%, and NDCG@10 (full ranking, training items filtered,
:mod:`recsdk.evaluation.metrics`) is taken on the inner 20%.

Signals, each alone and blended with EASE (per-user min-max scaled, ``EASE + w x
signal``):

* ``adjacency W``: co-occurrence of items at most W apart in a user's time-ordered
  history (weight ``decay^(d-1)``), normalised by ``pop^0.5`` on both sides: what the
  rating interface showed together, which plain co-occurrence does not separate;
* ``time-local popularity H``: how often an item was rated in the H-wide time bins the
  user rated in (a finer cousin of ltr's ``time.share_when_active``);
* ``rp3beta b``: the three-step random walk with popularity penalty ``b``
  (Paudel et al. 2017), a graph scorer none of the stacked plugins is;
* ``popularity``: EASE plus a log-popularity prior.

Run (from the repository root):
    PYTHONPATH=. python benchmarks/ltr_signal_probe.py --data ../shared/data/ml-100k
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.evaluation.files import read_interactions
from recsdk.evaluation.metrics import hit_matrix, ndcg
from recsdk.evaluation.splits import random_split

K = 10
WEIGHTS = (0.1, 0.3, 0.5, 1.0)


def matrix(frame: pd.DataFrame, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(frame)), (frame["u"], frame["i"])), shape=shape)
    m.data[:] = 1.0
    return m


def score_ndcg(scores: np.ndarray, train: sp.csr_matrix, truth: sp.csr_matrix) -> float:
    s = np.array(scores, dtype=np.float64)
    s[train.nonzero()] = -np.inf
    top = np.argpartition(-s, K, axis=1)[:, :K]
    rows = np.arange(len(s))[:, None]
    top = top[rows, np.argsort(-s[rows, top], axis=1)]
    n_relevant = np.diff(truth.indptr)
    tested = n_relevant > 0
    return float(ndcg(hit_matrix(top, truth)[tested], n_relevant[tested]).mean())


def scaled(m: np.ndarray) -> np.ndarray:
    lo, hi = m.min(axis=1, keepdims=True), m.max(axis=1, keepdims=True)
    return (m - lo) / np.maximum(hi - lo, 1e-12)


def ease(x: sp.csr_matrix, l2: float) -> np.ndarray:
    g = (x.T @ x).toarray()
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(x @ b)


def adjacency(train: pd.DataFrame, x: sp.csr_matrix, window: int, decay: float) -> np.ndarray:
    n_items = x.shape[1]
    rows, cols, vals = [], [], []
    for _, g in train.sort_values(["u", "t"], kind="stable").groupby("u"):
        items = g["i"].to_numpy()
        for d in range(1, window + 1):
            w = np.full(len(items) - d, decay ** (d - 1)) if len(items) > d else np.empty(0)
            rows += [items[:-d], items[d:]]
            cols += [items[d:], items[:-d]]
            vals += [w, w]
    t = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n_items, n_items))
    norm = sp.diags(1.0 / np.sqrt(np.asarray(x.sum(axis=0)).ravel() + 1.0))
    return np.asarray((x @ (norm @ t @ norm)).todense())


def time_local(train: pd.DataFrame, shape: tuple[int, int], width_s: float) -> np.ndarray:
    b = ((train["t"] - train["t"].min()) // width_s).astype(np.int64).to_numpy()
    n_bins = int(b.max()) + 1
    items = sp.csr_matrix((np.ones(len(train)), (train["i"], b)), shape=(shape[1], n_bins))
    users = sp.csr_matrix((np.ones(len(train)), (train["u"], b)), shape=(shape[0], n_bins))
    totals = np.asarray(items.sum(axis=0)).ravel()
    share = items @ sp.diags(1.0 / np.maximum(totals, 1.0))
    return np.asarray((users @ share.T).todense())


def rp3beta(x: sp.csr_matrix, beta: float) -> np.ndarray:
    pop = np.asarray(x.sum(axis=0)).ravel()
    p_ui = sp.diags(1.0 / np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1.0)) @ x
    p_iu = sp.diags(1.0 / np.maximum(pop, 1.0)) @ x.T.tocsr()
    w = (p_iu @ p_ui).toarray() * (np.maximum(pop, 1.0) ** -beta)[None, :]
    np.fill_diagonal(w, 0.0)
    return np.asarray(x @ w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seed", type=int, default=42, help="outer split (its train part)")
    parser.add_argument("--inner-seed", type=int, default=43)
    parser.add_argument("--l2", type=float, default=500.0, help="EASE's (ease's default)")
    args = parser.parse_args()

    frame = read_interactions(args.data / "ml-100k.inter")
    outer = random_split(frame, 0.2, args.seed).train
    inner = random_split(outer, 0.2, args.inner_seed)
    users, items = pd.factorize(outer["user"])[1], pd.factorize(outer["item"])[1]

    def coded(f: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"u": users.get_indexer(f["user"]),
                             "i": items.get_indexer(f["item"]),
                             "t": f["timestamp"].to_numpy(np.float64)})

    train, test = coded(inner.train), coded(inner.test)
    test = test[(test["u"] >= 0) & (test["i"] >= 0)]
    shape = (len(users), len(items))
    x, truth = matrix(train, shape), matrix(test, shape)
    x.sort_indices()
    truth.sort_indices()
    base = ease(x, args.l2)
    base_ndcg = score_ndcg(base, x, truth)
    print(f"inner split of seed {args.seed}'s training part (inner seed {args.inner_seed}): "
          f"{len(train):,} train, {len(test):,} test interactions\n")
    print(f"| signal | alone | {' | '.join(f'EASE + {w}' for w in WEIGHTS)} | best gain |")
    print("|---|---|" + "---|" * len(WEIGHTS) + "---|")
    print(f"| EASE (l2 {args.l2:g}) | {base_ndcg:.4f} |" + " |" * len(WEIGHTS) + " |")
    signals: list[tuple[str, Callable[[], np.ndarray]]] = [
        *[(f"adjacency {w} (decay {d})", lambda w=w, d=d: adjacency(train, x, w, d))
          for w, d in ((1, 1.0), (3, 0.7), (10, 0.8), (30, 0.9))],
        *[(f"time-local popularity {h}", lambda s=s: time_local(train, shape, s))
          for h, s in (("1 h", 3600), ("1 day", 86_400), ("1 week", 604_800),
                       ("30 days", 2_592_000))],
        *[(f"rp3beta {b}", lambda b=b: rp3beta(x, b)) for b in (0.3, 0.5, 0.7)],
        ("popularity (log)", lambda: np.broadcast_to(
            np.log1p(np.asarray(x.sum(axis=0)).ravel()), shape).copy()),
    ]
    for name, signal in signals:
        s = signal()
        blended = [score_ndcg(scaled(base) + w * scaled(s), x, truth) for w in WEIGHTS]
        print(f"| {name} | {score_ndcg(s, x, truth):.4f} | "
              + " | ".join(f"{v:.4f}" for v in blended)
              + f" | {max(blended) - base_ndcg:+.4f} |", flush=True)


if __name__ == "__main__":
    main()
