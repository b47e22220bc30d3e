"""Signals no plugin computes, recorded into benchmarks/blend_probe.py's store so that
``blend_probe.py blend`` can ask whether any of them lifts the configured blend.

Same inner splits as blend_probe (the test split is never read); each signal is a
users x items answer for the inner-test users, saved as ``STORE/SEED/LABEL.npz`` in the
item order of an already recorded ``--like`` label (``ease`` by default). The signals:

* ``valued``: EASE (``--l2``, 250 by default) over the ratings mapped to cell values
  instead of 1: ``graded`` r/5, ``signed`` r-3, ``liked_neg`` +1 for 4-5, -1 for 1-2, 0 for 3;
* ``to_liked``: an asymmetric EASE that reads every rated item and predicts the liked
  ones (ratings >= 4): ``B = P X^T Y - P diag(gamma)`` with ``P = (X^T X + l2 I)^-1``
  and gamma setting ``diag(B)`` to 0;
* ``session``: EASE whose Gram matrix counts pairs rated within one session (a new
  session after a gap of more than ``--gap`` seconds; 0: the same second, probably one
  MovieLens rating page submitted at once);
* ``gap_fit``: for each pair of a user's consecutive training items (a, b), the items
  j with large ``A[a, j] A[j, b]``: what fits *between* them, where ``A`` counts items at
  most ``--window`` apart in users' time orders, normalised by ``sqrt(pop pop)``;
* ``demographic``: log-lift of each item's share among users of the same gender and
  age band (ml-100k.user) over its overall share;
* ``rp3beta``: RP3beta (Paudel et al. 2017, "Updatable, Accurate, Diverse, and Scalable
  Recommendations for Interactive Applications"): the three-step random walk
  user -> item -> user -> item with transition probabilities raised to ``--alpha``, each
  target item's probability divided by its popularity to the ``--beta``, each item's
  ``--neighbours`` largest weights kept;
* ``higher_order``: higher-order EASE (Steck & Liang 2021, "Negative Interactions for
  Improved Collaborative Filtering: Don't go Deeper, Go Higher"): besides the items, the
  pairs of items at least ``--pair-min`` users have both (most frequent first, at most
  ``--pairs``) are inputs, regularised by ``--pair-l2``; no item is predicted from
  itself or from a pair that holds it. Solved in closed form: the unconstrained ridge
  solution per item, projected onto those zero constraints (EASE's derivation with a
  set of zeros in place of the diagonal).

    PYTHONPATH=. python benchmarks/blend_signals.py --seed 42 --signal valued \\
        --mapping signed --label signed [--store runs/blend_probe]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from recsdk_plugins.ease import ease_weights, gram, regularise

from recsdk.evaluation.files import read_frame

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blend_probe

MAPPINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "graded": lambda r: r / 5.0,
    "signed": lambda r: r - 3.0,
    "liked_neg": lambda r: np.where(r >= 4, 1.0, np.where(r <= 2, -1.0, 0.0)),
}
AGE_BANDS = [0, 18, 25, 35, 45, 55, 200]


class Inner:
    """One seed's inner training part, indexed like a recorded answer."""

    def __init__(self, data: Path, store: Path, seed: int, like: str) -> None:
        self.folder = store / str(seed)
        reference = blend_probe.recorded(self.folder, like)
        self.users, self.items = reference["users"], reference["items"]
        train, _ = blend_probe.inner_split(data, seed)
        train = train.assign(user=train["user"].astype(str), item=train["item"].astype(str))
        self.train = train.sort_values(["user", "timestamp", "item"], kind="stable")
        self.all_users = np.array(sorted(self.train["user"].unique()))
        self.rows = pd.Index(self.all_users).get_indexer(self.train["user"])
        self.cols = pd.Index(self.items).get_indexer(self.train["item"])
        if (self.cols < 0).any():
            raise SystemExit(f"{like}: recorded for other items than this split's")
        self.ratings = self.train["rating"].to_numpy(np.float64)
        self.requested = pd.Index(self.all_users).get_indexer(self.users)

    def matrix(self, values: np.ndarray, rows: np.ndarray | None = None) -> sp.csr_matrix:
        rows = self.rows if rows is None else rows
        return sp.csr_matrix((values, (rows, self.cols)),
                             shape=(rows.max() + 1, len(self.items)))

    def binary(self) -> sp.csr_matrix:
        """Users x items, 1 where the user rated the item."""
        x = self.matrix(np.ones_like(self.ratings))
        x.sum_duplicates()
        x.data[:] = 1.0
        return x

    def sequences(self) -> list[np.ndarray]:
        """Each user's items in time order (rows are sorted by user, then time)."""
        return np.split(self.cols, np.flatnonzero(np.diff(self.rows)) + 1)

    def scores(self, x: sp.csr_matrix, b: np.ndarray) -> np.ndarray:
        return np.asarray(x[self.requested] @ b, dtype=np.float32)


def ease(g: np.ndarray, l2: float) -> np.ndarray:
    return ease_weights(regularise(g.astype(np.float32), l2, 0.0))


def valued(inner: Inner, args: argparse.Namespace) -> np.ndarray:
    x = inner.matrix(MAPPINGS[args.mapping](inner.ratings))
    return inner.scores(x, ease(gram(x), args.l2))


def to_liked(inner: Inner, args: argparse.Namespace) -> np.ndarray:
    x = inner.binary()
    y = inner.matrix((inner.ratings >= 4).astype(np.float64))
    p = np.linalg.inv((x.T @ x).toarray() + args.l2 * np.eye(x.shape[1]))
    c = p @ (x.T @ y).toarray()
    b = c - p * (np.diag(c) / np.diag(p))[np.newaxis, :]
    return inner.scores(x, b)


def session(inner: Inner, args: argparse.Namespace) -> np.ndarray:
    t = inner.train
    new = (t["user"] != t["user"].shift()) | (t["timestamp"].diff() > args.gap)
    sessions = np.cumsum(new.to_numpy()) - 1
    m = inner.matrix(np.ones(len(t)), sessions)
    m.sum_duplicates()
    m.data[:] = 1.0
    return inner.scores(inner.binary(), ease(gram(m), args.l2))


def gap_fit(inner: Inner, args: argparse.Namespace) -> np.ndarray:
    n = len(inner.items)
    sequences = inner.sequences()
    a = np.zeros((n, n))
    for s in sequences:
        for d in range(1, args.window + 1):
            np.add.at(a, (s[:-d], s[d:]), 1.0)
    a += a.T
    popularity = np.maximum(np.bincount(inner.cols, minlength=n), 1).astype(np.float64)
    a /= np.sqrt(popularity[:, np.newaxis] * popularity[np.newaxis, :])
    out = np.zeros((len(inner.users), n), dtype=np.float32)
    for k, r in enumerate(inner.requested):
        s = sequences[r]
        out[k] = (a[s[:-1]] * a[s[1:]]).sum(axis=0)
    return out


def demographic(inner: Inner, args: argparse.Namespace) -> np.ndarray:
    people = read_frame(args.data / "ml-100k.user").set_index("user").reindex(inner.all_users)
    if people["gender"].isna().any():
        raise SystemExit("ml-100k.user lacks some users of the split")
    band = pd.cut(people["age"].astype(float), AGE_BANDS).astype(str)
    groups, names = pd.factorize(people["gender"] + band)
    x = inner.binary()
    member = sp.csr_matrix((np.ones(len(groups)), (groups, np.arange(len(groups)))),
                           shape=(len(names), len(groups)))
    counts = np.asarray((member @ x).todense())
    share = counts / counts.sum(axis=1, keepdims=True)
    overall = counts.sum(axis=0) / counts.sum()
    lift = np.log((share + 1e-4) / (overall + 1e-4))
    return lift[groups[inner.requested]].astype(np.float32)


def rp3beta(inner: Inner, args: argparse.Namespace) -> np.ndarray:
    x = inner.binary()
    popularity = np.maximum(x.sum(axis=0).A1, 1)
    to_item = sp.diags(1.0 / np.maximum(x.sum(axis=1).A1, 1)) @ x
    to_user = sp.diags(1.0 / popularity) @ x.T.tocsr()
    to_item.data **= args.alpha
    to_user.data **= args.alpha
    w = (to_user @ to_item).toarray()
    w /= popularity[np.newaxis, :] ** args.beta
    np.fill_diagonal(w, 0.0)
    if args.neighbours < w.shape[1]:
        cut = np.partition(w, -args.neighbours, axis=1)[:, -args.neighbours][:, np.newaxis]
        w[w < cut] = 0.0
    return inner.scores(x, w)


def higher_order(inner: Inner, args: argparse.Namespace) -> np.ndarray:
    x = inner.binary()
    n = x.shape[1]
    together = (x.T @ x).toarray()
    first, second = np.triu_indices(n, 1)
    counts = together[first, second]
    order = np.argsort(-counts, kind="stable")
    kept = order[counts[order] >= args.pair_min][:args.pairs]
    first, second = first[kept], second[kept]
    columns = x.tocsc()
    inputs = sp.hstack([x, columns[:, first].multiply(columns[:, second])]).tocsr()
    l2 = np.concatenate([np.full(n, args.l2), np.full(len(kept), args.pair_l2)])
    g = (inputs.T @ inputs).toarray()
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    holding: list[list[int]] = [[j] for j in range(n)]
    for r, (j, k) in enumerate(zip(first, second, strict=True)):
        holding[j].append(n + r)
        holding[k].append(n + r)
    w = np.empty((len(l2), n))
    for j in range(n):
        ridge = -l2[j] * p[:, j]  # (G + L)^-1 G e_j
        ridge[j] += 1.0
        zero = np.array(holding[j])
        w[:, j] = ridge - p[:, zero] @ np.linalg.solve(p[np.ix_(zero, zero)], ridge[zero])
    return np.asarray(inputs[inner.requested] @ w, dtype=np.float32)


SIGNALS = {"valued": valued, "to_liked": to_liked, "session": session,
           "gap_fit": gap_fit, "demographic": demographic, "rp3beta": rp3beta,
           "higher_order": higher_order}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--store", type=Path, default=Path("runs/blend_probe"))
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--signal", choices=sorted(SIGNALS), required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--like", default="ease", help="recorded label whose users and "
                        "items the answer follows")
    parser.add_argument("--mapping", choices=sorted(MAPPINGS), default="graded",
                        help="valued: rating -> cell value")
    parser.add_argument("--l2", type=float, default=250.0,
                        help="the EASE-based signals (higher_order: the items' l2)")
    parser.add_argument("--gap", type=float, default=0.0, help="session: seconds")
    parser.add_argument("--window", type=int, default=1, help="gap_fit: order distance")
    parser.add_argument("--alpha", type=float, default=1.0, help="rp3beta: walk exponent")
    parser.add_argument("--beta", type=float, default=0.5, help="rp3beta: popularity exponent")
    parser.add_argument("--neighbours", type=int, default=200, help="rp3beta: kept per item")
    parser.add_argument("--pair-min", type=int, default=60,
                        help="higher_order: users a pair needs")
    parser.add_argument("--pairs", type=int, default=5000, help="higher_order: most pairs")
    parser.add_argument("--pair-l2", type=float, default=1000.0, help="higher_order")
    args = parser.parse_args(argv)
    if args.pair_min < 1 or args.pairs < 0 or args.pair_l2 <= 0:
        parser.error("--pair-min must be at least 1, --pairs at least 0, --pair-l2 above 0")
    if args.window < 1 or args.gap < 0 or args.l2 <= 0:
        parser.error("--window must be at least 1, --gap at least 0 and --l2 above 0")
    if args.alpha <= 0 or args.beta < 0 or args.neighbours < 1:
        parser.error("--alpha must be above 0, --beta at least 0 and --neighbours at least 1")
    inner = Inner(args.data, args.store, args.seed, args.like)
    scores = SIGNALS[args.signal](inner, args)
    blend_probe.save(inner.folder / f"{args.label}.npz", scores, inner.users, inner.items)
    print(f"seed {args.seed} {args.label}: saved", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
