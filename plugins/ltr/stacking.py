"""Stacking: the ranker's training data, from scorers fitted without the labels.

The ranker learns how to combine the scorers' answers, so it must see answers on
items the scorers were *not* trained on, as at serving. :func:`carve` holds out a
share of the training interactions (per user, at random or the latest), fresh
instances of the configured scorers are fitted on the rest (:class:`StackedScorers`,
built from the run's settings exactly as recsdk builds the served ones), and each
validation user's candidates are the best ``rank_depth`` of their blend, the user's
remaining training items excluded: the rows ``recsdk_rank`` will see at serving.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.pipeline import blend
from recsdk.plugin_manager import PluginManager
from recsdk.types import CandidateSet, PluginContext

log = logging.getLogger(__name__)

SPLITS = ("random", "time")
#: Scores held in memory at once while scoring validation users (float64 cells).
SCORE_CELLS = 4_000_000


def carve(dataset: InteractionDataset, share: float, how: str, seed: int
          ) -> tuple[InteractionDataset, pd.DataFrame]:
    """(the dataset without the held-out rows, the held-out ``user``/``item`` pairs).

    ``how = "random"``: ``share`` of each user's distinct items, drawn with ``seed``;
    ``"time"``: each user's latest ``share`` of items (by first interaction). A user
    keeps at least one item; the held-out pairs lose every row of that user and item.
    Both parts keep the dataset's vocabularies (codes mean the same items).
    """
    inter = dataset.interactions
    pairs = (pd.DataFrame({"user": inter["user"].to_numpy(), "item": inter["item"].to_numpy(),
                           "t": inter["timestamp"].to_numpy(float)})
             .groupby(["user", "item"], sort=True)["t"].min().reset_index())
    rng = np.random.default_rng(seed)
    key = rng.random(len(pairs)) if how == "random" else -pairs["t"].fillna(np.inf).to_numpy()
    pairs["order"] = pd.Series(key).groupby(pairs["user"].to_numpy()).rank(method="first")
    sizes = pairs.groupby("user")["item"].transform("size").to_numpy()
    held = np.minimum(np.floor(share * sizes + rng.random(len(pairs))), sizes - 1)
    out = pairs[pairs["order"].to_numpy() <= held][["user", "item"]].reset_index(drop=True)
    # int64: int32 codes would overflow at users x items past 2**31
    pair_key = inter["user"].to_numpy(np.int64) * dataset.n_items + inter["item"].to_numpy()
    drop = np.isin(pair_key, out["user"].to_numpy(np.int64) * dataset.n_items
                   + out["item"].to_numpy())
    kept = inter[~drop].reset_index(drop=True)
    rest = InteractionDataset(user_ids=dataset.user_ids, item_ids=dataset.item_ids,
                              interactions=kept, catalog=dataset.catalog)
    return rest, out


class StackedScorers:
    """Fresh instances of the run's blended scorers (weight > 0, rankers left out),
    configured and fitted on ``dataset``: the blend recsdk would serve from them."""

    def __init__(self, context: PluginContext, dataset: InteractionDataset, owner: str
                 ) -> None:
        self.manager = PluginManager(max_workers=1)
        configured = []
        for p in context.settings.plugins:
            if p.weight <= 0:
                continue
            if p.plugin in self.manager.available:
                configured.append(p)
            else:  # a class handed to RecSDK(plugins=...): not buildable from settings
                log.warning("plugins.%s: %r is not an installed plugin, so the ranker "
                            "cannot refit it for stacking; its scores are not features",
                            owner, p.name)
        try:
            self.manager.enable(configured)
            rankers = set(self.manager.implementers("recsdk_rank"))
            self.weights = {n: self.manager.settings[n].weight
                            for n in self.manager.implementers("recsdk_score")
                            if n not in rankers}
            if not self.weights:
                others = sorted(p.name for p in configured if p.name not in rankers) or "none"
                raise ConfigurationError(
                    f"plugins.{owner}: a final ranker needs scoring plugins to rank the "
                    f"candidates of, with weight > 0; the other enabled plugins ({others}) "
                    "score nothing; enable e.g. [plugins.ease] and [plugins.als]")
            self.names = sorted(self.weights)
            for name in [n for n in self.manager.names() if n not in self.weights]:
                self.manager.unregister(name)
            self.manager.call_each("recsdk_configure", isolate=False, context=context)
            self.manager.call_each("recsdk_fit", isolate=False, dataset=dataset,
                                   context=context)
        except BaseException:
            self.manager.close()
            raise
        self.dataset = dataset
        self.candidates = CandidateSet(dataset.item_ids, np.arange(dataset.n_items))

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> StackedScorers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scores(self, user_ids: list[str]) -> dict[str, np.ndarray]:
        """Each scorer's users x items answer (NaN where it gave none)."""
        out: dict[str, np.ndarray] = {}
        n = len(self.candidates)
        for r in self.manager.call_each("recsdk_score_users", isolate=False,
                                        only=self.names, user_ids=user_ids,
                                        candidates=self.candidates):
            value = None if r.value is None else np.asarray(r.value, dtype=np.float64)
            if value is None or value.shape != (len(user_ids), n):
                raise ConfigurationError(
                    f"plugins.{r.plugin}: has no batch scoring (recsdk_score_users) that the "
                    "ranker's stacking can use; leave it out of a pipeline with a ranker")
            out[r.plugin] = value
        return out

    def candidates_of(self, user_ids: list[str], depth: int
                      ) -> Iterator[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
        """Per user: the best ``depth`` item codes of the blend (training items
        excluded, best first, ties by item id) and each scorer's answer on them."""
        n = len(self.candidates)
        batch = max(1, SCORE_CELLS // max(1, n * len(self.names)))
        seen = self.dataset.matrix
        ids = self.dataset.item_ids.astype(str)
        for start in range(0, len(user_ids), batch):
            users = user_ids[start:start + batch]
            answers = self.scores(users)
            codes = self.dataset.user_codes(users)
            for row, (user, code) in enumerate(zip(users, codes, strict=True)):
                given = [(answers[s][row], self.weights[s]) for s in self.names
                         if np.isfinite(answers[s][row]).any()]
                if not given:
                    continue
                blended, _ = blend(given, n)
                order = np.where(np.isfinite(blended), blended, -np.inf)
                order[seen.indices[seen.indptr[code]:seen.indptr[code + 1]]] = -np.inf
                top = _best(order, ids, depth)
                if len(top):
                    yield user, top, {s: answers[s][row][top] for s in self.names}


def _best(order: np.ndarray, ids: np.ndarray, m: int) -> np.ndarray:
    """As the pipeline picks the ranker's candidates: best ``m`` finite, ties by id."""
    m = min(m, int(np.isfinite(order).sum()))
    if m == 0:
        return np.empty(0, dtype=np.int64)
    if m < len(order):
        kth = order[np.argpartition(-order, m - 1)[m - 1]]
        top = np.flatnonzero(order >= kth)
    else:
        top = np.arange(len(order))
    return top[np.lexsort((ids[top], -order[top]))][:m]


@dataclass(frozen=True)
class Split:
    """Validation users for fitting the ranker and for early stopping (disjoint)."""

    fit: np.ndarray
    stop: np.ndarray


def split_users(users: np.ndarray, stop_share: float, seed: int) -> Split:
    rng = np.random.default_rng(seed + 1)
    shuffled = users[rng.permutation(len(users))]
    n_stop = max(1, round(stop_share * len(users))) if len(users) > 1 else 0
    return Split(np.sort(shuffled[n_stop:]), np.sort(shuffled[:n_stop]))
