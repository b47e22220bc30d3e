"""Parameters and lifecycle shared by ``item_knn`` and ``user_knn``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from marshmallow import fields, validate
from recsdk_plugins.knn.similarity import SIMILARITIES, Similarity
from recsdk_plugins.knn.weighting import ROW_WEIGHTINGS, RowWeighting

from recsdk import Plugin, hookimpl
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset
from recsdk.interactions import UserRows, Weighting, WeightingParams, candidate_scores
from recsdk.types import CandidateSet, PluginContext


def knn_params(name: str, *, similarity: str, alpha: float, shrink: float, neighbours: int,
               weighting: str) -> type[WeightingParams]:
    """A parameter schema with the given defaults (each plugin has its own, tuned)."""
    declared = {
        "similarity": fields.String(
            load_default=similarity, validate=validate.OneOf(SIMILARITIES),
            metadata={"description": f"how two vectors compare: one of {SIMILARITIES}"}),
        "alpha": fields.Float(
            load_default=alpha, validate=validate.Range(0.0, 1.0),
            metadata={"description": "asymmetric_cosine only: exponent of the query's "
                      "norm (the neighbour's gets 1 - alpha); 0.5 is the cosine"}),
        "shrink": fields.Float(
            load_default=shrink, validate=validate.Range(min=0.0),
            metadata={"description": "added to the similarity's denominator: damps "
                      "similarities resting on few co-occurrences"}),
        "neighbours": fields.Integer(
            load_default=neighbours, validate=validate.Range(min=1, max=100_000),
            metadata={"description": "most similar neighbours kept per item (item_knn) "
                      "or used per user (user_knn)"}),
        "weighting": fields.String(
            load_default=weighting, validate=validate.OneOf(ROW_WEIGHTINGS),
            metadata={"description": f"row weighting before the similarity: one of "
                      f"{ROW_WEIGHTINGS}"}),
        "bm25_k1": fields.Float(
            load_default=1.2, validate=validate.Range(min=0.0),
            metadata={"description": "bm25 only: term-frequency saturation"}),
        "bm25_b": fields.Float(
            load_default=0.75, validate=validate.Range(0.0, 1.0),
            metadata={"description": "bm25 only: document-length normalisation"}),
    }
    schema = type(name, (WeightingParams,), declared)
    schema.__doc__ = "Neighbourhood parameters; defaults chosen by ``recsdk tune`` (docs)."
    return schema


#: Generic defaults (plain cosine); the plugins use their own tuned schemas.
KNNParams = knn_params("KNNParams", similarity="cosine", alpha=0.5, shrink=0.0,
                       neighbours=100, weighting="none")


class KNNPlugin(Plugin):
    """Common lifecycle: the configured name (for messages), event weights, weightings."""

    Params = KNNParams
    #: The plugin's entry point name, used in messages when no configured name is known.
    default_name: ClassVar[str] = "knn"

    def __init__(self, **params: Any) -> None:
        defaults = dict(type(self).Params().load({}))
        super().__init__(**{**defaults, **params})
        self.name = self.default_name
        self._event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS

    @classmethod
    def from_config(cls, params: Mapping[str, Any], name: str | None = None) -> Self:
        plugin = super().from_config(params, name)
        plugin.name = name or cls.default_name
        return plugin

    @property
    def similarity(self) -> Similarity:
        p = self.params
        return Similarity(p["similarity"], float(p["alpha"]), float(p["shrink"]))

    @property
    def weighting(self) -> Weighting:
        return Weighting.from_params(self.params, self._event_weights)

    def row_weighting(self, docs: sp.csr_matrix) -> RowWeighting:
        p = self.params
        return RowWeighting.fit(docs, p["weighting"], p["bm25_k1"], p["bm25_b"])

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self._event_weights = dict(context.settings.event_weights)

    def fit_rows(self, dataset: InteractionDataset, context: PluginContext | None) -> UserRows:
        if context is not None:
            self._event_weights = dict(context.settings.event_weights)
        return UserRows.fit(dataset, self.weighting, self.name)


def batched_scores(user_ids: list[str], candidates: CandidateSet, step: int,
                   score: Callable[[list[str]], tuple[np.ndarray, np.ndarray]]
                   ) -> np.ndarray:
    """The batch path of both neighbourhood plugins: ``score(batch)`` gives the batch's
    scores over all items and its known-user mask, ``step`` users at a time (bounding
    the dense block); rows of unknown users, or with nothing positive, are NaN."""
    out = np.empty((len(user_ids), len(candidates)), dtype=np.float64)
    for start in range(0, len(user_ids), step):
        scores, known = score(user_ids[start:start + step])
        block = candidate_scores(scores, candidates)
        block[~known | no_signal(scores)] = np.nan
        out[start:start + step] = block
    return out


def no_signal(scores: np.ndarray) -> np.ndarray:
    """Rows (users) whose scores hold nothing positive: the plugin abstains for them."""
    return ~(scores > 0).any(axis=-1)
