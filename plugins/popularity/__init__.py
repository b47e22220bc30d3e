"""Popularity plugins: global, per category, and time-decayed trending.

They use only public hooks, which proves the hooks suffice end to end, and they are
the cold-start fallback: every user, even one never seen, gets a sensible list.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from marshmallow import RAISE, Schema, fields, validate

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset
from recsdk.retrieval import PoolSettings, pool_answer, served_items, top_positions
from recsdk.types import CandidateSet, Event, PluginContext, RecommendationRequest, Retrieved

if TYPE_CHECKING:
    from recsdk.engines.spark_data import SparkEvents

COUNT_MODES = ("users", "events", "weight")


class PopularityParams(Schema):
    class Meta:
        unknown = RAISE

    count = fields.String(
        load_default="users", validate=validate.OneOf(COUNT_MODES),
        metadata={"description": "users: distinct users per item; events: events per "
                  "item; weight: summed implicit-feedback weight"},
    )
    window_days = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "count only events this recent (before the newest one)"},
    )


def item_popularity(dataset: InteractionDataset, count: str,
                    window_days: float | None = None) -> np.ndarray:
    """Popularity of every item code, by the chosen ``count`` mode.

    Works on the interaction columns as arrays, not on a filtered copy of the frame:
    at 100M events a copy and pandas' hashing of (user, item) pairs cost gigabytes.
    """
    inter = dataset.interactions
    weight = inter["weight"].to_numpy()
    keep = weight > 0
    if window_days is not None and len(inter):
        stamps = inter["timestamp"].to_numpy()
        keep &= stamps >= stamps.max() - window_days * 86400
    items = inter["item"].to_numpy()
    n = dataset.n_items
    if count == "events":
        return np.bincount(items[keep], minlength=n).astype(np.float64)
    if count == "weight":
        return np.bincount(items[keep], weights=weight[keep], minlength=n)
    return np.bincount(_distinct_pairs(inter["user"].to_numpy()[keep], items[keep], n)
                       % max(n, 1), minlength=n).astype(np.float64)


def _distinct_pairs(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """The distinct (user, item) pairs as ``user * n_items + item`` (int64), sorted
    in place rather than hashed."""
    keys = users.astype(np.int64) * n_items
    keys += items
    keys.sort()
    if len(keys) < 2:
        return keys
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def _normalised(popularity: np.ndarray) -> np.ndarray:
    """Popularity divided by its maximum (unchanged when empty or all zero)."""
    top = popularity.max() if len(popularity) else 0.0
    return popularity / top if top > 0 else popularity


def _lookup(values: np.ndarray, codes: np.ndarray, missing: float = 0.0) -> np.ndarray:
    out = np.full(len(codes), missing, dtype=np.float64)
    known = (codes >= 0) & (codes < len(values))
    out[known] = values[codes[known]]
    return out


def _same_for_all(row: np.ndarray, n_users: int) -> np.ndarray:
    return np.broadcast_to(row, (n_users, len(row)))


class PoolRetriever:
    """The ``[pipeline]`` pool settings of a built-in pool retriever, read at configure
    (a plugin built directly, without configure, gets the defaults)."""

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self.pools_ = PoolSettings.from_pipeline(context.settings.pipeline)

    def pool_settings(self) -> PoolSettings:
        pools = getattr(self, "pools_", None)
        if pools is None:
            pools = self.pools_ = PoolSettings()
        return pools


class GlobalPopularity(PoolRetriever, Plugin):
    """Ranks items by how many users (or events) they had; scores every user alike.

    Retrieves its ``[pipeline] pool_size`` most popular items (the pool, kept sorted
    from training) when pools are on."""

    Params = PopularityParams

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset) -> None:
        self.popularity_ = item_popularity(dataset, self.params["count"],
                                           self.params["window_days"])
        self._pool(dataset)

    def _pool(self, dataset: InteractionDataset) -> None:
        self.item_ids_ = np.asarray(dataset.item_ids, dtype=object)
        self.pool_ = top_positions(self.popularity_, self.pool_settings().size)

    def fit_spark(self, data: SparkEvents, context: PluginContext) -> None:
        """``recsdk_fit`` with Spark SQL (``recsdk train --engine spark``)."""
        from recsdk_plugins.popularity.spark import item_popularity as on_spark

        self.popularity_ = on_spark(data, self.params["count"], self.params["window_days"])
        self._pool(data.vocabulary)

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        return {"popularity": self.popularity_} if hasattr(self, "popularity_") else None

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        self.popularity_ = np.asarray(state["popularity"], dtype=np.float64)
        self._pool(dataset)

    @hookimpl
    def recsdk_retrieve_candidates(self, request: RecommendationRequest,
                                   n: int) -> Retrieved | None:
        pools = self.pool_settings()
        if not hasattr(self, "pool_") or not pools.active(served_items(request,
                                                                   len(self.popularity_))):
            return None
        codes = self.pool_[:pools.take(n)]
        return pool_answer(self.item_ids_, codes, self.popularity_[codes])

    @hookimpl
    def recsdk_score(self, candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "popularity_"):
            return None
        return _lookup(self.popularity_, candidates.codes)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "popularity_"):
            return None
        return _same_for_all(_lookup(self.popularity_, candidates.codes), len(user_ids))


@dataclass
class _CategoryIndex:
    """A catalogue's categories as arrays: ``paths`` (categories x tree nodes, 1 where
    the node is on the category's root path; the last row is "no category"),
    ``by_position`` (category row of each catalogue position) and ``by_code`` (of each
    trained item code), so a request's scores are one sparse product and a gather."""

    catalog: Catalog
    nodes: dict[str, int]
    paths: sp.csr_matrix
    by_position: np.ndarray
    by_code: np.ndarray
    #: per category row, trained item codes by popularity, best first (``pool_codes``
    #: from ``pool_start[row]`` to ``pool_start[row + 1]``); built on first use
    pool_start: np.ndarray | None = None
    pool_codes: np.ndarray | None = None

    @classmethod
    def build(cls, catalog: Catalog, item_ids: np.ndarray | None,
              path: Callable[[Catalog, str | None], list[str]]) -> _CategoryIndex:
        codes, names = pd.factorize(np.asarray(catalog.category, dtype=object))
        nodes: dict[str, int] = {}
        rows, cols = [], []
        for row, name in enumerate(names):
            for node in path(catalog, name):
                rows.append(row)
                cols.append(nodes.setdefault(node, len(nodes)))
        none = len(names)  # the row of items without a (known) category: no node
        paths = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                              shape=(none + 1, max(len(nodes), 1)))
        # null categories and position -1 (not in the catalogue) get the "none" row
        by_position = np.append(np.where(codes >= 0, codes, none).astype(np.int64), none)
        by_code = (by_position[catalog.positions(item_ids)] if item_ids is not None
                   else np.zeros(0, dtype=np.int64))
        return cls(catalog, nodes, paths, by_position, by_code)

    def pools(self, popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each category's items by popularity (one sort per catalogue snapshot), so a
        request takes its categories' heads without looking at other items."""
        if self.pool_start is None or self.pool_codes is None:
            rows = self.by_code[:len(popularity)]
            codes = np.lexsort((np.arange(len(rows)), -popularity[:len(rows)], rows))
            counts = np.bincount(rows, minlength=self.paths.shape[0])
            self.pool_start = np.concatenate([[0], np.cumsum(counts)])
            self.pool_codes = codes.astype(np.int64)
        return self.pool_start, self.pool_codes

    def categories_of(self, candidates: CandidateSet) -> np.ndarray:
        """Category row of each candidate: by trained code where it has one, else by
        catalogue position (items added since training), else "no category"."""
        codes = np.asarray(candidates.codes)
        known = (codes >= 0) & (codes < len(self.by_code))
        out = np.empty(len(codes), dtype=np.int64)
        out[known] = self.by_code[codes[known]]
        if not known.all():
            out[~known] = self.by_position[self.catalog.positions(
                np.asarray(candidates.ids)[~known])]
        return out


class CategoryPopularity(PoolRetriever, Plugin):
    """Popular items in the categories (at every level of the tree) the user touched.

    score = sum over the item's category path of the user's share of history in that
    category, plus a small popularity term that orders items within a category.
    Abstains for users without history; the global popularity fallback serves them.
    With pools on it retrieves the most popular items of the categories of the user's
    history, each category's share of ``[pipeline] pool_size`` following its share of
    the history (per-category pools sorted once per catalogue snapshot).
    """

    Params = PopularityParams
    POPULARITY_TIE_BREAK = 0.01

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset) -> None:
        pop = item_popularity(dataset, self.params["count"], self.params["window_days"])
        self._fitted(_normalised(pop), dataset)
        self._training = dataset  # for the offline batch path only; not saved

    def fit_spark(self, data: SparkEvents, context: PluginContext) -> None:
        """``recsdk_fit`` with Spark SQL (``recsdk train --engine spark``)."""
        from recsdk_plugins.popularity.spark import item_popularity as on_spark

        pop = on_spark(data, self.params["count"], self.params["window_days"])
        self._fitted(_normalised(pop), data.vocabulary)

    def _fitted(self, popularity: np.ndarray, dataset: InteractionDataset) -> None:
        self.popularity_ = popularity
        self.item_ids_ = np.asarray(dataset.item_ids, dtype=object)
        self._paths: dict[str | None, list[str]] = {}
        self._training: InteractionDataset | None = None
        self._index_ = self._built_index(dataset.catalog)

    def _item_nodes(self, dataset: InteractionDataset) -> sp.csr_matrix:
        """Items x category-tree nodes: 1 where the node is on the item's path."""
        catalog = dataset.catalog
        positions = catalog.positions(dataset.item_ids)
        nodes: dict[str, int] = {}
        rows, cols = [], []
        for code, pos in enumerate(positions):
            if pos < 0:
                continue
            for node in self._path(catalog, catalog.category[pos]):
                rows.append(code)
                cols.append(nodes.setdefault(node, len(nodes)))
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                             shape=(dataset.n_items, max(len(nodes), 1)))

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        """The same score for every user at once, their histories being the training data."""
        dataset = getattr(self, "_training", None)
        if dataset is None:
            return None
        if getattr(self, "_item_nodes_", None) is None:
            self._item_nodes_ = self._item_nodes(dataset)
        codes = dataset.user_codes(user_ids)
        history = dataset.matrix[np.maximum(codes, 0)]
        history.data[:] = 1.0
        history = sp.diags((codes >= 0).astype(float)) @ history
        n_hist = np.asarray(history.sum(axis=1)).ravel()
        affinity = sp.diags(np.divide(1.0, n_hist, out=np.zeros_like(n_hist),
                                      where=n_hist > 0)) @ history @ self._item_nodes_
        known = candidates.codes >= 0
        scores = np.zeros((len(user_ids), len(candidates)))
        scores[:, known] = (affinity @ self._item_nodes_[candidates.codes[known]].T).toarray()
        scores += self.POPULARITY_TIE_BREAK * _lookup(self.popularity_, candidates.codes)
        scores[n_hist == 0] = np.nan  # no history: abstain, as recsdk_score does
        return scores

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        return {"popularity": self.popularity_} if hasattr(self, "popularity_") else None

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        self.popularity_ = np.asarray(state["popularity"], dtype=np.float64)
        self.item_ids_ = np.asarray(dataset.item_ids, dtype=object)
        self._paths = {}
        self._training = None
        self._index_ = self._built_index(dataset.catalog)

    def _path(self, catalog: Catalog, category: str | None) -> list[str]:
        paths = getattr(self, "_paths", None)
        if paths is None:
            paths = self._paths = {}
        if category not in paths:
            paths[category] = catalog.tree.path(category)
        return paths[category]

    def _built_index(self, catalog: Catalog) -> _CategoryIndex:
        """The catalogue's category paths and per-category pools as arrays."""
        index = _CategoryIndex.build(catalog, getattr(self, "item_ids_", None), self._path)
        if hasattr(self, "popularity_"):
            index.pools(self.popularity_)
        return index

    def _category_index(self, catalog: Catalog) -> _CategoryIndex:
        """The index of the request's catalogue snapshot, so that a request does no
        per-item Python work. Built when the run is trained or loaded and when the SDK
        refreshes the catalogue (``recsdk_catalog_refreshed``), off the request path;
        here only for a snapshot that came another way."""
        cached = getattr(self, "_index_", None)
        if cached is None or cached.catalog is not catalog:
            cached = self._index_ = self._built_index(catalog)
        return cached

    @hookimpl
    def recsdk_catalog_refreshed(self, catalog: Catalog) -> None:
        if hasattr(self, "popularity_"):
            self._index_ = self._built_index(catalog)

    def _affinity_scores(self, catalog: Catalog, affinity: Mapping[str, float],
                         candidates: CandidateSet) -> np.ndarray:
        index = self._category_index(catalog)
        node_weights = np.zeros(index.paths.shape[1])
        for node, share in affinity.items():
            column = index.nodes.get(node)
            if column is not None:
                node_weights[column] += share
        base = (index.paths @ node_weights)[index.categories_of(candidates)]
        return base + self.POPULARITY_TIE_BREAK * _lookup(self.popularity_, candidates.codes)

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        catalog = request.catalog
        if not hasattr(self, "popularity_") or catalog is None or not request.history.item_ids:
            return None
        counts: dict[str, float] = {}
        for item in request.history.item_ids:
            for c in self._path(catalog, catalog.category_of(item)):
                counts[c] = counts.get(c, 0.0) + 1.0
        if not counts:
            return None
        total = float(len(request.history.item_ids))
        affinity = {c: n / total for c, n in counts.items()}
        return self._affinity_scores(catalog, affinity, candidates)

    @hookimpl
    def recsdk_retrieve_candidates(self, request: RecommendationRequest,
                                   n: int) -> Retrieved | None:
        catalog, pools = request.catalog, self.pool_settings()
        history = request.history.item_ids
        if (not hasattr(self, "popularity_") or catalog is None or not history
                or not pools.active(served_items(request, len(self.popularity_)))):
            return None
        index = self._category_index(catalog)
        start, codes = index.pools(self.popularity_)
        none = index.paths.shape[0] - 1
        rows = index.by_position[index.catalog.positions(list(history))]
        rows, counts = np.unique(rows[rows != none], return_counts=True)
        if not len(rows):
            return None
        order = np.lexsort((rows, -counts))  # the user's main categories first
        rows, share = rows[order], counts[order] / len(history)
        quota = pools.take(n)
        # each category's share of the quota, at least one item each, up to the quota
        takes = np.maximum(1, np.floor(quota * counts[order] / counts.sum())).astype(int)
        parts = [codes[start[r]:start[r] + min(t, start[r + 1] - start[r])]
                 for r, t in zip(rows.tolist(), takes.tolist(), strict=True)]
        picked = np.concatenate(parts)[:quota]
        scores = (np.repeat(share, [len(p) for p in parts])[:quota]
                  + self.POPULARITY_TIE_BREAK * self.popularity_[picked])
        best = np.argsort(-scores, kind="stable")
        return pool_answer(self.item_ids_, picked[best], scores[best])

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        if not hasattr(self, "popularity_") or catalog is None:
            return None
        path = self._path(catalog, catalog.category_of(item_id))
        if not path:
            return None
        return self._affinity_scores(catalog, dict.fromkeys(path, 1.0), candidates)


class TrendingParams(Schema):
    class Meta:
        unknown = RAISE

    half_life_hours = fields.Float(
        load_default=72.0, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "an event's weight halves every this many hours"},
    )


class TrendingPopularity(PoolRetriever, Plugin):
    """Time-decayed popularity, updated as events arrive (no retraining needed).

    score_i = sum over events e on i of weight_e * 2 ** (-(t_now - t_e) / half_life).

    ``t_now`` is the data's own clock: the newest event time seen, so offline data sets
    trend as of their end. Live events move it forward, but never further past the
    newest training event than the wall clock has moved since training. On stale data
    (events from 2024 served in 2026) a live event therefore counts like one fresh event
    of the data, at most ``weight_e``, instead of decaying every stored event to
    nothing and topping every cold-start list on its own; on live data the clock
    follows the events. The idle time between the newest training event and the
    training itself is not counted. An event dated ahead of the clock counts as "now".

    With pools on it retrieves its ``[pipeline] pool_size`` top items. Decay scales
    every score alike and keeps their order, so only items with new events can climb:
    the pool is the top items at training plus every item an event touched since,
    trimmed back to the top when it has grown; it always holds the true top.
    """

    Params = TrendingParams

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        self._lock = threading.Lock()
        #: Wall-clock seconds (UNIX); tests replace it.
        self.wall_clock: Callable[[], float] = time.time

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset) -> None:
        inter = dataset.interactions
        self.item_index_ = dict(dataset.item_index)
        self.trained_at_ = self.wall_clock()
        if len(inter) == 0:  # no data clock yet: follow the wall clock
            self.scores_, self.reference_time_ = np.zeros(dataset.n_items), self.trained_at_
            self.data_end_ = self.reference_time_
            self._start_pool()
            return
        t = inter["timestamp"].to_numpy(float)
        self.reference_time_ = self.data_end_ = float(np.nanmax(t))
        decay = np.exp2(-(self.reference_time_ - t) / self._half_life_s)
        self.scores_ = np.bincount(inter["item"].to_numpy(),
                                   weights=inter["weight"].to_numpy() * decay,
                                   minlength=dataset.n_items)
        self._start_pool()

    def _start_pool(self) -> None:
        #: item id of each score slot (trained items, then items first seen live)
        ids: list[str] = [""] * len(self.scores_)
        for item, code in self.item_index_.items():
            if code < len(ids):
                ids[code] = item
        self.slot_ids_ = ids
        self.pool_ = top_positions(self.scores_, self.pool_settings().size)

    def fit_spark(self, data: SparkEvents, context: PluginContext) -> None:
        """``recsdk_fit`` with Spark SQL (``recsdk train --engine spark``)."""
        from recsdk_plugins.popularity.spark import trending_scores

        self.item_index_ = dict(data.vocabulary.item_index)
        self.trained_at_ = self.wall_clock()
        self.reference_time_ = self.data_end_ = data.data_end
        self.scores_ = trending_scores(data, self._half_life_s)
        self._start_pool()

    @property
    def _half_life_s(self) -> float:
        return self.params["half_life_hours"] * 3600.0

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "scores_"):
            return None
        return {"scores": self.scores_, "reference_time": np.array([self.reference_time_]),
                "clock_origin": np.array([self.data_end_, self.trained_at_])}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        self.scores_ = np.asarray(state["scores"], dtype=np.float64)
        self.reference_time_ = float(state["reference_time"][0])
        if "clock_origin" in state:
            origin = state["clock_origin"]
            self.data_end_, self.trained_at_ = float(origin[0]), float(origin[1])
        else:  # saved before the clock was bounded: start it at load
            self.data_end_, self.trained_at_ = self.reference_time_, self.wall_clock()
        self.item_index_ = dict(dataset.item_index)
        self._start_pool()

    def clock_limit(self) -> float:
        """The furthest the data clock may be now: data end plus wall time since training."""
        return self.data_end_ + max(0.0, self.wall_clock() - self.trained_at_)

    @hookimpl
    def recsdk_collect_event(self, events: list[Event], weights: Mapping[str, float]) -> None:
        if not hasattr(self, "scores_"):
            return
        with self._lock:
            limit = self.clock_limit()
            touched: list[int] = []
            for e in sorted(events, key=lambda e: e.timestamp):
                t = min(e.timestamp.timestamp(), max(limit, self.reference_time_))
                if t > self.reference_time_:
                    self.scores_ = self.scores_ * np.exp2(
                        -(t - self.reference_time_) / self._half_life_s)
                    self.reference_time_ = t
                code = self.item_index_.get(e.item_id)
                if code is None:  # a new item: give it a slot
                    code = self.item_index_[e.item_id] = len(self.scores_)
                    self.scores_ = np.append(self.scores_, 0.0)
                    if hasattr(self, "slot_ids_"):
                        self.slot_ids_.append(e.item_id)
                w = weights.get(e.type, 1.0)
                self.scores_[code] += w * np.exp2(-(self.reference_time_ - t) / self._half_life_s)
                touched.append(code)
            if hasattr(self, "pool_") and touched:
                self._grow_pool(np.asarray(touched, dtype=np.int64))

    def _grow_pool(self, codes: np.ndarray) -> None:
        """Add the items events touched; past four times the pool size, keep the top
        (caller holds the lock)."""
        pool = np.union1d(self.pool_, codes)
        size = self.pool_settings().size
        if len(pool) > 4 * size:
            pool = pool[top_positions(self.scores_[pool], size)]
        self.pool_ = pool

    @hookimpl
    def recsdk_retrieve_candidates(self, request: RecommendationRequest,
                                   n: int) -> Retrieved | None:
        pools = self.pool_settings()
        if not hasattr(self, "pool_") or not pools.active(served_items(request,
                                                                   len(self.scores_))):
            return None
        with self._lock:
            pool, scores, ids = self.pool_, self.scores_, self.slot_ids_
            codes = pool[top_positions(scores[pool], pools.take(n))]
            return Retrieved([ids[c] for c in codes.tolist()], scores[codes].tolist())

    @hookimpl
    def recsdk_score(self, candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "scores_"):
            return None
        scores = self.scores_
        # codes index the fitted vocabulary, which is the head of scores_; items that
        # arrived since have slots after it, found by id
        out = _lookup(scores, candidates.codes)
        unknown = np.flatnonzero(candidates.codes < 0)
        get = self.item_index_.get
        for pos in unknown:
            code = get(candidates.ids[pos])
            if code is not None:
                out[pos] = scores[code]
        return out

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        row = self.recsdk_score(candidates=candidates)
        return None if row is None else _same_for_all(row, len(user_ids))
