"""The fused content input of the multimodal model: one sparse row per item.

Blocks (each row unit length, then scaled by the block's weight), from the data layer's
:class:`recsdk.features.items.ItemFeatureBuilder` (text: MiniLM or TF-IDF; category path;
tags; price position; image: the CNN embedding or the colour/texture fallback) plus
``attributes``: any other catalogue columns as categorical tokens (a list, the words
of a string, or key=value of a mapping; numbers go into quantile buckets). After the
blocks come one "missing" flag per block, so the mapping network can tell "no text"
from "text about nothing it knows" and learns what to predict for an item that lacks
a block (the fallback, DropoutNet-style).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.catalog import CategoryTree
from recsdk.errors import ConfigurationError
from recsdk.features.items import ItemFeatureBuilder
from recsdk.features.vectors import has_rows, unit_rows

log = logging.getLogger(__name__)

#: Blocks the plugin can fuse, in the order of the fused row.
FUSED_BLOCKS = ("text", "image", "category", "tags", "price", "attributes")
#: Blocks a training row may lose at random (block dropout): the ones shops often lack.
DROPPABLE = ("text", "image")


def _is_number(value: object) -> bool:
    try:
        return np.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _tokens(value: object) -> list[str]:
    if isinstance(value, Mapping):  # e.g. the shop's {"brand": ..., "colour": ...}
        return [f"{k}={v}" for k, v in value.items() if v is not None and str(v).strip()]
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [str(v) for v in value if v is not None and str(v).strip()]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return str(value).split()


class AttributeEncoder:
    """Multi-hot ``column=value`` tokens of the named catalogue columns.

    A column whose present values are all numbers is bucketed by quantiles of the
    catalogue's values (``buckets`` of them), so a release year or a weight becomes a
    few ordered tokens instead of one token per distinct number.
    """

    def __init__(self, columns: Sequence[str], buckets: int = 10) -> None:
        self.columns = tuple(columns)
        self.buckets = buckets

    def fit(self, items: pd.DataFrame) -> AttributeEncoder:
        self.edges_: dict[str, np.ndarray] = {}
        vocabulary: set[str] = set()
        for column in self.columns:
            if column not in items:
                raise ConfigurationError(
                    f"attributes names the catalogue column {column!r}, which the catalogue "
                    f"lacks; columns: {sorted(map(str, items.columns))}")
            values = items[column]
            present = values.dropna()
            if len(present) and all(_is_number(v) for v in present):
                numbers = present.astype(float).to_numpy()
                qs = np.linspace(0, 1, self.buckets + 1)[1:-1]
                self.edges_[column] = np.unique(np.quantile(numbers, qs))
            for value in values:
                vocabulary.update(self._row_tokens(column, value))
        self.vocabulary_ = np.array(sorted(vocabulary), dtype=str)
        self._index = {t: n for n, t in enumerate(self.vocabulary_)}
        return self

    def _row_tokens(self, column: str, value: object) -> list[str]:
        if column in self.edges_:
            if not _is_number(value):
                return []
            bucket = int(np.searchsorted(self.edges_[column], float(value), side="right"))
            return [f"{column}#{bucket}"]
        return [f"{column}={t}" for t in _tokens(value)]

    def transform(self, items: pd.DataFrame) -> sp.csr_matrix:
        rows, cols = [], []
        for column in self.columns:
            values = items[column] if column in items else [None] * len(items)
            for row, value in enumerate(values):
                for token in self._row_tokens(column, value):
                    col = self._index.get(token)
                    if col is not None:
                        rows.append(row)
                        cols.append(col)
        matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(len(items), len(self.vocabulary_)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def state(self) -> dict[str, np.ndarray]:
        out = {"vocabulary": self.vocabulary_, "columns": np.array(self.columns, dtype=str)}
        out.update({f"edges.{c}": e for c, e in self.edges_.items()})
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> AttributeEncoder:
        saved = tuple(str(c) for c in state["columns"])
        if saved != self.columns:
            raise ConfigurationError(f"saved attributes are {list(saved)}, parameters say "
                                     f"{list(self.columns)}: retrain")
        self.vocabulary_ = np.asarray(state["vocabulary"]).astype(str)
        self._index = {t: n for n, t in enumerate(self.vocabulary_)}
        self.edges_ = {k[len("edges."):]: np.asarray(v, dtype=np.float64)
                       for k, v in state.items() if k.startswith("edges.")}
        return self


@dataclass
class FusedRows:
    """Fused rows of some items, and which block each has."""

    matrix: sp.csr_matrix
    present: dict[str, np.ndarray]


class FusedEncoder:
    """Fits the block encoders on the catalogue, fuses blocks into one sparse row."""

    def __init__(self, builder: ItemFeatureBuilder, attributes: AttributeEncoder | None,
                 weights: Mapping[str, float]) -> None:
        self.builder = builder
        self.attributes = attributes
        self.weights = dict(weights)

    @property
    def blocks(self) -> list[str]:
        """Blocks in row order (only those this encoder computes)."""
        have = set(self.builder.blocks) | ({"attributes"} if self.attributes else set())
        return [b for b in FUSED_BLOCKS if b in have]

    def fit(self, items: pd.DataFrame, tree: CategoryTree) -> FusedEncoder:
        try:
            self.builder.fit(items, tree)
        except ValueError as exc:
            if "text" not in self.builder.blocks or "TF-IDF found no words" not in str(exc):
                raise
            log.warning("plugins.multimodal: no item has text (%s); the text block is off", exc)
            self.builder.blocks = tuple(b for b in self.builder.blocks if b != "text")
            self.builder.fit(items, tree)
        if self.attributes is not None:
            self.attributes.fit(items)
        self.dims_ = self._dims(items.iloc[:1], tree)
        return self

    def _raw(self, items: pd.DataFrame, tree: CategoryTree) -> dict[str, sp.csr_matrix]:
        blocks = {b: sp.csr_matrix(m, dtype=np.float32)
                  for b, m in self.builder.transform(items, tree).blocks.items()}
        if self.attributes is not None:
            blocks["attributes"] = sp.csr_matrix(unit_rows(self.attributes.transform(items)))
        return blocks

    def _dims(self, items: pd.DataFrame, tree: CategoryTree) -> dict[str, int]:
        return {b: m.shape[1] for b, m in self._raw(items, tree).items()}

    @property
    def n_columns(self) -> int:
        return sum(self.dims_.values()) + len(self.dims_)

    def columns_of(self, block: str) -> slice:
        """Columns of ``block`` in the fused row."""
        start = 0
        for b in self.blocks:
            if b == block:
                return slice(start, start + self.dims_[b])
            start += self.dims_[b]
        raise KeyError(block)

    def flag_column(self, block: str) -> int:
        """The column that is 1 when the item lacks ``block``."""
        return sum(self.dims_.values()) + self.blocks.index(block)

    def transform(self, items: pd.DataFrame, tree: CategoryTree) -> FusedRows:
        raw = self._raw(items, tree)
        parts, present = [], {}
        for block in self.blocks:
            matrix = raw[block]
            present[block] = has_rows(matrix)
            parts.append(matrix * np.float32(self.weights.get(block, 1.0)))
        flags = np.column_stack([~present[b] for b in self.blocks]).astype(np.float32)
        parts.append(sp.csr_matrix(flags))
        return FusedRows(sp.csr_matrix(sp.hstack(parts), dtype=np.float32), present)

    def state(self) -> dict[str, np.ndarray]:
        out = {f"builder.{k}": v for k, v in self.builder.state().items()}
        if self.attributes is not None:
            out.update({f"attributes.{k}": v for k, v in self.attributes.state().items()})
        out["fused.blocks"] = np.array(list(self.dims_), dtype=str)
        out["fused.dims"] = np.array(list(self.dims_.values()), dtype=np.int64)
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> FusedEncoder:
        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        builder_state = part("builder.")
        self.builder.blocks = tuple(str(b) for b in builder_state["blocks"])
        self.builder.load_state(builder_state)
        if self.attributes is not None:
            self.attributes.load_state(part("attributes."))
        self.dims_ = {str(b): int(d) for b, d in zip(state["fused.blocks"], state["fused.dims"],
                                                     strict=True)}
        return self
