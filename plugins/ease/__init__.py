"""The ``ease`` plugin: EASE^R, an item-item linear autoencoder with a closed form.

Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data" (WWW '19):

    G = X^T X + lambda I,   P = G^-1,   B = I - P / diag(P)   (column-wise; diag(B) = 0)

and a user's scores are ``x_u @ B``. With ``dropout = p > 0`` the penalty grows with each
item's own weight, ``lambda_i = lambda + p / (1 - p) G_ii``: the emphasised denoising
autoencoder (EDLAE) of Steck, "Autoencoders that don't overfit towards the Identity"
(NeurIPS 2020), the closed form of training B on inputs with a share ``p`` dropped.

``X`` is the weighted users x items matrix of :mod:`recsdk.interactions`, so event-type
weights, the type filter and time decay are the same as every other collaborative
plugin's, and at request time ``x_u`` is the user's row *now* (training row plus newer
events, or the whole history of a user the model never saw): a new click changes the
list without retraining.

B is a dense items x items float32 matrix (4 n^2 bytes), solved in place by a Cholesky
factorisation and inverse (LAPACK ``potrf``/``potri``), so the fit peaks at about one
such matrix. ``max_items`` bounds it: beyond it the model keeps the ``max_items`` items
with the most users (``on_too_large = "restrict"``, the others score NaN so the blend
falls back to other plugins for them) or refuses (``"error"``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.linalg.lapack as lapack
import scipy.sparse as sp
from marshmallow import fields, validate

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.interactions import (
    UserRows,
    Weighting,
    WeightingParams,
    candidate_scores,
    close_pairs,
)
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest

log = logging.getLogger(__name__)

NAME = "ease"
TOO_LARGE = ("restrict", "error")
#: G is computed in GRAM_SPLITS blocks of columns (at least MIN_BLOCK wide), so the
#: sparse product's temporary (12 bytes a cell) stays under a fifth of G's 4 n^2 bytes.
GRAM_SPLITS = 16
MIN_BLOCK = 256


class EaseParams(WeightingParams):
    l2 = fields.Float(
        load_default=500.0, validate=validate.Range(min=1e-3, max=1e7),
        metadata={"description": "lambda, the L2 penalty on B (larger: closer to "
                  "popularity-free co-occurrence smoothing); tuned on ML-100K"})
    dropout = fields.Float(
        load_default=0.0, validate=validate.Range(min=0.0, max=0.95),
        metadata={"description": "0: EASE's penalty lambda on every item; p > 0: lambda + "
                  "p / (1 - p) x the item's own Gram weight (EDLAE, Steck 2020), which "
                  "penalises popular items' weights more"})
    max_items = fields.Integer(
        load_default=20_000, validate=validate.Range(min=2, max=200_000),
        metadata={"description": "most items the dense items x items model may hold "
                  "(4 bytes x max_items^2: 1.6 GB at 20,000)"})
    order_window = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=1000),
        metadata={"description": "0: learn from which items each user has; h > 0: from "
                  "which items users had at most h events apart in time order (closer "
                  "pairs count more; recsdk.interactions.close_pairs)"})
    on_too_large = fields.String(
        load_default="restrict", validate=validate.OneOf(TOO_LARGE),
        metadata={"description": "more items with interactions than max_items: restrict "
                  "the model to the max_items items with most users (others score NaN), "
                  "or error"})


def gram(x: sp.csr_matrix) -> np.ndarray:
    """Dense float32 ``X^T X``, built a block of columns at a time."""
    n = x.shape[1]
    xt = sp.csr_matrix(x.T)
    xc = sp.csc_matrix(x)
    g = np.empty((n, n), dtype=np.float32)
    block = max(MIN_BLOCK, -(-n // GRAM_SPLITS))
    for start in range(0, n, block):
        stop = min(start + block, n)
        g[:, start:stop] = (xt @ xc[:, start:stop]).toarray()
    return g


def window_gram(pairs: Iterable[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
                items: np.ndarray, n_items: int) -> np.ndarray:
    """Dense float32 ``M^T M`` over the model ``items`` from the close pairs of
    :func:`recsdk.interactions.close_pairs` (both orders added for ``d > 0``), summed in
    place: the fit holds ``G`` and one distance's pairs, never ``M``."""
    position = np.full(n_items, -1, dtype=np.int64)
    position[items] = np.arange(len(items))
    n = len(items)
    g = np.zeros((n, n), dtype=np.float32)
    flat = g.reshape(-1)
    for d, earlier, later, weights in pairs:
        a, b = position[earlier], position[later]
        kept = (a >= 0) & (b >= 0)
        a, b, w = a[kept], b[kept], weights[kept].astype(np.float32)
        np.add.at(flat, a * n + b, w)
        if d:
            np.add.at(flat, b * n + a, w)
    return g


def regularise(g: np.ndarray, l2: float, dropout: float) -> np.ndarray:
    """Add the penalty to the diagonal of Gram matrix ``g`` in place (and return it):
    ``l2`` on every item, plus ``dropout / (1 - dropout)`` times the item's own weight
    ``G_ii`` (EDLAE's emphasised dropout; 0 leaves EASE's uniform penalty)."""
    diagonal = np.diag_indices(len(g))
    g[diagonal] = g[diagonal] * np.float32(1.0 / (1.0 - dropout)) + np.float32(l2)
    return g


def ease_weights(g: np.ndarray) -> np.ndarray:
    """B = I - P / diag(P) with P = G^-1, computed in place in ``g`` (which it returns).

    ``potrf`` + ``potri`` invert the symmetric positive definite G through its Cholesky
    factor without a second n x n array (``numpy.linalg.inv`` needs two and is slower:
    benchmarks/ease_speed.py).
    """
    n = len(g)
    if n == 0:
        return g
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (g,))
    # Fortran order of the C-ordered symmetric g is its transpose, which is g itself
    c, info = potrf(g.T, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"X^T X + l2 I is not positive definite (potrf {info})")
    p, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverting X^T X + l2 I failed (potri {info})")
    p = p.T  # back to C order, where potri's triangle is the lower one
    _mirror_lower(p)
    diag = np.diag(p).copy()
    p /= -diag[np.newaxis, :]
    p[np.diag_indices(n)] = 0.0
    return p


def _mirror_lower(a: np.ndarray) -> None:
    """Copy the lower triangle of square ``a`` onto its upper one, a block at a time
    (index arrays of a whole triangle would take 8 n^2 bytes)."""
    n = len(a)
    width = max(MIN_BLOCK, -(-n // GRAM_SPLITS))
    for start in range(0, n, width):
        stop = min(start + width, n)
        a[:start, start:stop] = a[start:stop, :start].T
        square = a[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        square[upper] = square.T[upper]


class EASE(Plugin):
    """EASE^R scores: the user's current row times the learned item-item matrix B."""

    Params = EaseParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS

    def _weighting(self) -> Weighting:
        return Weighting.from_params(self.params, self._event_weights)

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self._event_weights = dict(context.settings.event_weights)

    def model_items(self, x: sp.csr_matrix) -> np.ndarray:
        """Item codes the model holds: those with interactions, at most ``max_items``."""
        users = np.diff(sp.csc_matrix(x).indptr)
        active = np.flatnonzero(users > 0)
        limit = int(self.params.get("max_items", 20_000))
        if len(active) <= limit:
            return active
        if self.params.get("on_too_large", "restrict") == "error":
            raise ConfigurationError(
                f"plugins.{NAME}: {len(active)} items have interactions, more than "
                f"max_items = {limit} (the dense items x items model would take "
                f"{4 * len(active) ** 2 / 2**30:.1f} GiB); raise max_items or set "
                "on_too_large = \"restrict\"")
        # most users first, ties by code, so the choice does not depend on the sort
        order = np.lexsort((active, -users[active]))
        kept = np.sort(active[order[:limit]])
        share = users[kept].sum() / users.sum()
        log.warning("plugins.%s: %d items have interactions, more than max_items = %d; the "
                    "model keeps the %d most used (%.1f%% of user-item pairs), the others "
                    "score NaN", NAME, len(active), limit, limit, 100 * share)
        return kept

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self._event_weights = dict(context.settings.event_weights)
        rows = UserRows.fit(dataset, self._weighting(), NAME)
        items = self.model_items(rows.matrix)
        window = int(self.params.get("order_window", 0))
        g = gram(rows.matrix[:, items]) if window == 0 else window_gram(
            close_pairs(dataset, rows, window), items, dataset.n_items)
        b = ease_weights(regularise(g, float(self.params.get("l2", 500.0)),
                                    float(self.params.get("dropout", 0.0))))
        self.rows_, self.items_, self.b_ = rows, items, b

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "b_"):
            return None
        return {"B": self.b_, "items": self.items_, **self.rows_.state()}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        self.rows_ = UserRows.from_state(state, dataset, self._weighting())
        self.items_ = np.asarray(state["items"], dtype=np.int64)
        self.b_ = state["B"]

    # ---- scoring ---------------------------------------------------------------------

    def _full(self, scores: np.ndarray) -> np.ndarray:
        """Model-item scores spread over the whole vocabulary, NaN outside the model."""
        out = np.full((*scores.shape[:-1], self.rows_.n_items), np.nan, dtype=np.float64)
        out[..., self.items_] = scores
        return out

    def _scores(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores of rows already in model-item space (columns ``items_``)."""
        x = sp.csr_matrix(rows, dtype=np.float32)
        return np.asarray(x @ self.b_, dtype=np.float64)

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "b_"):
            return None
        row = self.rows_.request_row(request.user_id, request.history)[:, self.items_]
        if row.nnz == 0:
            return None  # no usable history: abstain, the fallback serves the user
        return candidate_scores(self._full(self._scores(row)[0]), candidates)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "b_"):
            return None
        rows, _ = self.rows_.batch_rows(user_ids)
        rows = rows[:, self.items_]
        scores = self._scores(rows)
        scores[np.diff(rows.indptr) == 0] = np.nan  # no history: as recsdk_score abstains
        return candidate_scores(self._full(scores), candidates)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Row j of B: the scores of a user whose only history is the item."""
        if not hasattr(self, "b_"):
            return None
        code = self.rows_.item_index.get(item_id)
        if code is None:
            return None
        pos = np.searchsorted(self.items_, code)
        if pos >= len(self.items_) or self.items_[pos] != code:
            return None
        return candidate_scores(self._full(np.asarray(self.b_[pos], dtype=np.float64)),
                                candidates)
