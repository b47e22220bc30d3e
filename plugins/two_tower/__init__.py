"""The ``two_tower`` plugin: a user tower and an item tower trained by sampled softmax.

Yi et al. (RecSys 2019), "Sampling-Bias-Corrected Neural Modeling for Large Corpus
Item Recommendations": the user tower reads the user's id, their category affinity
and the pooled item vectors of their last ``history_window`` items; the item tower
reads the item's id, category path, tags, text (MiniLM, else TF-IDF) and price. Both
answer unit vectors and a score is their cosine. Training is in-batch softmax with
the logQ correction (:mod:`recsdk_plugins.two_tower.model`), early-stopped on a
validation split of the training data (:mod:`recsdk_plugins.deep_training`).

Serving:

* a user's vector is recomputed from ``request.history`` when it holds events newer
  than the training data (or the user is new), so a click changes the next list and
  an unseen user with a history is served; the history is cut to its newest items;
* an item the model never trained on (no interaction, or added to the catalogue since)
  is embedded from its content alone: the id embedding was dropped in training so
  that content-only vectors are meaningful;
* item vectors are indexed with faiss HNSW at training (``index``, see
  :mod:`recsdk.retrieval`) and the index is saved through the artifact store, so the
  plugin is also a candidate retriever.

torch is the ``recsdk[torch]`` extra; without it the plugin stops at configure time
naming the extra. The model trains on ``context.device`` and serves on the CPU.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from recsdk_plugins.deep_training import (
    TrainingReport,
    fit_with_early_stopping,
    require_torch,
    seed_everything,
    torch_threads,
    validation_split,
)
from recsdk_plugins.two_tower.features import ItemArrays, ItemContent, resolve_text_encoder
from recsdk_plugins.two_tower.params import TwoTowerParams

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset, lookup_codes
from recsdk.errors import ConfigurationError
from recsdk.features.content import aligned_items
from recsdk.interactions import Weighting, weighted_matrix
from recsdk.registry import ArtifactReader, ArtifactWriter
from recsdk.retrieval import IndexParams, build_retriever, load_retriever
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, Retrieved

if TYPE_CHECKING:
    from recsdk_plugins.two_tower.model import TwoTowerNet

log = logging.getLogger(__name__)

NAME = "two_tower"
WEIGHTS_ARTIFACT = "two_tower.pt"
INDEX_ARTIFACT = "hnsw.faiss"
#: user vectors kept per request id (retrieval and scoring of one request share one)
VECTOR_CACHE_SIZE = 64
#: content vectors of items new since training, kept per catalogue snapshot
COLD_CACHE_SIZE = 10_000


def cell_times(dataset: InteractionDataset, matrix: sp.csr_matrix) -> np.ndarray:
    """Newest event time of every stored cell of ``matrix`` (CSR order); 0 when unknown."""
    inter = dataset.interactions
    n_items = matrix.shape[1]
    keys = inter["user"].to_numpy(np.int64) * n_items + inter["item"].to_numpy(np.int64)
    times = np.nan_to_num(inter["timestamp"].to_numpy(np.float64), nan=0.0)
    newest = pd.Series(times).groupby(keys).max()
    m = sp.csr_matrix(matrix)
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return newest.reindex(rows * n_items + m.indices).fillna(0.0).to_numpy(np.float64)


def fit_width(a: np.ndarray, width: int, pad: int) -> np.ndarray:
    """Index rows cut or padded (with ``pad``) to ``width`` columns."""
    if a.shape[1] >= width:
        return a[:, :width]
    return np.hstack([a, np.full((len(a), width - a.shape[1]), pad, dtype=a.dtype)])


class TwoTower(Plugin):
    """Two-tower retrieval and scoring; see the module docstring."""

    Params = TwoTowerParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
        self._device = "cpu"
        self._seed = 0
        self._catalog: Catalog | None = None
        self._vectors: OrderedDict[str, np.ndarray | None] = OrderedDict()
        self._cold: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self._cold_catalog: object = None
        self._lock = threading.Lock()

    def _index_params(self) -> dict[str, Any]:
        """The retrieval index's parameters, with this plugin's defaults (its
        ``hnsw_ef_search`` default differs from :class:`IndexParams`')."""
        return {name: self.p(name) for name in IndexParams().fields}

    def p(self, key: str) -> Any:
        """A parameter, with its schema default when the plugin was built directly."""
        if key in self.params:
            return self.params[key]
        return TwoTowerParams().fields[key].load_default

    @property
    def weighting(self) -> Weighting:
        return Weighting.from_params(self.params, self._event_weights)

    def _content(self) -> ItemContent:
        return ItemContent(self.p("text_encoder"), self.p("text_fields"),
                           self.p("tfidf_max_features"), "cpu")

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        require_torch(NAME)
        resolve_text_encoder(self.p("text_encoder"))  # minilm without its package: stop now
        self._event_weights = dict(context.settings.event_weights)
        self._device = context.device
        self._seed = int(context.seed)
        self._catalog = context.catalog

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self.recsdk_configure(context)
        self._catalog = dataset.catalog
        matrix, data_end = weighted_matrix(dataset, self.weighting, NAME)
        times = cell_times(dataset, matrix)
        content = self._content().fit(aligned_items(dataset.catalog, dataset.item_ids),
                                      dataset.catalog)
        arrays = content.transform(aligned_items(dataset.catalog, dataset.item_ids),
                                   dataset.catalog)
        threads = self.p("num_threads") or None
        with torch_threads(threads):
            net, report = self._train(dataset, matrix, times, content, arrays)
        self._user_index, self._item_index = dataset.user_index, dataset.item_index
        self._item_ids = np.asarray(dataset.item_ids, dtype=object)
        self._install(net, content, arrays, matrix, times, data_end, report)
        self.retriever_ = build_retriever(dataset.item_ids, self.item_vectors_,
                                          self._index_params())

    def _train(self, dataset: InteractionDataset, matrix: sp.csr_matrix, times: np.ndarray,
               content: ItemContent, arrays: ItemArrays) -> tuple[TwoTowerNet, TrainingReport]:
        from recsdk_plugins.two_tower.model import (
            Sizes,
            Trainer,
            TwoTowerNet,
            history_windows,
            item_tensors,
        )

        device = self._device
        sizes = Sizes(dataset.n_users, dataset.n_items, content.n_nodes, content.n_tags,
                      content.n_words, content.text_dim)
        items = item_tensors(arrays, device)
        width = self.p("history_window") + 1  # the target's slot in training

        def trainer(net: TwoTowerNet, positives: sp.csr_matrix,
                    cell_t: np.ndarray) -> Trainer:
            return Trainer(
                net, items, np.diff(positives.tocsc().indptr) > 0, positives,
                history_windows(positives, cell_t, width),
                temperature=self.p("temperature"), batch_size=self.p("batch_size"),
                learning_rate=self.p("learning_rate"), weight_decay=self.p("weight_decay"),
                id_dropout=self.p("id_dropout"), user_id_dropout=self.p("user_id_dropout"),
                history_dropout=self.p("history_dropout"),
                seed=self._seed, device=device, ema_decay=self.p("ema_decay"))

        def new_net() -> TwoTowerNet:
            seed_everything(self._seed)
            return TwoTowerNet(sizes, self.p("dim"), self.p("hidden"),
                               user_ids=self.p("user_id_dropout") < 1)

        common = {"name": NAME, "device": device, "eval_every": self.p("eval_every"),
                  "patience": self.p("patience"), "progress": self.p("progress")}
        share = self.p("validation_share")
        if share > 0:
            train, held = validation_split(matrix, share, self._seed)
            train_t = cell_times(dataset, train)
            run = trainer(new_net(), train, train_t)
            windows = history_windows(train, train_t, width - 1)
            report = fit_with_early_stopping(
                run.kept, run.train_epoch, run.validator(train, held, windows),
                max_epochs=self.p("max_epochs"), **common)
            if not self.p("refit") or held.nnz == 0:
                return run.kept, report
            run = trainer(new_net(), matrix, times)
            refit = fit_with_early_stopping(run.kept, run.train_epoch, None,
                                            max_epochs=max(report.best_epoch, 1), **common)
            report.epoch_seconds += refit.epoch_seconds
            return run.kept, report
        run = trainer(new_net(), matrix, times)
        return run.kept, fit_with_early_stopping(run.kept, run.train_epoch, None,
                                                 max_epochs=self.p("max_epochs"), **common)

    def _install(self, net: TwoTowerNet, content: ItemContent, arrays: ItemArrays,
                 matrix: sp.csr_matrix, times: np.ndarray, data_end: float,
                 report: TrainingReport | None) -> None:
        """Serving state from a trained network (on the CPU)."""
        from recsdk_plugins.two_tower.model import (
            embed_items,
            embed_users,
            history_windows,
            item_tensors,
        )

        self.net_ = net.to("cpu").eval()
        self.content_ = content
        self.arrays_ = arrays
        self.items_ = item_tensors(arrays, "cpu")
        self.has_id_ = np.diff(sp.csr_matrix(matrix).tocsc().indptr) > 0
        self.windows_ = history_windows(matrix, times, self.p("history_window"))
        self.data_end_ = float(data_end)
        import torch

        self.item_vectors_ = embed_items(self.net_, self.items_, torch.as_tensor(self.has_id_),
                                         "cpu")
        self.user_vectors_ = embed_users(self.net_, self.items_, self.item_vectors_,
                                         np.arange(matrix.shape[0]), self.windows_, "cpu")
        self.report_ = report
        self._vectors.clear()
        self._cold, self._cold_catalog = {}, None

    # ---- retrieval index -------------------------------------------------------------

    # ---- state -----------------------------------------------------------------------

    @hookimpl
    def recsdk_save_state(self, artifacts: ArtifactWriter) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "net_"):
            return None
        artifacts.save_torch(WEIGHTS_ARTIFACT, self.net_.state_dict())
        if getattr(self, "retriever_", None) is not None:
            self.retriever_.save_index(artifacts, INDEX_ARTIFACT)
        return {"sizes": self.net_.sizes.to_array(), **self.content_.state(),
                **self.arrays_.to_state("item."), "has_id": self.has_id_,
                "windows": self.windows_, "data_end": np.array([self.data_end_]),
                "item_vectors": self.item_vectors_, "user_vectors": self.user_vectors_}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                          artifacts: ArtifactReader) -> None:
        require_torch(NAME)
        from recsdk_plugins.two_tower.model import Sizes, TwoTowerNet, item_tensors

        sizes = Sizes.from_array(state["sizes"])
        if (sizes.n_items, sizes.n_users) != (dataset.n_items, dataset.n_users):
            raise ConfigurationError(
                f"plugins.{NAME}: saved state has {sizes.n_items} items and {sizes.n_users} "
                f"users, the vocabulary {dataset.n_items} and {dataset.n_users}: the state "
                "belongs to another training run")
        net = TwoTowerNet(sizes, self.p("dim"), self.p("hidden"),
                          user_ids=self.p("user_id_dropout") < 1)
        net.load_state_dict(artifacts.load_torch(WEIGHTS_ARTIFACT))
        self.net_ = net.eval()
        self.content_ = self._content().load_state(state)
        self.arrays_ = ItemArrays.from_state(state, "item.")
        self.items_ = item_tensors(self.arrays_, "cpu")
        self.has_id_ = np.asarray(state["has_id"], dtype=bool)
        self.windows_ = np.asarray(state["windows"], dtype=np.int64)
        self.data_end_ = float(state["data_end"][0])
        self.item_vectors_ = np.asarray(state["item_vectors"], dtype=np.float32)
        self.user_vectors_ = np.asarray(state["user_vectors"], dtype=np.float32)
        self.report_ = None
        self._user_index = dataset.user_index
        self._item_index = dataset.item_index
        self._item_ids = np.asarray(dataset.item_ids, dtype=object)
        self._vectors.clear()
        self._cold, self._cold_catalog = {}, None
        self.retriever_ = load_retriever(dataset.item_ids, self.item_vectors_, self._index_params(),
                                         artifacts, INDEX_ARTIFACT, NAME)
        if dataset.catalog is not None and len(dataset.catalog):
            self._catalog = dataset.catalog

    # ---- items -----------------------------------------------------------------------

    def _cold_items(self, item_ids: Sequence[str], catalog: Catalog | None
                    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """(vector, category path row) of items outside the vocabulary, from their
        content in ``catalog``; None for an item the catalogue does not know either."""
        import torch
        from recsdk_plugins.two_tower.model import embed_items, item_tensors

        with self._lock:
            if catalog is not self._cold_catalog:
                self._cold, self._cold_catalog = {}, catalog
            missing = [i for i in dict.fromkeys(item_ids) if i not in self._cold]
            known = [i for i in missing if catalog is not None and i in catalog.index]
            if known:
                arrays = self.content_.transform(aligned_items(catalog, known), catalog)
                items = item_tensors(arrays, "cpu")
                vectors = embed_items(self.net_, items, torch.zeros(len(known), dtype=bool),
                                      "cpu")
                cat = fit_width(arrays.cat, self.arrays_.cat.shape[1], self.content_.n_nodes)
                for row, item_id in enumerate(known):
                    self._cold[item_id] = (vectors[row], cat[row])
            for item_id in missing:
                self._cold.setdefault(item_id, None)
            out = [self._cold[i] for i in item_ids]
            if len(self._cold) > COLD_CACHE_SIZE:
                self._cold = {}
            return out

    def item_vectors(self, ids: Sequence[str], codes: np.ndarray | None,
                     catalog: Catalog | None) -> np.ndarray:
        """Vectors of items (NaN rows for items neither trained nor in ``catalog``)."""
        n = len(self.item_vectors_)
        if codes is None:
            codes = lookup_codes(self._item_index_map(), [str(i) for i in ids])
        codes = np.asarray(codes, dtype=np.int64)
        if len(codes) == n and np.array_equal(codes, np.arange(n)):
            return self.item_vectors_
        known = (codes >= 0) & (codes < n)
        out = np.full((len(codes), self.item_vectors_.shape[1]), np.nan, dtype=np.float32)
        out[known] = self.item_vectors_[codes[known]]
        cold = np.flatnonzero(~known)
        if len(cold):
            got = self._cold_items([str(ids[c]) for c in cold], catalog)
            for row, value in zip(cold, got, strict=True):
                if value is not None:
                    out[row] = value[0]
        return out

    def _item_index_map(self) -> Mapping[str, int]:
        return getattr(self, "_item_index", {})

    # ---- users -----------------------------------------------------------------------

    def user_vector(self, request: RecommendationRequest) -> np.ndarray | None:
        """Stored vector of a known user with nothing new; else the user tower on the
        user's newest ``history_window`` items; None without any usable history."""
        from recsdk_plugins.two_tower.model import embed_history

        code = self._user_index_map().get(request.user_id) \
            if request.user_id is not None else None
        history = request.history
        weights = self.weighting.weights(history.types, np.zeros(len(history)), 0.0,
                                         history.values)
        positive = weights > 0
        timestamps = np.asarray(history.timestamps, dtype=np.float64)
        if code is not None:
            new = positive & np.isfinite(timestamps) & (timestamps > self.data_end_)
            if not new.any():
                return self.user_vectors_[code].astype(np.float64)
            stored = self.windows_[code]
            ids = [str(self._item_ids[c]) for c in stored[stored >= 0]]
            ids += [str(history.item_ids[i]) for i in np.flatnonzero(new)]
        else:
            ids = [str(history.item_ids[i]) for i in np.flatnonzero(positive)]
        # each item once, at its newest position; the newest history_window items
        ids = list(dict.fromkeys(reversed(ids)))[::-1][-self.p("history_window"):]
        vectors, paths = self._history_rows(ids, request.catalog or self._catalog)
        if not len(vectors):
            return None if code is None else self.user_vectors_[code].astype(np.float64)
        return embed_history(self.net_, code, vectors, paths, "cpu").astype(np.float64)

    def _history_rows(self, ids: list[str], catalog: Catalog | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        codes = lookup_codes(self._item_index_map(), ids)
        vectors, paths = [], []
        cold_ids = [i for i, c in zip(ids, codes, strict=True) if c < 0]
        cold = dict(zip(cold_ids, self._cold_items(cold_ids, catalog), strict=True))
        for item_id, c in zip(ids, codes, strict=True):
            if c >= 0:
                vectors.append(self.item_vectors_[c])
                paths.append(self.arrays_.cat[c])
            elif cold[item_id] is not None:
                vectors.append(cold[item_id][0])
                paths.append(cold[item_id][1])
        width = self.arrays_.cat.shape[1]
        if not vectors:
            return np.zeros((0, self.item_vectors_.shape[1]), np.float32), \
                np.zeros((0, width), np.int64)
        return np.vstack(vectors), np.vstack(paths)

    def _user_index_map(self) -> Mapping[str, int]:
        return getattr(self, "_user_index", {})

    def request_vector(self, request: RecommendationRequest) -> np.ndarray | None:
        """:meth:`user_vector`, once per request (retrieval and scoring both ask)."""
        key = request.request_id
        with self._lock:
            if key in self._vectors:
                return self._vectors[key]
        vector = self.user_vector(request)
        with self._lock:
            self._vectors[key] = vector
            while len(self._vectors) > VECTOR_CACHE_SIZE:
                self._vectors.popitem(last=False)
        return vector

    # ---- hooks -----------------------------------------------------------------------

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "net_"):
            return None
        vector = self.request_vector(request)
        if vector is None:
            return None
        items = self.item_vectors(candidates.ids, candidates.codes,
                                  request.catalog or self._catalog)
        return items.astype(np.float64) @ vector

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        """Stored user vectors (the histories are the training data); NaN rows for
        users the model never saw."""
        if not hasattr(self, "net_"):
            return None
        codes = lookup_codes(self._user_index_map(), user_ids)
        items = self.item_vectors(candidates.ids, candidates.codes, self._catalog)
        out = self.user_vectors_[np.maximum(codes, 0)].astype(np.float64) @ \
            items.astype(np.float64).T
        out[codes < 0] = np.nan
        return out

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Cosine between item vectors (an item new since training: its content vector)."""
        if not hasattr(self, "net_"):
            return None
        query = self.item_vectors([str(item_id)], None, catalog or self._catalog)[0]
        if not np.all(np.isfinite(query)):
            return None
        items = self.item_vectors(candidates.ids, candidates.codes, catalog or self._catalog)
        return items.astype(np.float64) @ query.astype(np.float64)

    @hookimpl
    def recsdk_retrieve_candidates(self, request: RecommendationRequest,
                                   n: int) -> Retrieved | None:
        retriever = getattr(self, "retriever_", None)
        if retriever is None:
            return None
        return retriever.retrieve(self.request_vector(request), n)
