"""Synthetic-shop offline benchmark: each plugin against an oracle that knows the planted truth.

The synthetic shop (:func:`recsdk.data.synthetic.generate_shop`) plants what each user
likes: a few leaf categories with Dirichlet weights, and within a leaf a Zipf
popularity of items. A session views items drawn from exactly that distribution, so
the best any model can do is to rank items by it. The ``oracle`` row does that:

    p(i | u) = ((1 - e) * pref(u, leaf(i)) + e / n_leaves) * q(i | leaf(i))

with ``e`` the shop's exploration rate and ``q`` the within-leaf popularity. Each
plugin's NDCG as a share of the oracle's is how much of the reachable it reaches.

Protocol: every (user, item) pair the user had any event with is one implicit
interaction, dated by its first event; a temporal split holds out the newest 20% of
pairs (one global cut), and users without training pairs are dropped from the test;
full ranking; training items filtered; k = 10. Item categories are the leaves. The
split is temporal, not per-user random as for MovieLens, because a session views
several items of one leaf: a random split would put the same session on both sides,
and a model could then beat the oracle by remembering the session's leaf. Seeds vary
the generated shop itself.

    PYTHONPATH=. python benchmarks/evaluate_shop.py [--events 100000] [--seed 42]
        [--seeds 3] [--plugin [LABEL=]NAME ...] [--param [LABEL.]KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsdk import Plugin, hookimpl
from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError, PluginError
from recsdk.evaluation.comparison import RunResult, evaluate_plugin
from recsdk.evaluation.offline import PluginSpec, default_specs, scoring_plugins
from recsdk.evaluation.specs import parse_plugin_specs
from recsdk.evaluation.splits import temporal_split
from recsdk.interactions import candidate_scores
from recsdk.types import CandidateSet

COLUMNS = ("ndcg", "recall", "hit_rate", "coverage", "novelty")
TEST_RATIO = 0.2
#: heuristics and content models that are not top-N collaborative models; shown when named
DEFAULT_SKIP = {"content", "interest", "filters"}


def planted_probabilities(shop: SyntheticShop) -> pd.DataFrame:
    """Users x items matrix (a frame) of the probability the generator views each item."""
    plan, params = shop._plan, shop.params
    if plan is None or params is None:
        raise ValueError("the shop carries no generation plan")
    n_sorted = len(plan.items_by_leaf)
    leaf_of_sorted = np.searchsorted(plan.leaf_end, np.arange(n_sorted), side="right")
    previous = np.concatenate([[0.0], plan.leaf_cdf[:-1]])
    starts_leaf = np.concatenate([[True], leaf_of_sorted[1:] != leaf_of_sorted[:-1]])
    previous[starts_leaf] = leaf_of_sorted[starts_leaf]
    within = np.empty(n_sorted)
    within[plan.items_by_leaf] = plan.leaf_cdf - previous
    leaf = np.empty(n_sorted, dtype=np.int64)
    leaf[plan.items_by_leaf] = leaf_of_sorted
    pref = np.zeros((len(plan.user_ids), plan.n_leaves))
    rows = np.repeat(np.arange(len(plan.user_ids)), plan.pref_leaf.shape[1])
    weights = np.diff(np.concatenate([np.zeros((len(plan.user_ids), 1)), plan.pref_cum],
                                     axis=1), axis=1).ravel()
    cols = plan.pref_leaf.ravel()
    keep = cols >= 0
    np.add.at(pref, (rows[keep], cols[keep]), weights[keep])
    leaf_p = (1 - params.exploration) * pref + params.exploration / plan.n_leaves
    probs = leaf_p[:, leaf] * within[None, :]
    return pd.DataFrame(probs, index=np.asarray(plan.user_ids, dtype=str),
                        columns=np.asarray(plan.item_ids, dtype=str))


def oracle_plugin(truth: pd.DataFrame) -> type[Plugin]:
    """A plugin class that scores by the planted probabilities."""

    class Oracle(Plugin):
        @hookimpl
        def recsdk_fit(self, dataset: InteractionDataset) -> None:
            self.items_ = dataset.item_ids.astype(str)

        @hookimpl
        def recsdk_score_users(self, user_ids: list[str],
                               candidates: CandidateSet) -> np.ndarray:
            # NaN rows for users and columns for items the generator does not know
            scores = truth.reindex(index=list(user_ids), columns=self.items_).to_numpy()
            return candidate_scores(scores, candidates)

    return Oracle


@dataclass
class Shop:
    """One generated shop, split, with its oracle."""

    train: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    oracle: type[Plugin]
    users: int
    pairs: int


def make_shop(n_events: int, seed: int) -> Shop:
    shop = generate_shop(n_events, seed=seed)
    frame, items = interactions(shop)
    split = temporal_split(frame, TEST_RATIO)
    test = split.test[split.test["user"].isin(set(split.train["user"]))]
    return Shop(split.train, test, items, oracle_plugin(planted_probabilities(shop)),
                frame["user"].nunique(), len(frame))


def interactions(shop: SyntheticShop) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (user, item) pair with any event (its first time), and the items."""
    events = shop.events
    frame = pd.DataFrame({"user": events["user_id"].astype(str),
                          "item": events["item_id"].astype(str),
                          "timestamp": events["timestamp"].astype("int64") // 10**9})
    frame = frame.sort_values("timestamp", kind="stable").drop_duplicates(["user", "item"])
    items = pd.DataFrame({"item": shop.items["id"].astype(str),
                          "category": shop.items["category_id"].astype(str),
                          "title": shop.items["title"].astype(str)})
    return frame.reset_index(drop=True), items


def run(spec: PluginSpec, shop: Shop, seed: int, k: int) -> RunResult | None:
    try:
        return evaluate_plugin(spec, shop.train, shop.test, k=k, items=shop.items, seed=seed,
                               extra_plugins={"oracle": shop.oracle})
    except (PluginError, ConfigurationError) as exc:
        print(f"plugin {spec.label} failed (seed {seed}): {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42, help="first shop seed")
    parser.add_argument("--seeds", type=int, default=3, help="number of shops (seeds)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--param", action="append", default=[])
    args = parser.parse_args(argv)

    seeds = list(range(args.seed, args.seed + args.seeds))
    shops = {s: make_shop(args.events, s) for s in seeds}
    if args.plugin:
        specs = parse_plugin_specs(args.plugin, args.param)
    else:
        names, broken = scoring_plugins({"oracle": shops[seeds[0]].oracle})
        for name, why in broken.items():
            print(f"skipped {name}: {why}", file=sys.stderr)
        specs = default_specs(n for n in names if n not in DEFAULT_SKIP)
    if not any(s.plugin == "oracle" for s in specs):
        specs.append(PluginSpec("oracle", "oracle", {}))
    results: dict[str, list[RunResult]] = {}
    for spec in specs:
        runs = [run(spec, shops[s], s, args.k) for s in seeds]
        if all(r is not None for r in runs):
            results[spec.label] = runs  # type: ignore[assignment]
    oracle = np.mean([r.main["ndcg"] for r in results["oracle"]])
    first = shops[seeds[0]]
    print(f"synthetic shops: {args.events:,} events each, seeds {seeds[0]}-{seeds[-1]} "
          f"(seed {seeds[0]}: {first.users:,} users, {len(first.items):,} items, "
          f"{first.pairs:,} user-item pairs, {len(first.test):,} test pairs); k={args.k}; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    header = [f"{c}@{args.k}" for c in COLUMNS]
    print(f"\n| plugin | {' | '.join(header)} | ndcg sd | share of oracle | fit s |")
    print("|---|" + "---|" * (len(header) + 3))
    for label, runs in sorted(results.items(),
                              key=lambda kv: -np.mean([r.main["ndcg"] for r in kv[1]])):
        means = [np.mean([r.main[c] for r in runs]) for c in COLUMNS]
        ndcg = np.array([r.main["ndcg"] for r in runs])
        fit = np.mean([r.fit_seconds for r in runs])
        cells = " | ".join(f"{m:.4f}" for m in means)
        print(f"| {label} | {cells} | {ndcg.std(ddof=1) if len(ndcg) > 1 else 0:.4f} | "
              f"{ndcg.mean() / oracle:.0%} | {fit:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
