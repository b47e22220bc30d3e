"""Fit one plugin on a training frame and produce every user's top k, batch-first.

This is the single offline loop that evaluation, tuning and ``recommend-batch`` share,
so every algorithm plugin is measured the same way: fitted through its hooks on
implicit interactions (each row weight 1), scored over the whole training vocabulary
(full ranking), the user's training items filtered out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS, PluginSettings, Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import PluginError
from recsdk.evaluation.files import item_categories
from recsdk.plugin_manager import AvailablePlugin, PluginManager, discover_plugins
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

#: The one event type of offline data; its weight is 1, so every interaction counts alike.
IMPLICIT_EVENT = "interaction"
SCORING_HOOKS = ("recsdk_score_users", "recsdk_score")
#: Score matrices are built this many cells at a time (float64: 256 MiB).
BATCH_CELLS = 2**25
#: What a plugin needs on offline top-N data, where every row is one IMPLICIT_EVENT:
#: parameters that point it at that event type, or None for a plugin that learns from
#: something such data lacks (explicit ratings) and is left out of default runs.
IMPLICIT_DATA_PARAMS: dict[str, dict[str, Any] | None] = {
    "cooccurrence": {"event_types": [IMPLICIT_EVENT]},
    "rating_mf": None,
}


@dataclass(frozen=True)
class PluginSpec:
    """A plugin to evaluate: the label it is reported under, its entry point, parameters."""

    label: str
    plugin: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TopK:
    """Each user's best ``k`` items: codes in the training vocabulary, -1 past the end."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    codes: np.ndarray
    scores: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """``user,item,rank,score`` rows, best first per user."""
        users, positions = np.nonzero(self.codes >= 0)
        return pd.DataFrame({
            "user": self.user_ids[users],
            "item": self.item_ids[self.codes[users, positions]],
            "rank": positions + 1,
            "score": self.scores[users, positions],
        })


def scoring_plugins(extra_plugins: Mapping[str, type] | None = None,
                    only: Iterable[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Installed plugins (or those named in ``only``) that can score users, and those
    that failed to load, with why."""
    available = dict(discover_plugins())
    available.update({name: AvailablePlugin(name, name, None, None, lambda c=cls: c)
                      for name, cls in (extra_plugins or {}).items()})
    wanted = set(available) if only is None else set(only) & set(available)
    scorers, broken = [], {}
    for name, entry in sorted((n, available[n]) for n in wanted):
        try:
            cls = entry.load()
        except Exception as exc:  # a plugin whose optional dependency is missing
            broken[name] = f"{type(exc).__name__}: {exc}"
            continue
        if any(callable(getattr(cls, hook, None)) for hook in SCORING_HOOKS):
            scorers.append(name)
    return scorers, broken


def default_specs(names: Iterable[str]) -> list[PluginSpec]:
    """One spec per plugin name for a default top-N run on implicit data (see
    ``IMPLICIT_DATA_PARAMS``)."""
    return [PluginSpec(n, n, dict(IMPLICIT_DATA_PARAMS.get(n) or {})) for n in names
            if IMPLICIT_DATA_PARAMS.get(n, {}) is not None]


def catalog_from_items(items: pd.DataFrame) -> Catalog:
    """A catalogue of the items (flat category tree), keeping their other columns.

    Each item's category is the first one listed for it; columns such as ``title``,
    ``description`` or ``price`` pass through for content-based plugins.
    """
    pairs = item_categories(items).drop_duplicates("item")
    frame = items.drop(columns=["categories", "category"], errors="ignore") \
        .drop_duplicates("item").rename(columns={"item": "id"})
    frame["id"] = frame["id"].astype(str).to_numpy(dtype=object)
    first = dict(zip(pairs["item"], pairs["category"], strict=True))
    frame["category_id"] = [first.get(i) for i in frame["id"]]
    names = sorted(pairs["category"].unique())
    tree = pd.DataFrame({"id": names, "name": names, "parent_id": [None] * len(names)})
    return Catalog.from_frames(frame.reset_index(drop=True), tree)


def implicit_dataset(train: pd.DataFrame, catalog: Catalog | None = None) -> InteractionDataset:
    """The training frame as a dataset of equal-weight implicit interactions."""
    events = pd.DataFrame({"user_id": train["user"], "item_id": train["item"],
                           "type": IMPLICIT_EVENT})
    if "timestamp" in train:
        events["timestamp"] = train["timestamp"]
    if "rating" in train:
        events["value"] = train["rating"]
    return InteractionDataset.from_frame(events, catalog, {IMPLICIT_EVENT: 1.0}, IMPLICIT_EVENT)


class FittedPlugin:
    """One plugin fitted on a dataset, through the same hooks the SDK calls."""

    def __init__(self, spec: PluginSpec, dataset: InteractionDataset, seed: int = 42,
                 device: str = "auto", extra_plugins: Mapping[str, type] | None = None) -> None:
        self.spec = spec
        self.dataset = dataset
        self.manager = PluginManager(extra_plugins=extra_plugins, max_workers=1)
        settings = PluginSettings(spec.label, spec.plugin, 1.0, None, dict(spec.params))
        try:
            self.manager.enable([settings])
            self.hooks = set(self.manager.hooks_of(spec.label))
            if not self.hooks & set(SCORING_HOOKS):
                raise PluginError(
                    f"plugin {spec.plugin!r} does not score users: it implements neither "
                    f"{' nor '.join(SCORING_HOOKS)} (it has {sorted(self.hooks) or 'no hooks'})")
            weights = {**DEFAULT_EVENT_WEIGHTS, IMPLICIT_EVENT: 1.0}
            context = PluginContext(
                settings=Settings(seed=seed, device=device, event_weights=weights,
                                  plugins=(settings,)),
                seed=seed, device_setting=device)
            start = time.perf_counter()
            self._call("recsdk_configure", context=context)
            self._call("recsdk_fit", dataset=dataset, context=context)
            self.fit_seconds = time.perf_counter() - start
        except BaseException:
            self.manager.close()
            raise
        self.candidates = CandidateSet(dataset.item_ids, np.arange(dataset.n_items))

    def _call(self, hook: str, **kwargs: Any) -> Any:
        if hook not in self.hooks:
            return None
        (result,) = self.manager.call_each(hook, isolate=False, only=[self.spec.label], **kwargs)
        return result.value

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> FittedPlugin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- scoring -------------------------------------------------------------------

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        """A users x items matrix of scores (a writable float64 copy), NaN: cannot score."""
        n = len(self.candidates)
        value = None
        if "recsdk_score_users" in self.hooks:
            value = self._call("recsdk_score_users", user_ids=list(user_ids),
                               candidates=self.candidates)
        if value is None:
            if "recsdk_score" not in self.hooks:
                raise PluginError(f"plugin {self.spec.label!r} returned None from "
                                  "recsdk_score_users and has no recsdk_score")
            return np.vstack([self._score_one(u, n) for u in user_ids]) if len(user_ids) \
                else np.empty((0, n))
        scores = np.array(value, dtype=np.float64)
        if scores.shape != (len(user_ids), n):
            raise PluginError(f"plugin {self.spec.label!r}: recsdk_score_users returned shape "
                              f"{scores.shape}, expected ({len(user_ids)}, {n})")
        return scores

    def _score_one(self, user_id: str, n: int) -> np.ndarray:
        history = [str(i) for i in self.dataset.item_ids[self.dataset.user_items(user_id)]]
        request = RecommendationRequest(
            user_id=user_id, k=n, history=UserHistory(history, [IMPLICIT_EVENT] * len(history)),
            catalog=self.dataset.catalog)
        if "recsdk_extract_features" in self.hooks:
            features = self._call("recsdk_extract_features", request=request)
            if features is not None:
                request.features[self.spec.label] = features
        value = self._call("recsdk_score", request=request, candidates=self.candidates)
        if value is None:
            return np.full(n, np.nan)
        scores = np.asarray(value, dtype=np.float64)
        if scores.shape != (n,):
            raise PluginError(f"plugin {self.spec.label!r}: recsdk_score returned shape "
                              f"{scores.shape}, expected ({n},)")
        return scores

    def top_k(self, user_ids: Sequence[str], k: int, *, filter_seen: bool = True,
              allowed: Mapping[str, np.ndarray] | None = None,
              progress: bool = False) -> TopK:
        """The best ``k`` items for each user, training items filtered out.

        ``allowed`` restricts a user's candidates to the given item codes (sampled
        evaluation); without it every item of the vocabulary competes (full ranking).
        Ties are broken by item id; an item scored NaN is never recommended.
        """
        user_ids = np.asarray(list(user_ids), dtype=object)
        n_items = len(self.candidates)
        k = min(k, n_items)
        codes = np.full((len(user_ids), k), -1, dtype=np.int64)
        best = np.full((len(user_ids), k), np.nan)
        with tqdm(total=len(user_ids), desc=f"scoring {self.spec.label}", unit="user",
                  disable=None if progress else True, leave=False) as bar:
            for rows in _batches(len(user_ids), max(1, BATCH_CELLS // max(n_items, 1))):
                batch = user_ids[rows]
                scores = self.score(batch)
                scores[np.isnan(scores)] = -np.inf
                if filter_seen:
                    self._mask_seen(scores, batch)
                if allowed is not None:
                    keep = np.zeros_like(scores, dtype=bool)
                    for row, user in enumerate(batch):
                        keep[row, allowed.get(user, [])] = True
                    scores[~keep] = -np.inf
                codes[rows], best[rows] = top_k_rows(scores, k)
                bar.update(len(batch))
        return TopK(user_ids, self.dataset.item_ids, codes, best)

    def _mask_seen(self, scores: np.ndarray, user_ids: np.ndarray) -> None:
        user_codes = self.dataset.user_codes(user_ids)
        known = np.flatnonzero(user_codes >= 0)
        seen = self.dataset.matrix[user_codes[known]]
        rows = np.repeat(known, np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and scores of each row's ``k`` largest finite values, best first.

    Linear time per row (no full sort). Equal scores are ordered by column, including
    at the cut, so the result never depends on the partition algorithm; positions
    holding -inf (filtered or unscorable) are -1 / NaN. ``scores`` must hold no NaN.
    """
    n_rows = len(scores)
    if n_rows == 0 or k == 0:
        return np.empty((n_rows, k), dtype=np.int64), np.empty((n_rows, k))
    threshold = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
    above = scores > threshold
    at = scores == threshold
    room = k - above.sum(axis=1, keepdims=True)
    chosen = above | (at & (np.cumsum(at, axis=1) <= room))
    cols = np.nonzero(chosen)[1].reshape(n_rows, k)
    values = np.take_along_axis(scores, cols, axis=1)
    order = np.lexsort((cols, -values), axis=1)
    cols = np.take_along_axis(cols, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    scored = values > -np.inf
    return np.where(scored, cols, -1), np.where(scored, values, np.nan)
