"""Record what the ``ltr`` ranker trains and serves on an inner split of MovieLens-100K,
then retrain only its LightGBM part on the recording: seconds per variant instead of a
pipeline fit (18 minutes for config/ml100k-best.toml on two cores).

``record`` runs ``benchmarks/best_pipeline.py --tune`` for one seed (the seed's
training part split again per-user 80/20; the test split is never read) and saves to an
``.npz``: the stacking lists the ranker was trained and early-stopped on (features,
labels, list lengths), and every served request's candidate rows (in blend order) with
the inner-test labels. It wraps ``LearningToRank._train`` and ``recsdk_rank`` to see
them; the pipeline itself runs unchanged, and the inner NDCG@10 it prints is the
served one.

``replay`` retrains LambdaRank on each recording with the plugin's default settings
and a range of ``blend_prior`` values (the replay of prior 0 reproduces the recorded
NDCG exactly), and scores the blend's own order. ``--upper-bound`` also trains the
ranker on half of the *served* lists, labelled by the inner-test items (no train/serve
shift at all), and scores it on the other half against the blend: whether the features
hold signal beyond the blend at this data size.

    PYTHONPATH=. python benchmarks/ltr_replay.py record --seed 42 --out rec42.npz \
        [--config config/ml100k-best.toml] [--set PLUGIN.KEY=VALUE ...]
    PYTHONPATH=. python benchmarks/ltr_replay.py replay rec42.npz rec43.npz rec44.npz \
        [--priors 0 1 3] [--upper-bound]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from recsdk.evaluation.catalogue import read_catalogue
from recsdk.evaluation.files import read_interactions

sys.path.insert(0, str(Path(__file__).resolve().parent))
import best_pipeline

K = 10
DISCOUNTS = 1.0 / np.log2(np.arange(2, K + 2))
Recording = dict[str, Any]


# ---- record ------------------------------------------------------------------------

def record(args: argparse.Namespace) -> None:
    import recsdk_plugins.ltr as ltr

    config = best_pipeline.load_config(args.config, args.sets)
    frame = read_interactions(args.data / "ml-100k.inter")
    catalogue = read_catalogue(args.data / "ml-100k.item")
    inner_train, inner_test = best_pipeline.ml100k_split(frame, args.seed, tune=True)
    stacked: dict[str, np.ndarray] = {}
    served: list[tuple[str, np.ndarray, np.ndarray]] = []
    rows: dict[str, np.ndarray] = {}

    train = ltr.LearningToRank._train

    def recording_train(self: Any, lgb: Any, names: list[str], fit: list, stop: list,
                        seed: int, depth: int, *rest: Any) -> Any:
        stacked.update(names=np.array(names), seed=np.array(seed), depth=np.array(depth))
        for tag, lists in (("fit", fit), ("stop", stop)):
            stacked[f"{tag}_x"] = np.vstack([x for x, _ in lists])
            stacked[f"{tag}_y"] = np.concatenate([y for _, y in lists])
            stacked[f"{tag}_g"] = np.array([len(y) for _, y in lists])
        return train(self, lgb, names, fit, stop, seed, depth, *rest)

    build = ltr.feature_matrix

    def recording_features(*a: Any, **kw: Any) -> np.ndarray:
        rows["last"] = build(*a, **kw)
        return rows["last"]

    rank = ltr.LearningToRank.recsdk_rank

    @functools.wraps(rank)  # keeps pluggy's hookimpl marker
    def recording_rank(self: Any, request: Any, candidates: Any, scores: Any) -> Any:
        value = rank(self, request, candidates, scores)
        served.append((str(request.user_id), np.asarray(candidates.ids, dtype=str),
                       rows["last"]))
        return value

    ltr.LearningToRank._train = recording_train
    ltr.feature_matrix = recording_features
    ltr.LearningToRank.recsdk_rank = recording_rank
    ndcg, _, degraded, seconds = best_pipeline.served_ndcg(
        config, inner_train, inner_test, K, catalogue)
    print(f"seed {args.seed}: inner NDCG@{K} {ndcg:.4f} ({seconds:.0f} s, {degraded} "
          f"degraded lists)", flush=True)
    truth = best_pipeline.held_out_truth(inner_train, inner_test)
    np.savez_compressed(
        args.out, **stacked, ndcg=np.array(ndcg),
        served_x=np.vstack([x for _, _, x in served]),
        served_g=np.array([len(ids) for _, ids, _ in served]),
        served_ids=np.concatenate([ids for _, ids, _ in served]),
        served_users=np.array([u for u, _, _ in served], dtype=str),
        truth_user=truth["user"].to_numpy().astype(str),
        truth_item=truth["item"].to_numpy().astype(str))


# ---- replay ------------------------------------------------------------------------

def load(path: Path) -> Recording:
    with np.load(path) as z:  # plain arrays only: no pickle
        r: Recording = {k: z[k] for k in z.files}
    truth: dict[str, set[str]] = {}
    for user, item in zip(r["truth_user"], r["truth_item"], strict=True):
        truth.setdefault(str(user), set()).add(str(item))
    r["truth"] = truth
    r["served_off"] = np.concatenate([[0], np.cumsum(r["served_g"])])
    users = np.repeat(r["served_users"], r["served_g"])
    r["served_y"] = np.fromiter((str(i) in truth.get(str(u), ()) for u, i in
                                 zip(users, r["served_ids"], strict=True)), float)
    return r


def positions(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([np.arange(n, dtype=np.float64) for n in lengths])


def served_ndcg(r: Recording, score: np.ndarray, lists: np.ndarray | None = None) -> float:
    """Mean NDCG@10 over the inner-test users (or the served ``lists`` given) when each
    served list is ordered by ``score``; a user without a list counts 0."""
    off, y = r["served_off"], r["served_y"]
    chosen = np.arange(len(r["served_g"])) if lists is None else lists
    total = 0.0
    for j in chosen:
        user = str(r["served_users"][j])
        s, labels = score[off[j]:off[j + 1]], y[off[j]:off[j + 1]]
        order = np.lexsort((np.arange(len(s)), -s))[:K]
        ideal = DISCOUNTS[:min(K, len(r["truth"].get(user, ())))].sum()
        if ideal:
            total += (labels[order] * DISCOUNTS[:len(order)]).sum() / ideal
    return total / (len(r["truth"]) if lists is None else len(chosen))


Lists = tuple[np.ndarray, np.ndarray, np.ndarray]  # features, labels, list lengths


def lambdarank(r: Recording, fit: Lists, stop: Lists, prior: float
               ) -> tuple[np.ndarray, int]:
    """The plugin's own training (``LearningToRank._train``, its default settings, the
    recorded seed and depth) boosted from ``prior``: its scores on every served row and
    its boosting rounds."""
    from recsdk_plugins.ltr import LearningToRank, _lightgbm, blend_prior

    def lists(x: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> list:
        cuts = np.cumsum(lengths)[:-1]
        return list(zip(np.split(x, cuts), np.split(y, cuts), strict=True))

    seed, depth = int(r["seed"]), int(r["depth"])
    ranker = LearningToRank.from_config({"blend_prior": prior}, "ltr")
    booster, best = ranker._train(_lightgbm(), [str(n) for n in r["names"]], lists(*fit),
                                  lists(*stop), seed, depth, prior)
    return booster.predict(r["served_x"]) + blend_prior(r["served_g"], depth, prior), best


def upper_bound(r: Recording) -> list[tuple[float, float]]:
    """(ranker, blend) NDCG@10 on each half of the served users (split with the
    recorded seed), the ranker trained on the other half's served lists (80% fit, 20%
    early stopping)."""
    off, n = r["served_off"], len(r["served_g"])
    perm = np.random.default_rng(int(r["seed"])).permutation(n)
    halves = np.sort(perm[: n // 2]), np.sort(perm[n // 2:])

    def rows(lists: Any) -> np.ndarray:
        return np.concatenate([np.arange(off[j], off[j + 1]) for j in lists])

    def part(lists: Any) -> Lists:
        at = rows(lists)
        return r["served_x"][at], r["served_y"][at], r["served_g"][lists]

    out = []
    for train, test in (halves, halves[::-1]):
        labelled = [j for j in train if r["served_y"][off[j]:off[j + 1]].any()]
        cut = int(0.8 * len(labelled))
        score, _ = lambdarank(r, part(labelled[:cut]), part(labelled[cut:]), 0.0)
        out.append((served_ndcg(r, score, test),
                    served_ndcg(r, -positions(r["served_g"]), test)))
    return out


def replay(args: argparse.Namespace) -> None:
    runs = [load(p) for p in args.recordings]
    lines: dict[str, list[float]] = {}
    rounds: dict[str, list[int]] = {}

    def add(label: str, value: float, best: int | None = None) -> None:
        lines.setdefault(label, []).append(value)
        if best is not None:
            rounds.setdefault(label, []).append(best)

    for r in runs:
        add("recorded (the pipeline's served NDCG)", float(r["ndcg"]))
        add("blend alone (its order)", served_ndcg(r, -positions(r["served_g"])))
        fit = (r["fit_x"], r["fit_y"], r["fit_g"])
        stop = (r["stop_x"], r["stop_y"], r["stop_g"])
        for prior in args.priors:
            score, best = lambdarank(r, fit, stop, prior)
            add(f"ltr, blend_prior = {prior:g}", served_ndcg(r, score), best)
    print(f"inner NDCG@{K} per recording ({', '.join(str(p) for p in args.recordings)})\n")
    print("| variant | " + " | ".join(p.stem for p in args.recordings) + " | mean | rounds |")
    print("|---|" + "---|" * (len(runs) + 2))
    for label, values in lines.items():
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in values)
              + f" | {np.mean(values):.4f} | {' '.join(map(str, rounds.get(label, [])))} |")
    if args.upper_bound:
        print("\nupper bound: ranker trained on half of the served lists (inner-test "
              "labels), scored on the other half\n")
        print("| recording | half | ranker | blend |\n|---|---|---|---|")
        for path, r in zip(args.recordings, runs, strict=True):
            for half, (ranker, blended) in enumerate(upper_bound(r)):
                print(f"| {path.stem} | {half} | {ranker:.4f} | {blended:.4f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="fit the pipeline on a seed's inner split, save")
    rec.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    rec.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1]
                     / "config" / "ml100k-best.toml")
    rec.add_argument("--set", dest="sets", action="append", default=[],
                     help="PLUGIN.KEY=VALUE override, as best_pipeline.py")
    rec.add_argument("--seed", type=int, default=42)
    rec.add_argument("--out", type=Path, required=True)
    rep = sub.add_parser("replay", help="retrain the ranker on recordings, score")
    rep.add_argument("recordings", type=Path, nargs="+")
    rep.add_argument("--priors", type=float, nargs="+",
                     default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0])
    rep.add_argument("--upper-bound", action="store_true")
    args = parser.parse_args(argv)
    (record if args.command == "record" else replay)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
