"""Would another scorer lift the blend of config/ml100k-best.toml? Record each plugin's
answers once on the inner splits of MovieLens-100K, then score any weighted blend of
them in seconds instead of a 20-minute pipeline fit.

The test split is never read: each seed's training part (per-user random 80/20, as
benchmarks/best_pipeline.py) is split again the same way; plugins fit the inner 80%
through the hooks the SDK calls (:class:`recsdk.evaluation.offline.FittedPlugin`, the
ml-100k.item catalogue) and their raw users x items answers for the inner-test users
are saved to ``STORE/SEED/LABEL.npz``. The model is seeded with ``--model-seed``
(default: the split's seed). ``--members N`` fits the plugin N times under the model
seeds M..M+N-1 and also saves their mean answer (what ``cfgan``'s ``ensemble = N``
serves), so ensembles of any size can be formed later with ``mean``.

``blend`` scales each answer min-max over all items and averages with the weights, as
the pipeline's :func:`recsdk.pipeline.blend` does, filters the user's training items
and takes NDCG@10 (:mod:`recsdk.evaluation.metrics`) on the inner-test items: the
``--base`` blend, then the base with each ``--add LABEL=W`` in turn. ``search`` asks
whether the base's weights are where the mean NDCG@10 over the seeds peaks: coordinate
ascent, each weight in turn multiplied by each ``--factors`` value while that helps.
``segments`` asks whether weights per segment of users (split by the length of their
training history at ``--edges``; the default 27 and 74 are the tertiles) would beat
one set: each seed is scored with the weights the ascent found on the other seeds.

    PYTHONPATH=. python benchmarks/blend_probe.py record --seed 42 --label cfgan \\
        --plugin cfgan [--param KEY=VALUE ...] [--members 5] [--model-seed M] [--store STORE]
    PYTHONPATH=. python benchmarks/blend_probe.py mean --seed 42 --label cfgan10 \\
        cfgan_0 ... cfgan_9 [--store STORE]
    PYTHONPATH=. python benchmarks/blend_probe.py blend --seeds 42 43 44 \\
        --base ease=1 als=1 bpr=1 cfgan=3 [--add two_tower=1 ...] [--store STORE]
    PYTHONPATH=. python benchmarks/blend_probe.py search --seeds 42 43 44 \\
        --base ease=1 als=1 bpr=1 cfgan=3 [--factors 0 0.5 0.75 1.33 2] [--rounds 2]
    PYTHONPATH=. python benchmarks/blend_probe.py segments --seeds 42 43 44 \\
        --base ease=1 als=1 bpr=1 cfgan=3 [--edges 27 74]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.evaluation.files import read_interactions, read_items
from recsdk.evaluation.metrics import hit_matrix, ndcg
from recsdk.evaluation.offline import (
    FittedPlugin,
    PluginSpec,
    catalog_from_items,
    implicit_dataset,
    top_k_rows,
)
from recsdk.evaluation.specs import parse_value
from recsdk.pipeline import blend

sys.path.insert(0, str(Path(__file__).resolve().parent))
import best_pipeline

K = 10


def inner_split(data: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed's training part split again per user, as ``best_pipeline.py --tune``
    splits it: (inner train, inner test)."""
    return best_pipeline.ml100k_split(read_interactions(data / "ml-100k.inter"), seed,
                                      tune=True)


def record(args: argparse.Namespace) -> None:
    train, test = inner_split(args.data, args.seed)
    items = read_items(args.data / "ml-100k.item", category_column="class")
    dataset = implicit_dataset(train, catalog_from_items(items))
    users = np.array(sorted(set(test["user"]) & set(train["user"])), dtype=str)
    params = {k: parse_value(v) for k, _, v in (p.partition("=") for p in args.param)}
    folder = args.store / str(args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    first = args.seed if args.model_seed is None else args.model_seed
    spec = PluginSpec(args.label, args.plugin, params)
    answers = []
    for member in range(args.members):
        start = time.perf_counter()
        with FittedPlugin(spec, dataset, seed=first + member, device="cpu") as fitted:
            answers.append(fitted.score(users).astype(np.float32))
        name = args.label if args.members == 1 else f"{args.label}_{member}"
        save(folder / f"{name}.npz", answers[-1], users, dataset.item_ids)
        print(f"seed {args.seed} {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if args.members > 1:
        save(folder / f"{args.label}.npz", np.mean(answers, axis=0), users, dataset.item_ids)


def save(path: Path, scores: np.ndarray, users: np.ndarray, items: np.ndarray) -> None:
    np.savez(path, scores=scores, users=users, items=np.asarray(items, dtype=str))


def recorded(folder: Path, label: str) -> Any:
    """A recorded answer (``scores``, ``users``, ``items``); a clear error when absent."""
    path = folder / f"{label}.npz"
    if not path.is_file():
        raise SystemExit(f"{label}: nothing recorded as {path}: run `record --seed "
                         f"{folder.name} --label {label} ...` first")
    return np.load(path)


def mean(args: argparse.Namespace) -> None:
    """The mean answer of recorded members (a seed ensemble)."""
    folder = args.store / str(args.seed)
    runs = [recorded(folder, m) for m in args.members]
    for name, run in zip(args.members[1:], runs[1:], strict=True):
        if not (np.array_equal(run["users"], runs[0]["users"])
                and np.array_equal(run["items"], runs[0]["items"])):
            raise SystemExit(f"{name}: recorded for other users or items than {args.members[0]}")
    save(folder / f"{args.label}.npz", np.mean([r["scores"] for r in runs], axis=0),
         runs[0]["users"], runs[0]["items"])


def weight_pair(text: str) -> tuple[str, float]:
    """``LABEL=WEIGHT`` as (label, weight)."""
    label, _, value = text.partition("=")
    try:
        return label, float(value)
    except ValueError:
        raise SystemExit(f"expected LABEL=WEIGHT with a number, got {text!r}") from None


class Scorer:
    """NDCG@10 of weighted blends of one seed's recorded answers."""

    def __init__(self, data: Path, store: Path, seed: int) -> None:
        self.folder = store / str(seed)
        self.answers: dict[str, np.ndarray] = {}
        recorded = sorted(self.folder.glob("*.npz"))
        if not recorded:
            raise SystemExit(f"nothing recorded in {self.folder}: run `record` first")
        first = np.load(recorded[0])
        self.users, self.items = first["users"], first["items"]
        train, test = inner_split(data, seed)
        self.seen = self._matrix(train)
        self.truth = self._matrix(test)

    def _matrix(self, frame: pd.DataFrame) -> sp.csr_matrix:
        rows = pd.Index(self.users).get_indexer(frame["user"].astype(str))
        cols = pd.Index(self.items).get_indexer(frame["item"].astype(str))
        keep = (rows >= 0) & (cols >= 0)
        m = sp.csr_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])),
                          shape=(len(self.users), len(self.items)))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def answer(self, label: str) -> np.ndarray:
        if label not in self.answers:
            run = recorded(self.folder, label)
            if not (np.array_equal(run["users"], self.users)
                    and np.array_equal(run["items"], self.items)):
                raise SystemExit(f"{label}: recorded for other users or items")
            self.answers[label] = run["scores"].astype(np.float64)
        return self.answers[label]

    @property
    def tested(self) -> np.ndarray:
        """Row numbers of the users with an inner-test item."""
        return np.flatnonzero(np.diff(self.truth.indptr) > 0)

    @property
    def history(self) -> np.ndarray:
        """Each user's number of inner-training items."""
        return np.diff(self.seen.indptr)

    def per_user(self, weighted: dict[str, float], rows: np.ndarray) -> np.ndarray:
        """NDCG@10 of the blend for the users at ``rows`` (each with a test item)."""
        n = len(self.items)
        scores = np.vstack([blend([(self.answer(label)[u], w) for label, w in weighted.items()],
                                  n)[0] for u in rows])
        scores[np.isnan(scores)] = -np.inf
        scores[self.seen[rows].nonzero()] = -np.inf
        top, _ = top_k_rows(scores, K)
        truth = self.truth[rows]
        return ndcg(hit_matrix(top, truth), np.diff(truth.indptr))

    def ndcg(self, weighted: dict[str, float], rows: np.ndarray | None = None) -> float:
        """Mean NDCG@10 over the tested users (or those of them at ``rows``)."""
        return float(self.per_user(weighted, self.tested if rows is None else rows).mean())


def scorers_for(args: argparse.Namespace, labels: set[str]) -> list[Scorer]:
    """One :class:`Scorer` per seed, every label loaded (absent: an error before any figure)."""
    scorers = [Scorer(args.data, args.store, s) for s in args.seeds]
    for scorer in scorers:
        for label in sorted(labels):
            scorer.answer(label)
    return scorers


def mean_ndcg(scorers: list[Scorer], weighted: dict[str, float],
              rows: list[np.ndarray] | None = None) -> tuple[float, list[float]]:
    """The mean over seeds of each seed's NDCG@10 (over ``rows[i]`` for seed i if given)."""
    positive = {k: w for k, w in weighted.items() if w > 0}
    values = [s.ndcg(positive, None if rows is None else rows[i])
              for i, s in enumerate(scorers)]
    return float(np.mean(values)), values


def ascend(scorers: list[Scorer], weights: dict[str, float], factors: list[float],
           rounds: int, rows: list[np.ndarray] | None = None, verbose: bool = False
           ) -> tuple[dict[str, float], float]:
    """Coordinate ascent: each weight in turn multiplied by each factor while the mean
    NDCG@10 over the seeds (over ``rows`` if given) rises; (weights, their NDCG)."""
    best, values = mean_ndcg(scorers, weights, rows)
    if verbose:
        print(f"start {weights}: {best:.4f} ({' '.join(f'{v:.4f}' for v in values)})",
              flush=True)
    for round_ in range(rounds):
        for label in weights:
            for factor in factors:
                trial = {**weights, label: round(weights[label] * factor, 4)}
                if trial == weights or not any(w > 0 for w in trial.values()):
                    continue
                score, values = mean_ndcg(scorers, trial, rows)
                if score > best:
                    best, weights = score, trial
                    if verbose:
                        print(f"  {weights}: {best:.4f} "
                              f"({' '.join(f'{v:.4f}' for v in values)})", flush=True)
        if verbose:
            print(f"after round {round_ + 1}: {weights}: {best:.4f}", flush=True)
    return weights, best


def search(args: argparse.Namespace) -> None:
    weights = dict(weight_pair(text) for text in args.base)
    ascend(scorers_for(args, set(weights)), weights, args.factors, args.rounds, verbose=True)


def segments(args: argparse.Namespace) -> None:
    """Would weights per segment of users (by how many items they have in training)
    beat one set of weights? Left-one-seed-out: each seed is scored with the weights
    that coordinate ascent found on the other seeds, one set for all users ("global")
    and one per segment, against the ``--base`` weights unchanged."""
    base = dict(weight_pair(text) for text in args.base)
    scorers = scorers_for(args, set(base))
    edges = np.asarray(args.edges, dtype=float)
    print(f"| held-out seed | base | global search | per-segment search (edges "
          f"{' '.join(f'{e:g}' for e in edges)}) |\n|---|---|---|---|")
    results = []
    for held, scorer in enumerate(scorers):
        others = [s for i, s in enumerate(scorers) if i != held]
        found, _ = ascend(others, dict(base), args.factors, args.rounds)
        tested = scorer.tested
        parts = np.digitize(scorer.history[tested], edges)
        by_segment = np.empty(len(tested))
        chosen = []
        for part in range(len(edges) + 1):
            rows = [s.tested[np.digitize(s.history[s.tested], edges) == part] for s in others]
            if not all(len(r) for r in rows):
                raise SystemExit(f"segment {part + 1} of {len(edges) + 1} (edges "
                                 f"{args.edges}) has no tested user on a seed: move --edges")
            weights, _ = ascend(others, dict(base), args.factors, args.rounds, rows)
            chosen.append(weights)
            here = parts == part
            if here.any():
                by_segment[here] = scorer.per_user(weights, tested[here])
        row = (scorer.ndcg(base), scorer.ndcg(found), float(by_segment.mean()))
        results.append(row)
        print(f"| {args.seeds[held]} | {row[0]:.4f} | {row[1]:.4f} | {row[2]:.4f} |",
              flush=True)
        print(f"  global {found}; per segment {chosen}", file=sys.stderr, flush=True)
    mean = np.mean(results, axis=0)
    print(f"| mean | {mean[0]:.4f} | {mean[1]:.4f} | {mean[2]:.4f} |")


def blend_table(args: argparse.Namespace) -> None:
    base = dict(weight_pair(text) for text in args.base)
    rows = [("base: " + " ".join(f"{k}={v:g}" for k, v in base.items()), base)]
    for text in args.add:
        label, weight = weight_pair(text)
        rows.append((f"base + {label}={weight:g}", {**base, label: weight}))
    scorers = scorers_for(args, {label for _, weighted in rows for label in weighted})
    print(f"| blend | {' | '.join(str(s) for s in args.seeds)} | mean |")
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for label, weighted in rows:
        _, values = mean_ndcg(scorers, weighted)
        print(f"| {label} | {' | '.join(f'{v:.4f}' for v in values)} | "
              f"{np.mean(values):.4f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    common.add_argument("--store", type=Path, default=Path("runs/blend_probe"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", parents=[common],
                              help="fit a plugin on an inner split, save answers")
    rec.add_argument("--seed", type=int, required=True)
    rec.add_argument("--label", required=True)
    rec.add_argument("--plugin", required=True)
    rec.add_argument("--param", action="append", default=[], help="KEY=VALUE")
    rec.add_argument("--members", type=int, default=1, help="fits under model seeds M..")
    rec.add_argument("--model-seed", type=int, help="M, the first model seed (default SEED)")
    avg = commands.add_parser("mean", parents=[common],
                              help="average recorded answers (an ensemble)")
    avg.add_argument("--seed", type=int, required=True)
    avg.add_argument("--label", required=True)
    avg.add_argument("members", nargs="+")
    tab = commands.add_parser("blend", parents=[common],
                              help="NDCG@10 of blends of recorded answers")
    tab.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    tab.add_argument("--base", nargs="+", required=True, help="LABEL=WEIGHT")
    tab.add_argument("--add", nargs="*", default=[], help="LABEL=WEIGHT, one at a time")
    find = commands.add_parser("search", parents=[common],
                               help="coordinate ascent over the blend's weights")
    find.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    find.add_argument("--base", nargs="+", required=True, help="LABEL=WEIGHT to start from")
    find.add_argument("--factors", type=float, nargs="+", default=[0, 0.5, 0.75, 1.33, 2])
    find.add_argument("--rounds", type=int, default=2)
    seg = commands.add_parser("segments", parents=[common],
                              help="weights per user segment, chosen leaving one seed out")
    seg.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    seg.add_argument("--base", nargs="+", required=True, help="LABEL=WEIGHT to start from")
    seg.add_argument("--edges", type=float, nargs="+", default=[27, 74],
                     help="training-history lengths that bound the segments")
    seg.add_argument("--factors", type=float, nargs="+", default=[0, 0.5, 0.75, 1.33, 2])
    seg.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command in ("search", "segments") and (args.rounds < 1 or min(args.factors) < 0):
        parser.error(f"{args.command}: --rounds must be at least 1 and --factors not negative")
    if args.command == "segments" and (len(args.seeds) < 2 or list(args.edges) != sorted(
            set(args.edges))):
        parser.error("segments: needs at least two --seeds and strictly rising --edges")
    {"record": record, "mean": mean, "blend": blend_table, "search": search,
     "segments": segments}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
