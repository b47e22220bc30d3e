"""Embedding retrieval: any model with user and item vectors can serve as a retriever.

A plugin that learns item vectors (matrix factorisation, a two-tower model) answers
``recsdk_retrieve_candidates`` with ``EmbeddingRetriever.retrieve``: the ``n`` items
whose vectors have the highest inner product with the user's vector.

Two ways to search:

* exact: one matrix-vector product over every item (numpy); right up to some tens of
  thousands of items, where it costs about a millisecond;
* ``hnsw``: a faiss HNSW graph (Malkov & Yashunin 2018) searched by inner product,
  built at training time and stored with the run as a faiss file through the
  artifact store (``faiss.write_index`` / ``faiss.read_index``, never pickle). Its
  hits are re-scored exactly, so the scores a retriever passes on are true inner
  products; only which items come back is approximate. Its search list
  (``efSearch``) grows with the catalogue (:func:`scaled_ef_search`): a graph ten
  times larger needs a longer list for the same recall. Items whose vector is all
  zeros (a factorisation's items without a training interaction) are left out of the
  graph: their inner product is 0 for every query, and a plateau of equal zero
  vectors strands the greedy search (on ALS factors of a shop where 58% of the items
  had none, some queries found none of their true top 200).

:class:`IndexParams` is the parameter schema plugins inherit to offer this choice
(``index = "none" | "exact" | "hnsw" | "auto"``); :func:`resolve_index_kind` turns the
setting and the catalogue size into what is built.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
from marshmallow import Schema, fields, validate

from recsdk.types import RecommendationRequest, Retrieved

if TYPE_CHECKING:
    from recsdk.registry import ArtifactReader, ArtifactWriter

log = logging.getLogger(__name__)

V = TypeVar("V")

INDEX_KINDS = ("none", "exact", "hnsw", "auto")
#: ``index = "auto"`` builds HNSW from this many items up, and retrieves nothing below it
#: (full scoring of every item is both exact and fast there); see docs/benchmarks.md,
#: "Embedding retrieval", for the latencies this threshold comes from.
AUTO_HNSW_MIN_ITEMS = 100_000
#: ``hnsw_ef_search`` is the search list for an index of this many items; larger
#: indexes search a list grown by ``hnsw_ef_growth`` (:func:`scaled_ef_search`).
EF_REFERENCE_ITEMS = 100_000
#: set from two_tower item vectors at 100,000 and 1,000,000 items (docs/benchmarks.md,
#: "HNSW search list grown with the catalogue"); two_tower itself has since moved to
#: 0.8 with a denser graph, chosen on its own validation queries
GROWTH_DEFAULT = 0.6


def hnsw_m_field(default: int = 32) -> fields.Integer:
    """``hnsw_m``, with a plugin's own default (a subclass of :class:`IndexParams`
    redefines the field to change it)."""
    return fields.Integer(
        load_default=default, validate=validate.Range(min=4, max=256),
        metadata={"description": "HNSW links per node: more is more accurate, larger "
                  "and slower to build"})


def ef_search_field(default: int = 256) -> fields.Integer:
    """``hnsw_ef_search``, with a plugin's own default."""
    return fields.Integer(
        load_default=default, validate=validate.Range(min=1, max=16384),
        metadata={"description": "HNSW candidate list while searching an index of "
                  "100,000 items or fewer (raised to n when n is larger): more is more "
                  "accurate and slower per request"})


def ef_growth_field(default: float = GROWTH_DEFAULT) -> fields.Float:
    """``hnsw_ef_growth``, with a plugin's own default."""
    return fields.Float(
        load_default=default, validate=validate.Range(min=0, max=1),
        metadata={"description": "exponent by which the HNSW search list grows past "
                  "100,000 items: ef_search * (items / 100,000) ** growth; 0 keeps "
                  "hnsw_ef_search at every size"})


class IndexParams(Schema):
    """Candidate-retrieval parameters of a plugin with item vectors; plugins inherit them."""

    index = fields.String(
        load_default="auto", validate=validate.OneOf(INDEX_KINDS),
        metadata={"description": "none: do not retrieve (every catalogue item is scored); "
                  "exact: retrieve the top n by exact inner product; hnsw: through a faiss "
                  "HNSW index built at training time; auto: hnsw from index_min_items "
                  "items up, else none"})
    index_min_items = fields.Integer(
        load_default=AUTO_HNSW_MIN_ITEMS, validate=validate.Range(min=1),
        metadata={"description": "catalogue size from which index = auto builds HNSW"})
    hnsw_m = hnsw_m_field()
    hnsw_ef_construction = fields.Integer(
        load_default=200, validate=validate.Range(min=8, max=4096),
        metadata={"description": "HNSW candidate list while building: more is more "
                  "accurate and slower to build"})
    hnsw_ef_search = ef_search_field()
    hnsw_ef_growth = ef_growth_field()


def scaled_ef_search(ef_search: int, n_items: int, growth: float) -> int:
    """The HNSW search list for an index of ``n_items``: ``ef_search`` up to
    :data:`EF_REFERENCE_ITEMS` items, ``ef_search * (n_items / EF_REFERENCE_ITEMS) **
    growth`` above (rounded up). A fixed list loses recall as the graph grows (on
    two_tower item vectors recall@100 at ef 512 fell from 0.986 at 100,000 items to
    0.907 at 1,000,000: docs/benchmarks.md), so the list grows with the index."""
    if int(ef_search) < 1:
        raise ValueError(f"hnsw_ef_search must be at least 1, got {ef_search!r}")
    if not 0 <= float(growth) <= 1:
        raise ValueError(f"hnsw_ef_growth must be between 0 and 1, got {growth!r}")
    ratio = max(1.0, int(n_items) / EF_REFERENCE_ITEMS)
    return max(int(ef_search), math.ceil(int(ef_search) * ratio ** float(growth)))


def resolve_index_kind(kind: str, n_items: int,
                       min_items: int = AUTO_HNSW_MIN_ITEMS) -> str:
    """What to build for ``kind`` over ``n_items``: ``none``, ``exact`` or ``hnsw``."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"index must be one of {INDEX_KINDS}, got {kind!r}")
    if kind == "auto":
        return "hnsw" if n_items >= min_items else "none"
    return kind


def _faiss() -> Any:
    import faiss  # imported on use: only plugins that build an index pay for it

    return faiss


class HnswIndex:
    """A faiss HNSW graph over item vectors, searched by inner product.

    ``ef_search`` and ``ef_growth`` set the search list through
    :func:`scaled_ef_search` at the index's size (``ef_growth = 0``: ``ef_search``
    as given)."""

    def __init__(self, index: Any, ef_search: int, ef_growth: float = 0.0,
                 members: np.ndarray | None = None) -> None:
        scaled_ef_search(ef_search, 0, ef_growth)  # bad values fail here, not per request
        if members is not None and len(members) != int(index.ntotal):
            raise ValueError(f"the index holds {int(index.ntotal)} vectors but names "
                             f"{len(members)} members")
        self.index = index
        self.ef_search = int(ef_search)
        self.ef_growth = float(ef_growth)
        #: the vectors' positions the graph holds, in its order (None: every vector)
        self.members = None if members is None else np.asarray(members, dtype=np.int64)

    def covers(self, n_vectors: int) -> bool:
        """Whether this graph was built over ``n_vectors`` vectors (all, or a subset)."""
        if self.members is None:
            return len(self) == n_vectors
        return not len(self.members) or int(self.members[-1]) < n_vectors

    @property
    def effective_ef_search(self) -> int:
        """The search list a query of up to that many results uses at this size."""
        return scaled_ef_search(self.ef_search, len(self), self.ef_growth)

    @classmethod
    def build(cls, vectors: np.ndarray, m: int = 32, ef_construction: int = 200,
              ef_search: int = 256, ef_growth: float = 0.0) -> HnswIndex:
        """A graph over the non-zero rows of ``vectors`` (see the module docstring)."""
        faiss = _faiss()
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if data.ndim != 2 or not len(data):
            raise ValueError(f"an HNSW index needs a non-empty (n, dim) array; got shape "
                             f"{data.shape}")
        nonzero = np.flatnonzero(np.any(data != 0, axis=1))
        members = None if len(nonzero) == len(data) else nonzero
        if members is not None:
            data = np.ascontiguousarray(data[members])
        index = faiss.IndexHNSWFlat(data.shape[1], int(m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
        index.add(data)
        return cls(index, ef_search, ef_growth, members)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions (-1 past the end) and inner products of the best ``n`` per query."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = min(int(n), len(self))
        if n <= 0:
            return np.empty((len(q), 0), np.int64), np.empty((len(q), 0), np.float32)
        # per-call parameters, not index.hnsw.efSearch: concurrent requests share the index
        params = _faiss().SearchParametersHNSW(efSearch=max(self.effective_ef_search, n))
        scores, positions = self.index.search(q, n, params=params)
        if self.members is not None:
            positions = np.where(positions >= 0, self.members[np.maximum(positions, 0)], -1)
        return positions, scores

    # ---- storage ---------------------------------------------------------------------

    def save(self, artifacts: ArtifactWriter, name: str) -> None:
        """Write the index as a faiss file into the run's artifacts, and the positions
        it holds (when not every vector) as the arrays ``name.members``."""
        with artifacts.file(name) as path:
            self.write(path)
        if self.members is not None:
            artifacts.save_arrays(f"{name}.members", {"members": self.members})

    def write(self, path: Path | str) -> None:
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, artifacts: ArtifactReader, name: str, ef_search: int,
             ef_growth: float = 0.0) -> HnswIndex:
        """Read it back (the artifact store has checked the file's sha256)."""
        members = (artifacts.load_arrays(f"{name}.members")["members"]
                   if f"{name}.members" in artifacts else None)
        return cls.read(artifacts.path(name), ef_search, ef_growth, members)

    @classmethod
    def read(cls, path: Path | str, ef_search: int, ef_growth: float = 0.0,
             members: np.ndarray | None = None) -> HnswIndex:
        """Map the file rather than copy it, where faiss can (``IO_FLAG_MMAP_IFC``):
        the serving processes of one machine then share its pages, as they share the
        other artifacts (docs/deployment.md). ``members``: the positions the graph
        holds, when it was built over a subset (see :meth:`save`)."""
        faiss = _faiss()
        flag = getattr(faiss, "IO_FLAG_MMAP_IFC", 0)
        try:
            index = faiss.read_index(str(path), flag)
        except RuntimeError:  # a faiss that cannot map this index type: read a copy
            index = faiss.read_index(str(path))
        return cls(index, ef_search, ef_growth, members)


class EmbeddingRetriever:
    """Top-``n`` items by inner product between a query vector and item vectors.

    Exact unless an ``index`` (an :class:`HnswIndex` over the same vectors, in the same
    order) is given; the index's hits are then re-scored exactly.
    """

    def __init__(self, item_ids: Sequence[str], item_vectors: np.ndarray,
                 index: HnswIndex | None = None) -> None:
        vectors = np.asarray(item_vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(item_ids):
            raise ValueError(f"item_vectors must be (n_items={len(item_ids)}, dim); got "
                             f"shape {vectors.shape}")
        if index is not None and (not index.covers(len(vectors))
                                  or index.dim != vectors.shape[1]):
            raise ValueError(f"the index holds {len(index)} vectors of dim {index.dim}; the "
                             f"retriever has {len(vectors)} of dim {vectors.shape[1]}")
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.item_vectors = vectors
        self.index = index

    def search(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the best ``n`` items, best first."""
        query = np.asarray(query, dtype=np.float32)
        if self.index is not None:
            positions = self.index.search(query, n)[0][0]
            positions = positions[positions >= 0].astype(np.int64)
            scores = self.item_vectors[positions] @ query
            order = np.argsort(-scores, kind="stable")
            return positions[order], scores[order]
        return self.exact_search(query, n)

    def exact_search(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the best ``n`` items by a full product (no index)."""
        scores = self.item_vectors @ np.asarray(query, dtype=np.float32)
        n = min(n, len(scores))
        if n <= 0:
            return np.array([], dtype=np.int64), np.array([], dtype=np.float32)
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]

    def save_index(self, artifacts: ArtifactWriter, name: str) -> None:
        """Store the HNSW index, if there is one, with the run (``load_retriever`` reads
        it back)."""
        if self.index is not None:
            self.index.save(artifacts, name)

    def retrieve(self, query: np.ndarray | None, n: int) -> Retrieved | None:
        """The retriever's answer for one user; None (abstain) without a query vector."""
        if query is None or not np.all(np.isfinite(query)):
            return None
        top, scores = self.search(query, n)
        return Retrieved(list(self.item_ids[top]), [float(s) for s in scores])


def index_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """A plugin's :class:`IndexParams` values, the schema's defaults where it lacks one
    (a plugin built directly, not from settings)."""
    defaults = {name: f.load_default for name, f in IndexParams().fields.items()}
    return {name: params.get(name, default) for name, default in defaults.items()}


def build_retriever(item_ids: Sequence[str], vectors: np.ndarray, params: Mapping[str, Any],
                    index: HnswIndex | None = None) -> EmbeddingRetriever | None:
    """The retriever a plugin's :class:`IndexParams` ask for over its item vectors: None
    for ``none``; for ``hnsw``, ``index`` when one was loaded, else one built now."""
    p = index_settings(params)
    kind = resolve_index_kind(p["index"], len(vectors), p["index_min_items"])
    if kind == "none":
        return None
    if kind == "hnsw" and index is None:
        index = HnswIndex.build(vectors, p["hnsw_m"], p["hnsw_ef_construction"],
                                p["hnsw_ef_search"], p["hnsw_ef_growth"])
    return EmbeddingRetriever(item_ids, vectors, index if kind == "hnsw" else None)


def load_retriever(item_ids: Sequence[str], vectors: np.ndarray, params: Mapping[str, Any],
                   artifacts: ArtifactReader, name: str, plugin: str
                   ) -> EmbeddingRetriever | None:
    """:func:`build_retriever` with the run's saved HNSW index ``name`` when it has a
    usable one; a run trained with another index setting has none, and one is built."""
    from recsdk.registry import ArtifactError

    p = index_settings(params)
    index = None
    if resolve_index_kind(p["index"], len(vectors), p["index_min_items"]) == "hnsw":
        try:
            index = HnswIndex.load(artifacts, name, p["hnsw_ef_search"],
                                   p["hnsw_ef_growth"])
        except ArtifactError as exc:
            log.warning("plugins.%s: no usable HNSW index (%s); building one", plugin, exc)
    return build_retriever(item_ids, vectors, p, index)


class RequestVectors(Generic[V]):
    """A user's query vector (or another per-request value) computed once per request:
    the pipeline asks a plugin for it in retrieval and again in scoring, and a fold-in
    can cost as much as the rest of the request. Keeps the last ``size`` requests'
    values (thread-safe)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._vectors: OrderedDict[str, V | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, request_id: str, compute: Callable[[], V | None]) -> V | None:
        with self._lock:
            if request_id in self._vectors:
                return self._vectors[request_id]
        vector = compute()
        with self._lock:
            self._vectors[request_id] = vector
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return vector


#: ``[pipeline] retrieval`` values: see :class:`PoolSettings`.
RETRIEVAL_MODES = ("auto", "on", "off")


class PoolSettings:
    """``[pipeline]`` retrieval settings, read by the built-in pool retrievers
    (``popularity``, ``trending``, ``category_popularity``, ``cooccurrence``).

    Their pools are precomputed (at training, or once per catalogue snapshot), so a
    request's retrieval costs the pool's size, not the catalogue's: with them on, the
    scorers see a bounded candidate set. ``auto`` turns them on from ``min_items``
    catalogue items, where scoring every item stops being cheap; below it every item is
    scored, which is exact and fast there.
    """

    def __init__(self, mode: str = "auto", min_items: int = AUTO_HNSW_MIN_ITEMS,
                 size: int = 200) -> None:
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"pipeline.retrieval must be one of {RETRIEVAL_MODES}, "
                             f"got {mode!r}")
        if int(min_items) < 1 or int(size) < 1:
            raise ValueError(f"pipeline.retrieval_min_items and pipeline.pool_size must be "
                             f"at least 1; got {min_items} and {size}")
        self.mode, self.min_items, self.size = mode, int(min_items), int(size)

    @classmethod
    def from_pipeline(cls, pipeline: Mapping[str, Any]) -> PoolSettings:
        """From the validated ``[pipeline]`` table (defaults where a key is missing)."""
        default = cls()
        return cls(pipeline.get("retrieval", default.mode),
                   pipeline.get("retrieval_min_items", default.min_items),
                   pipeline.get("pool_size", default.size))

    def active(self, n_items: int) -> bool:
        """Whether pools answer for a catalogue of ``n_items`` items."""
        return self.mode == "on" or (self.mode == "auto" and n_items >= self.min_items)

    def take(self, n: int) -> int:
        """How many items a pool answers for the pipeline's quota ``n``."""
        return max(0, min(int(n), self.size))


def top_positions(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest finite ``scores``, best first (ties by position)."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(scores))
    n = min(int(n), len(finite))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    values = scores[finite]
    if n < len(finite):
        kth = values[np.argpartition(-values, n - 1)[n - 1]]
        keep = np.flatnonzero(values >= kth)
        finite, values = finite[keep], values[keep]
    order = np.lexsort((finite, -values))[:n]
    return finite[order].astype(np.int64)


def served_items(request: RecommendationRequest, trained: int) -> int:
    """Catalogue size that ``[pipeline] retrieval = "auto"`` compares: the served
    catalogue's, else (no catalogue) the trained vocabulary's."""
    catalog = request.catalog
    return len(catalog) if catalog is not None and len(catalog) else int(trained)


def pool_answer(item_ids: np.ndarray, codes: np.ndarray, scores: np.ndarray) -> Retrieved:
    """A pool retriever's answer: the ids of ``codes`` with their scores."""
    return Retrieved(item_ids[codes].tolist(), np.asarray(scores, dtype=np.float64).tolist())
