"""Basket completion ("complete your purchase") on the synthetic shop.

Protocol (leak-free by time):

* the shop: :func:`recsdk.data.synthetic.generate_shop` (``--events``, seeded);
* a purchase basket is the distinct items one user bought in one session (the
  generator's session ids); its time is the start of its session;
* test baskets: the last ``--test-share`` of baskets by time (sessions starting at or
  after the split time T) holding at least two items; training data: every event
  before T (all types), so no event of a test session is trained on;
* for each test basket one item (seeded draw) is hidden and the others are the cart:
  the request has ``context={"cart": [...]}``, and the user's history is their
  training events (newest 200, as ``[cache] recent_events`` would serve) plus the
  cart items as ``add_to_cart`` events of a new session; the test session's views are
  not given (they would name the hidden item);
* every training item is a candidate except the cart's; hit rate@10 is the share of
  baskets whose hidden item is in the top 10, NDCG@10 its 1 / log2(rank + 1). A plugin
  that abstains (None) scores a miss; the hidden item may be new since T (a miss for
  every plugin).

Defaults: ``--tune`` carves a validation split from the training part only (its last
``--test-share`` of baskets, trained on the events before them), runs the grid below
on ``--tune-seeds`` shops and prints its table; the test baskets are never used for it.

Run (prints Markdown tables)::

    PYTHONPATH=. python benchmarks/basket_completion.py \\
        --plugin cooccurrence --plugin popularity --plugin item_knn --seeds 3 --tune

``--plugin`` may repeat; a plugin that is not installed is skipped with a message.
``cooccurrence`` is run once per measure; other plugins with their defaults
(``--param NAME:KEY=VALUE`` overrides, values parsed as JSON when they parse).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS, PluginSettings, Settings
from recsdk.data.synthetic import generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.plugin_manager import PluginManager, discover_plugins
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

K = 10
HISTORY_CAP = 200
MEASURES = ("confidence", "lift", "support")
#: The validation grid of the cooccurrence plugin (measure x pruning x shrinkage x decay).
GRID: dict[str, list[Any]] = {
    "measure": list(MEASURES),
    "min_support": [1, 2, 3],
    "shrinkage": [0.0, 2.0, 10.0, 50.0],
    "half_life_days": [None, 7.0],
}


@dataclass
class Case:
    """One test basket: who, when, the cart shown and the hidden item."""

    user: str
    start: float
    cart: list[str]
    hidden: str


@dataclass
class Split:
    train: pd.DataFrame
    cases: list[Case]


def shop_events(n_events: int, seed: int) -> tuple[pd.DataFrame, Catalog]:
    shop = generate_shop(n_events, seed=seed)
    events = shop.events
    frame = pd.DataFrame({
        "user_id": events["user_id"].astype(str).to_numpy(object),
        "session_id": events["session_id"].astype(str).to_numpy(object),
        "item_id": events["item_id"].astype(str).to_numpy(object),
        "type": events["type"].astype(str).to_numpy(object),
        "timestamp": (events["timestamp"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        .to_numpy(np.float64),
        "value": events["value"].to_numpy(np.float64),
    })
    catalog = Catalog.from_frames(shop.items, shop.categories)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True), catalog


def split(events: pd.DataFrame, test_share: float, seed: int) -> Split:
    """Training events before T and the test cases of baskets starting at or after T."""
    starts = events.groupby("session_id")["timestamp"].min()
    bought = events[events["type"] == "purchase"]
    baskets = bought.groupby("session_id").agg(user=("user_id", "first"),
                                               items=("item_id", lambda s: sorted(set(s))))
    baskets["start"] = starts.reindex(baskets.index).to_numpy()
    cut = float(np.quantile(baskets["start"], 1.0 - test_share))
    test = baskets[(baskets["start"] >= cut) & (baskets["items"].map(len) >= 2)]
    rng = np.random.default_rng(seed)
    cases = []
    for session in sorted(test.index):
        row = test.loc[session]
        items = list(row["items"])
        hidden = items.pop(int(rng.integers(len(items))))
        cases.append(Case(str(row["user"]), float(row["start"]), items, hidden))
    return Split(events[events["timestamp"] < cut].reset_index(drop=True), cases)


class Scorer:
    """One plugin fitted on the training events through its hooks, scoring requests."""

    def __init__(self, label: str, plugin: str, params: Mapping[str, Any],
                 train: pd.DataFrame, catalog: Catalog, seed: int) -> None:
        self.label = label
        self.dataset = InteractionDataset.from_frame(train.drop(columns=["session_id"]),
                                                     catalog, DEFAULT_EVENT_WEIGHTS)
        self.manager = PluginManager(max_workers=1)
        settings = PluginSettings(label, plugin, 1.0, None, dict(params))
        self.manager.enable([settings])
        self.hooks = set(self.manager.hooks_of(label))
        context = PluginContext(
            settings=Settings(seed=seed, device="cpu", event_weights=DEFAULT_EVENT_WEIGHTS,
                              plugins=(settings,)),
            seed=seed, device_setting="cpu", catalog=catalog)
        start = time.perf_counter()
        self._call("recsdk_configure", context=context)
        self._call("recsdk_fit", dataset=self.dataset, context=context)
        self.fit_seconds = time.perf_counter() - start
        self.candidates = CandidateSet(self.dataset.item_ids, np.arange(self.dataset.n_items))
        self.catalog = catalog
        histories = train.sort_values("timestamp", kind="stable").groupby("user_id").tail(
            HISTORY_CAP)
        self.histories = {u: g for u, g in histories.groupby("user_id")}

    def _call(self, hook: str, **kwargs: Any) -> Any:
        if hook not in self.hooks:
            return None
        (result,) = self.manager.call_each(hook, isolate=False, only=[self.label], **kwargs)
        return result.value

    def close(self) -> None:
        self.manager.close()

    def history(self, case: Case) -> UserHistory:
        past = self.histories.get(case.user)
        rows: list[tuple[Any, ...]] = []
        if past is not None:
            rows = list(zip(past["item_id"], past["type"], past["timestamp"], past["value"],
                            past["session_id"], strict=True))
        rows += [(item, "add_to_cart", case.start + i, None, "test-cart")
                 for i, item in enumerate(case.cart)]
        return UserHistory.from_rows(rows)

    def rank_of_hidden(self, case: Case) -> int | None:
        """1-based rank of the hidden item among the candidates, None: not ranked."""
        hidden = self.dataset.item_index.get(case.hidden)
        if hidden is None:
            return None
        request = RecommendationRequest(user_id=case.user, k=K, context={"cart": case.cart},
                                        history=self.history(case), catalog=self.catalog)
        if "recsdk_extract_features" in self.hooks:
            features = self._call("recsdk_extract_features", request=request)
            if features is not None:
                request.features[self.label] = features
        value = self._call("recsdk_score", request=request, candidates=self.candidates)
        if value is None:
            return None
        scores = np.array(value, dtype=np.float64)
        scores[~np.isfinite(scores)] = -np.inf
        scores[self.dataset.item_codes(case.cart)[self.dataset.item_codes(case.cart) >= 0]] \
            = -np.inf
        target = scores[hidden]
        if target == -np.inf:
            return None
        # ties: the hidden item ranks after every item scored the same (pessimistic)
        return int((scores > target).sum() + (scores == target).sum())


def evaluate(scorer: Scorer, cases: Sequence[Case]) -> dict[str, float]:
    hits, gains, abstained = [], [], 0
    start = time.perf_counter()
    for case in cases:
        rank = scorer.rank_of_hidden(case)
        abstained += rank is None and case.hidden in scorer.dataset.item_index
        hit = rank is not None and rank <= K
        hits.append(float(hit))
        gains.append(1.0 / np.log2(rank + 1) if hit else 0.0)
    seconds = time.perf_counter() - start
    return {"hr": float(np.mean(hits)) if hits else float("nan"),
            "ndcg": float(np.mean(gains)) if gains else float("nan"),
            "abstained": abstained / max(len(cases), 1),
            "fit_s": scorer.fit_seconds,
            "ms_per_request": 1000 * seconds / max(len(cases), 1)}


def parse_params(pairs: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        name, _, rest = pair.partition(":")
        key, _, raw = rest.partition("=")
        if not key or not raw:
            raise SystemExit(f"--param {pair!r}: expected NAME:KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name, {})[key] = value
    return out


def variants(plugin: str, overrides: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    given = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
    if plugin == "cooccurrence" and "measure" not in overrides:
        return [(f"cooccurrence ({', '.join(filter(None, [m, given]))})",
                 {**overrides, "measure": m}) for m in MEASURES]
    return [(f"{plugin} ({given})" if given else plugin, dict(overrides))]


def tune(n_events: int, seeds: Sequence[int], test_share: float) -> pd.DataFrame:
    """The grid on validation splits carved from each shop's training part."""
    rows = []
    keys = list(GRID)
    for seed in seeds:
        events, catalog = shop_events(n_events, seed)
        outer = split(events, test_share, seed)
        inner = split(outer.train, test_share, seed + 1000)
        print(f"tuning on seed {seed}: {len(inner.train)} events, "
              f"{len(inner.cases)} validation baskets", file=sys.stderr)
        for values in itertools.product(*GRID.values()):
            params = dict(zip(keys, values, strict=True))
            scorer = Scorer("cooccurrence", "cooccurrence", params, inner.train, catalog, seed)
            result = evaluate(scorer, inner.cases)
            scorer.close()
            rows.append({**params, "seed": seed, "hr": result["hr"], "ndcg": result["ndcg"]})
    table = pd.DataFrame(rows)
    table["half_life_days"] = table["half_life_days"].astype(object).where(
        table["half_life_days"].notna(), "none")
    return (table.groupby(keys, dropna=False)[["hr", "ndcg"]].mean()
            .sort_values(["hr", "ndcg"], ascending=False).reset_index())


def markdown(frame: pd.DataFrame, floats: str = "{:.4f}") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [floats.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", action="append", default=[],
                        help="plugin to evaluate (repeat); default: cooccurrence, popularity")
    parser.add_argument("--param", action="append", default=[],
                        help="NAME:KEY=VALUE parameter of plugin NAME (repeat)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=3, help="shops 0..seeds-1")
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--tune", action="store_true", help="run the validation grid first")
    parser.add_argument("--tune-seeds", type=int, default=2)
    args = parser.parse_args(argv)
    plugins = args.plugin or ["cooccurrence", "popularity"]
    overrides = parse_params(args.param)
    available = discover_plugins()

    if args.tune:
        table = tune(args.events, range(args.tune_seeds), args.test_share)
        print(f"### Validation grid (cooccurrence, {args.events} events, "
              f"{args.tune_seeds} shops, mean over shops)\n")
        print(markdown(table))
        print()

    results: dict[str, list[dict[str, float]]] = {}
    counts = []
    for seed in range(args.seeds):
        events, catalog = shop_events(args.events, seed)
        data = split(events, args.test_share, seed)
        counts.append(len(data.cases))
        for plugin in plugins:
            if plugin not in available:
                if seed == 0:
                    print(f"skipping {plugin!r}: not installed (installed: "
                          f"{', '.join(sorted(available))})", file=sys.stderr)
                continue
            for label, params in variants(plugin, overrides.get(plugin, {})):
                scorer = Scorer(label, plugin, params, data.train, catalog, seed)
                results.setdefault(label, []).append(evaluate(scorer, data.cases))
                scorer.close()
    rows = []
    for label, runs in results.items():
        frame = pd.DataFrame(runs)
        rows.append({"plugin": label,
                     f"HR@{K}": f"{frame['hr'].mean():.4f} ± {frame['hr'].std(ddof=0):.4f}",
                     f"NDCG@{K}": f"{frame['ndcg'].mean():.4f} ± "
                                  f"{frame['ndcg'].std(ddof=0):.4f}",
                     "abstained": f"{frame['abstained'].mean():.3f}",
                     "fit s": f"{frame['fit_s'].mean():.2f}",
                     "ms/request": f"{frame['ms_per_request'].mean():.2f}"})
    print(f"### Basket completion, {args.events} events, {args.seeds} shops "
          f"(test baskets per shop: {', '.join(map(str, counts))})\n")
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
