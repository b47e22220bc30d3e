"""All item features in one place: similarity blocks plus a table of scalar features.

Similarity blocks (unit rows; an all-zero row means "unknown" and drops out of the
weighted cosine, see :func:`recsdk.features.vectors.weighted_cosine`):

* ``text``: TF-IDF or MiniLM sentence embedding of title and description;
* ``category``: multi-hot category path, ancestors included;
* ``tags``: multi-hot tags;
* ``price``: one-hot global price quantile plus one-hot position within the category
  (z-score of log price: well below, below, typical, above, well above);
* ``image``: ResNet-18 embedding or the colour/texture fallback (local files only).

The scalar table (:attr:`ItemFeatures.table`) has log price, price z-score within the
category, price bucket, discount rate, popularity (distinct users) and freshness
(days since first seen) for rankers and reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.catalog import CategoryTree
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError, NotTrainedError
from recsdk.features.activity import (
    created_seconds,
    first_seen,
    freshness_days,
    item_popularity,
    reference_time,
)
from recsdk.features.categorical import (
    CategoryPathEncoder,
    TagEncoder,
    item_paths,
    item_tags,
)
from recsdk.features.feature_store import FeatureStore, SyncReport
from recsdk.features.price import PriceEncoder, discount_rate, prices
from recsdk.features.text import (
    DEFAULT_TEXT_FIELDS,
    SentenceTextEncoder,
    TfidfTextEncoder,
    item_texts,
    make_text_encoder,
)
from recsdk.features.vectors import Matrix, unit_rows

if TYPE_CHECKING:
    from recsdk.features.image import ImageEncoder

BLOCKS = ("text", "category", "tags", "price", "image")
#: Edges of the within-category price position (z-score of log price).
POSITION_EDGES = np.array([-1.0, -1 / 3, 1 / 3, 1.0])
#: Extractors whose vectors are worth keeping in the database between fits.
DEFAULT_PERSIST = ("text:minilm", "image")


@dataclass
class ItemActivity:
    """Behaviour per item row: distinct users, first event (UNIX s), and "now"."""

    popularity: np.ndarray
    first_seen: np.ndarray
    now: float

    @classmethod
    def from_dataset(cls, dataset: InteractionDataset, item_ids: Sequence[str]) -> ItemActivity:
        codes = dataset.item_codes(item_ids)
        pop = item_popularity(dataset.interactions, dataset.n_items)
        first = first_seen(dataset.interactions, dataset.n_items)
        known = codes >= 0
        popularity = np.zeros(len(codes))
        popularity[known] = pop[codes[known]]
        seen = np.full(len(codes), np.nan)
        seen[known] = first[codes[known]]
        return cls(popularity, seen, reference_time(dataset.interactions["timestamp"]))


@dataclass
class ItemFeatures:
    """Features of ``item_ids`` (in that order)."""

    item_ids: np.ndarray
    blocks: dict[str, Matrix]
    table: pd.DataFrame
    reports: list[SyncReport] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


class ItemFeatureBuilder:
    """Learns vocabularies and price statistics in ``fit``; computes blocks in ``transform``.

    scikit-learn conventions: ``__init__`` only stores parameters; learned state ends
    with an underscore and round-trips through :meth:`state` / :meth:`load_state`.
    """

    def __init__(self, blocks: Sequence[str] = ("text", "category", "tags", "price"),
                 text_encoder: str = "tfidf",
                 text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
                 tfidf_max_features: int = 50_000, price_buckets: int = 10,
                 image_weights: str | None = None, image_root: str | None = None,
                 device: str = "cpu", batch_size: int = 64,
                 persist: Sequence[str] = DEFAULT_PERSIST) -> None:
        self.blocks = tuple(blocks)
        self.text_encoder = text_encoder
        self.text_fields = tuple(text_fields)
        self.tfidf_max_features = tfidf_max_features
        self.price_buckets = price_buckets
        self.image_weights = image_weights
        self.image_root = image_root
        self.device = device
        self.batch_size = batch_size
        self.persist = tuple(persist)

    def _validate(self) -> None:
        unknown = set(self.blocks) - set(BLOCKS)
        if unknown:
            raise ConfigurationError(f"unknown feature block(s) {sorted(unknown)}; "
                                     f"known: {', '.join(BLOCKS)}")
        if not self.blocks:
            raise ConfigurationError("at least one feature block is needed")
        if "image" in self.blocks and self.image_root is not None and not Path(
                self.image_root).is_dir():
            raise ConfigurationError(f"image_root {self.image_root!r} is not a folder")

    def _make_text(self) -> TfidfTextEncoder | SentenceTextEncoder:
        return make_text_encoder(self.text_encoder, max_features=self.tfidf_max_features,
                                 device=self.device, batch_size=self.batch_size)

    def _make_image(self) -> ImageEncoder:
        from recsdk.features.image import ImageEncoder  # torch only when images are used

        return ImageEncoder(self.image_weights, device=self.device, image_root=self.image_root,
                            batch_size=min(self.batch_size, 32))

    # ---- fit -------------------------------------------------------------------------

    def fit(self, items: pd.DataFrame, tree: CategoryTree) -> ItemFeatureBuilder:
        """Learn what the blocks need from the catalogue's items (no interactions)."""
        self._validate()
        _require_ids(items)
        paths = item_paths(items, tree)
        self.category_ = CategoryPathEncoder().fit(paths, tree)
        self.tags_ = TagEncoder().fit(item_tags(items))
        leaves = [p[-1] if p else None for p in paths]
        self.price_ = PriceEncoder(self.price_buckets).fit(prices(items, "price"), leaves)
        self.text_ = None
        if "text" in self.blocks:
            self.text_ = self._make_text().fit(item_texts(items, self.text_fields))
        self.image_ = self._make_image().fit([]) if "image" in self.blocks else None
        return self

    # ---- transform -------------------------------------------------------------------

    def transform(self, items: pd.DataFrame, tree: CategoryTree,
                  activity: ItemActivity | None = None,
                  store: FeatureStore | None = None) -> ItemFeatures:
        """Features of every row of ``items``; expensive blocks go through ``store``."""
        if not hasattr(self, "category_"):
            raise NotTrainedError("ItemFeatureBuilder.transform called before fit")
        _require_ids(items)
        ids = items["id"].astype(str).to_numpy(dtype=object)
        paths = item_paths(items, tree)
        leaves = [p[-1] if p else None for p in paths]
        price = prices(items, "price")
        out = ItemFeatures(ids, {}, self._table(items, price, leaves, activity))
        if "category" in self.blocks:
            out.blocks["category"] = unit_rows(self.category_.transform(paths))
        if "tags" in self.blocks:
            out.blocks["tags"] = unit_rows(self.tags_.transform(item_tags(items)))
        if "price" in self.blocks:
            out.blocks["price"] = unit_rows(self._price_block(price, leaves))
        if self.text_ is not None:
            texts = item_texts(items, self.text_fields)
            out.blocks["text"] = unit_rows(self._through_store(
                self.text_, ids, texts, lambda pos: self.text_.transform(
                    [texts[p] for p in pos]), store, out))
        if self.image_ is not None:
            urls = items["image_url"].tolist() if "image_url" in items else [None] * len(ids)
            out.blocks["image"] = unit_rows(self._through_store(
                self.image_, ids, self.image_.content(urls),
                lambda pos: self._images([urls[p] for p in pos], ids[pos], out), store, out))
        return out

    def _images(self, urls: list[object], ids: np.ndarray, out: ItemFeatures) -> np.ndarray:
        vectors = self.image_.transform(urls, labels=[str(i) for i in ids])
        out.problems.update({str(ids[row]): why for row, why in self.image_.problems_.items()})
        return vectors

    def _through_store(self, encoder: TfidfTextEncoder | SentenceTextEncoder | ImageEncoder,
                       ids: np.ndarray, contents: list[str],
                       encode: Callable[[np.ndarray], Matrix], store: FeatureStore | None,
                       out: ItemFeatures) -> Matrix:
        """Encode every item, or only the changed ones when the encoder is persisted."""
        if store is None or encoder.name not in self.persist:
            return encode(np.arange(len(ids)))
        matrix, report = store.sync(encoder.name, encoder.version, list(ids), contents,
                                    lambda pos: encode(np.asarray(pos, dtype=np.int64)))
        out.reports.append(report)
        return matrix

    def _price_block(self, price: np.ndarray, leaves: list[str | None]) -> sp.csr_matrix:
        bucket = self.price_.transform(price)
        z = self.price_.z_in_category(price, leaves)
        position = np.searchsorted(POSITION_EDGES, z)
        rows = np.flatnonzero(np.isfinite(z))
        where = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, position[rows])),
                              shape=(len(price), len(POSITION_EDGES) + 1))
        return sp.csr_matrix(sp.hstack([bucket, where]))

    def _table(self, items: pd.DataFrame, price: np.ndarray, leaves: list[str | None],
               activity: ItemActivity | None) -> pd.DataFrame:
        n = len(items)
        table = pd.DataFrame({
            "log_price": np.log1p(price),
            "price_z_in_category": self.price_.z_in_category(price, leaves),
            "price_bucket": self.price_.bucket(price),
            "discount": discount_rate(price, prices(items, "original_price")),
        }, index=items["id"].astype(str).to_numpy())
        created = created_seconds(items)
        if activity is None:
            table["popularity"] = np.zeros(n)
            now = float(np.nanmax(created)) if np.isfinite(created).any() else np.nan
            table["freshness_days"] = freshness_days(created, np.full(n, np.nan), now)
        else:
            table["popularity"] = activity.popularity
            table["freshness_days"] = freshness_days(created, activity.first_seen,
                                                     activity.now)
        return table

    # ---- state -----------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "category_"):
            raise NotTrainedError("ItemFeatureBuilder.state called before fit")
        out = {"blocks": np.array(self.blocks, dtype=str)}
        parts = {"category": self.category_, "tags": self.tags_, "price": self.price_}
        if self.text_ is not None:
            parts["text"] = self.text_
            out["text.kind"] = np.array([self.text_encoder])
        for prefix, part in parts.items():
            out.update({f"{prefix}.{k}": v for k, v in part.state().items()})
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> ItemFeatureBuilder:
        """Restore :meth:`state`; the parameters must name the same text encoder."""
        self._validate()

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) + 1:]: v for k, v in state.items()
                    if k.startswith(prefix + ".")}

        saved_blocks = {str(b) for b in state["blocks"]}
        if saved_blocks != set(self.blocks):
            raise ConfigurationError(
                f"saved item features have blocks {sorted(saved_blocks)}, parameters ask "
                f"for {sorted(self.blocks)}: retrain")
        self.category_ = CategoryPathEncoder().load_state(part("category"))
        self.tags_ = TagEncoder().load_state(part("tags"))
        self.price_ = PriceEncoder(self.price_buckets).load_state(part("price"))
        self.text_ = None
        if "text" in self.blocks:
            kind = str(state["text.kind"][0])
            if kind != self.text_encoder:
                raise ConfigurationError(f"saved text features are {kind!r}, parameters say "
                                         f"{self.text_encoder!r}: retrain")
            self.text_ = self._make_text().load_state(part("text"))
        self.image_ = self._make_image().fit([]) if "image" in self.blocks else None
        return self


def _require_ids(items: pd.DataFrame) -> None:
    if "id" not in items:
        raise ConfigurationError(f"items need an 'id' column; got {list(items.columns)}")
