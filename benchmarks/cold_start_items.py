"""Item cold start on MovieLens-100K: how well are items nobody trained on ranked?

Protocol: a seeded 20% of the items is held out of training entirely (every rating of
them leaves the training data; they stay in the catalogue with their title, release
year and genres). Each user's test set is their ratings of those items; each user
ranks only the held-out items (the candidates), and NDCG@10 is computed by the
project's evaluator. Users with no training rating are left out (none on ML-100K).

Rows: ``random``; ``tfidf_profile``, the simple baseline computed here (TF-IDF over
genre, decade and title words; a user's profile is the mean of their training items'
rows; cosine to the held-out items); then each ``--plugin`` (default: ``content``,
``two_tower`` and ``multimodal``; a plugin that is not installed is skipped with a
message). ML-100K has no images, so the image branch is not measured here.

    PYTHONPATH=. python benchmarks/cold_start_items.py [--data ../shared/data/ml-100k]
        [--plugin [LABEL=]NAME ...] [--param [LABEL.]KEY=VALUE ...] [--seed 42]
        [--seeds 5] [--holdout 0.2] [-k 10]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recsdk.errors import ConfigurationError, PluginError
from recsdk.evaluation.evaluator import evaluation_input
from recsdk.evaluation.files import read_interactions, read_items
from recsdk.evaluation.offline import (
    FittedPlugin,
    PluginSpec,
    catalog_from_items,
    implicit_dataset,
    scoring_plugins,
)
from recsdk.evaluation.specs import parse_plugin_specs

DEFAULT_PLUGINS = ("content", "two_tower", "multimodal")
#: How each plugin sees ML-100K's item columns (a user's --param overrides these):
#: genres and release year are the content, next to the title.
DATASET_PARAMS: dict[str, dict[str, Any]] = {
    "content": {"text_fields": ["title", "class", "release_year"]},
    "multimodal": {"attributes": ["class", "release_year"]},
}


def cold_split(frame: pd.DataFrame, share: float, seed: int
               ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(train, test, held-out item ids): ``share`` of the items, seeded, out of training."""
    items = np.array(sorted(frame["item"].astype(str).unique()), dtype=object)
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(items, round(share * len(items)), replace=False))
    cold = frame["item"].astype(str).isin(set(held))
    train, test = frame[~cold].reset_index(drop=True), frame[cold].reset_index(drop=True)
    test = test[test["user"].isin(set(train["user"]))].reset_index(drop=True)
    return train, test, held


def ndcg(recommendations: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame,
         items: pd.DataFrame, k: int) -> float:
    truth = test[["user", "item"]].drop_duplicates().astype(str)
    data = evaluation_input(recommendations.astype({"user": str, "item": str}), truth,
                            train=train.astype({"user": str, "item": str}), items=items)
    return float(data.metrics_at(k)["ndcg"])


def top_k_frame(users: np.ndarray, held: np.ndarray, scores: np.ndarray, k: int
                ) -> pd.DataFrame:
    """``user,item,rank,score`` of each row's best ``k`` held-out items (ties by id)."""
    order = np.lexsort((np.broadcast_to(np.arange(len(held)), scores.shape), -scores))[:, :k]
    return pd.DataFrame({
        "user": np.repeat(users, order.shape[1]), "item": held[order].ravel(),
        "rank": np.tile(np.arange(1, order.shape[1] + 1), len(users)),
        "score": np.take_along_axis(scores, order, axis=1).ravel()})


def random_row(users: np.ndarray, held: np.ndarray, seed: int, k: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return top_k_frame(users, held, rng.random((len(users), len(held))), k)


def item_documents(items: pd.DataFrame) -> pd.Series:
    """Genre, decade and title words of each item, as one text (index: item id)."""
    year = pd.to_numeric(items["release_year"], errors="coerce")
    decade = ["" if np.isnan(y) else f"decade{int(y) // 10 * 10}" for y in year]
    genres = items["class"].fillna("").astype(str).str.replace("'", "", regex=False)
    text = genres + " " + pd.Series(decade, index=items.index) + " " + \
        items["title"].fillna("").astype(str)
    return pd.Series(text.to_numpy(), index=items["item"].astype(str))


def tfidf_profile_row(items: pd.DataFrame, train: pd.DataFrame, users: np.ndarray,
                      held: np.ndarray, k: int) -> pd.DataFrame:
    """The simple content baseline: mean TF-IDF row of the user's training items."""
    docs = item_documents(items)
    vectors = normalize(TfidfVectorizer().fit_transform(docs.to_numpy()))
    index = {item: n for n, item in enumerate(docs.index)}
    rows = train["item"].astype(str).map(index).to_numpy()
    user_codes = {u: n for n, u in enumerate(users)}
    cols = train["user"].astype(str).map(user_codes)
    mask = cols.notna().to_numpy()
    history = sp.csr_matrix((np.ones(mask.sum()), (cols[mask].astype(int), rows[mask])),
                            shape=(len(users), len(docs)))
    history.data[:] = 1.0
    profiles = normalize(history @ vectors)
    targets = vectors[[index[i] for i in held]]
    return top_k_frame(users, held, np.asarray((profiles @ targets.T).todense()), k)


def plugin_row(spec: PluginSpec, train: pd.DataFrame, items: pd.DataFrame, users: np.ndarray,
               held: np.ndarray, seed: int, k: int) -> pd.DataFrame:
    dataset = implicit_dataset(train, catalog_from_items(items))
    codes = dataset.item_codes(held)
    allowed = {str(u): codes for u in users}
    with FittedPlugin(spec, dataset, seed=seed) as fitted:
        return fitted.top_k(list(users), k, allowed=allowed).to_frame()


def one_seed(args: argparse.Namespace, frame: pd.DataFrame, items: pd.DataFrame,
             specs: list[PluginSpec], seed: int) -> dict[str, tuple[float, float]]:
    """Every row on the split of ``seed``: label -> (NDCG@k, seconds)."""
    train, test, held = cold_split(frame, args.holdout, seed)
    users = np.array(sorted(test["user"].astype(str).unique()), dtype=object)
    rows: list[tuple[str, Callable[[], pd.DataFrame]]] = []
    if not args.no_baselines:
        rows += [("random", partial(random_row, users, held, seed, args.k)),
                 ("tfidf_profile", partial(tfidf_profile_row, items, train, users, held,
                                           args.k))]
    rows += [(s.label, partial(plugin_row, s, train, items, users, held, seed, args.k))
             for s in specs]
    out = {}
    for label, make in rows:
        start = time.perf_counter()
        try:
            recommendations = make()
        except (PluginError, ConfigurationError) as exc:
            print(f"{label} failed (seed {seed}): {exc}", file=sys.stderr)
            continue
        value = ndcg(recommendations, train, test, items, args.k)
        out[label] = (value, time.perf_counter() - start)
        print(f"seed {seed} {label}: ndcg@{args.k} {value:.4f} ({out[label][1]:.1f} s)",
              file=sys.stderr)
    return out


def specs_from(args: argparse.Namespace) -> list[PluginSpec]:
    installed, broken = scoring_plugins()
    wanted = args.plugin or list(DEFAULT_PLUGINS)
    specs = parse_plugin_specs(wanted, args.param)
    out = []
    for spec in specs:
        if spec.plugin not in installed:
            why = broken.get(spec.plugin, "not installed")
            print(f"skipped plugin {spec.label}: {spec.plugin!r} is not available ({why})",
                  file=sys.stderr)
            continue
        params = {**DATASET_PARAMS.get(spec.plugin, {}), **spec.params}
        out.append(PluginSpec(spec.label, spec.plugin, params))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--plugin", action="append", default=[],
                        help=f"[LABEL=]NAME (default: {', '.join(DEFAULT_PLUGINS)})")
    parser.add_argument("--param", action="append", default=[],
                        help="[LABEL.]KEY=VALUE plugin parameter")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="share of the items held out of training")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--no-baselines", action="store_true",
                        help="only the plugins (no random and tfidf_profile rows)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    frame = read_interactions(args.data / "ml-100k.inter")
    items = read_items(args.data / "ml-100k.item", category_column="class")
    items = items.rename(columns={"movie_title": "title"})
    items["item"] = items["item"].astype(str)
    specs = specs_from(args)
    seeds = list(range(args.seed, args.seed + args.seeds))
    print(f"ml-100k item cold start: {args.holdout:.0%} of items held out, seeds "
          f"{seeds[0]}-{seeds[-1]}, NDCG@{args.k} over the held-out items; python "
          f"{platform.python_version()}, {platform.machine()}", file=sys.stderr)
    results: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for seed in seeds:
        for label, (value, took) in one_seed(args, frame, items, specs, seed).items():
            results.setdefault(label, []).append(value)
            seconds[label] = seconds.get(label, 0.0) + took
    print(f"| model | ndcg@{args.k} mean | sd | min | max | seeds | s per seed |")
    print("|---|---|---|---|---|---|---|")
    for label, values in results.items():
        v = np.array(values)
        sd = v.std(ddof=1) if len(v) > 1 else 0.0
        print(f"| {label} | {v.mean():.4f} | {sd:.4f} | {v.min():.4f} | {v.max():.4f} | "
              f"{len(v)} | {seconds[label] / len(v):.1f} |")
    print(f"total {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
