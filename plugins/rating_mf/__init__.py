"""The ``rating_mf`` plugin: predicted star ratings by biased matrix factorisation.

Koren, Bell & Volinsky (2009), "Matrix Factorization Techniques for Recommender
Systems" (IEEE Computer 42(8)):

    r_hat(u, i) = mu + b_u + b_i + p_u . q_i

fitted to the ``value`` of events whose type is in ``rating_types`` (a user's latest
rating of an item counts) by minimising Koren et al.'s objective
sum (r_ui - r_hat)^2 + reg (|p_u|^2 + |q_i|^2 + b_u^2 + b_i^2) with alternating least
squares: with the item side fixed, every user's ``[p_u, b_u]`` is one ridge regression,
and the other way round. Each half-step solves all users (items) at once, batched in numpy, so the
fit is deterministic for a seed and needs neither torch nor a compiled extension.

Predictions are clipped to the observed rating scale. A user unknown at training who
has ratings in the request's history gets ``p_u, b_u`` by the same ridge solve against
the fixed item factors (fold-in); without ratings the plugin abstains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from marshmallow import RAISE, Schema, fields, validate

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset, lookup_codes
from recsdk.errors import ConfigurationError
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

NAME = "rating_mf"
#: float64 cells (rows x d x d, and entries x d x d) per batch of an ALS half-step.
SOLVE_CELLS = 2**24


class RatingMFParams(Schema):
    class Meta:
        unknown = RAISE

    rating_types = fields.List(
        fields.String(), load_default=lambda: ["rating"], validate=validate.Length(min=1),
        metadata={"description": "event types whose value is a rating"})
    factors = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=1024),
        metadata={"description": "dimensions of p_u and q_i"})
    reg = fields.Float(
        load_default=10.0, validate=validate.Range(min=1e-6, max=1e4),
        metadata={"description": "L2 penalty on every user's and item's factors and bias "
                  "(the same for few or many ratings, so sparse users shrink to the "
                  "biases)"})
    iterations = fields.Integer(
        load_default=15, validate=validate.Range(min=1, max=500),
        metadata={"description": "ALS sweeps (users then items)"})
    init_scale = fields.Float(
        load_default=0.1, validate=validate.Range(min=0, max=10),
        metadata={"description": "standard deviation of the seeded initial factors"})


@dataclass(frozen=True)
class Ratings:
    """One rating per (user, item): codes, values, and the observed scale."""

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray

    @classmethod
    def from_dataset(cls, dataset: InteractionDataset, types: Sequence[str]) -> Ratings:
        inter = dataset.interactions
        rated = inter[inter["type"].isin(list(types)) & np.isfinite(inter["value"])]
        if len(rated) == 0:
            present = sorted({str(t) for t in inter["type"].unique()})
            raise ConfigurationError(
                f"plugins.{NAME}: the training data has no event of rating_types "
                f"{list(types)} with a numeric value (event types present: "
                f"{present or 'none'}); nothing to learn ratings from")
        # the latest rating of a (user, item) pair wins
        rated = rated.sort_values("timestamp", kind="stable")
        rated = rated.drop_duplicates(["user", "item"], keep="last")
        return cls(rated["user"].to_numpy(np.int64), rated["item"].to_numpy(np.int64),
                   rated["value"].to_numpy(np.float64))


def ridge_rows(rows: sp.csr_matrix, features: np.ndarray, reg: float,
               out: np.ndarray | None = None) -> np.ndarray:
    """For each row r of ``rows`` (targets t at columns c), the w minimising
    sum_c (t_c - [f_c, 1] . w)^2 + reg * |w|^2; zeros for a row without entries.

    Rows are solved in batches of at most ``SOLVE_CELLS / d^2`` rows: the normal
    equations of a batch are one sparse product of its pattern with the outer products
    ``[f, 1][f, 1]^T`` of the feature rows, then one batched ``numpy.linalg.solve``.
    The outer products of all feature rows are computed once when they fit in
    ``SOLVE_CELLS``; otherwise a batch is also cut at that many entries and computes
    those of the columns it uses, so memory stays at a few ``SOLVE_CELLS`` float64
    cells however many users and items there are. Nothing else the size of ``rows``
    or ``features`` is allocated: the right-hand sides are formed per batch, and
    ``out`` (rows x d, every row overwritten) may be the caller's buffer.
    """
    n_rows = rows.shape[0]
    d = features.shape[1] + 1
    out = np.empty((n_rows, d)) if out is None else out
    limit = max(1, SOLVE_CELLS // (d * d))
    aug_all = _augmented(features) if len(features) <= limit else None
    outer_all = (None if aug_all is None else
                 (aug_all[:, :, None] * aug_all[:, None, :]).reshape(len(aug_all), d * d))
    diag = np.arange(d)
    start = 0
    while start < n_rows:
        stop = min(start + limit, n_rows)
        if aug_all is None:  # cut at `limit` entries too (at least one row)
            by_entries = int(np.searchsorted(rows.indptr, rows.indptr[start] + limit,
                                             side="right")) - 1
            stop = max(start + 1, min(stop, by_entries))
        lo, hi = rows.indptr[start], rows.indptr[stop]
        if aug_all is not None:
            cols, aug, outer = rows.indices[lo:hi], aug_all, outer_all
        else:
            used, local = np.unique(rows.indices[lo:hi], return_inverse=True)
            aug = _augmented(features[used])
            outer = (aug[:, :, None] * aug[:, None, :]).reshape(len(used), d * d)
            cols = local.ravel()
        indptr = rows.indptr[start:stop + 1] - lo
        shape = (stop - start, len(aug))
        rhs = np.asarray(sp.csr_matrix((rows.data[lo:hi], cols, indptr), shape=shape) @ aug)
        pattern = sp.csr_matrix((np.ones(hi - lo), cols, indptr), shape=shape)
        gram = np.asarray(pattern @ outer).reshape(stop - start, d, d)
        gram[:, diag, diag] += reg
        out[start:stop] = np.linalg.solve(gram, rhs[:, :, None])[..., 0]
        start = stop
    return out


def _augmented(features: np.ndarray) -> np.ndarray:
    """``[f, 1]`` for each feature row f (float64)."""
    return np.hstack([features, np.ones((len(features), 1))])


def _skip_normals(rng: np.random.Generator, count: int, step: int = 2**20) -> None:
    """Advance ``rng`` past ``count`` standard normals, a bounded slice at a time (the
    same stream position one draw of ``count`` would leave)."""
    for done in range(0, count, step):
        rng.standard_normal(min(step, count - done))


@dataclass
class RatingModel:
    """mu, biases and factors; ``known_users`` / ``known_items`` mark who had ratings."""

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    known_users: np.ndarray
    known_items: np.ndarray
    scale: tuple[float, float]
    reg: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Clipped predictions for pairs of codes; NaN where either is unknown."""
        out = np.full(len(users), np.nan)
        ok = ((users >= 0) & (users < len(self.known_users))
              & (items >= 0) & (items < len(self.known_items)))
        ok[ok] = self.known_users[users[ok]] & self.known_items[items[ok]]
        u, i = users[ok], items[ok]
        raw = (self.mu + self.user_bias[u] + self.item_bias[i]
               + np.einsum("ij,ij->i", self.user_factors[u], self.item_factors[i]))
        out[ok] = np.clip(raw, *self.scale)
        return out

    def predict_rows(self, p: np.ndarray, b: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Users (factors ``p``, biases ``b``) x item codes; NaN for unknown items."""
        ok = (items >= 0) & (items < len(self.known_items))
        ok[ok] = self.known_items[items[ok]]
        out = np.full((len(p), len(items)), np.nan)
        i = items[ok]
        raw = self.mu + b[:, None] + self.item_bias[i][None, :] + p @ self.item_factors[i].T
        out[:, ok] = np.clip(raw, *self.scale)
        return out

    def fold_in(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float] | None:
        """``p_u, b_u`` of a user with these ratings (item codes), against fixed items."""
        ok = (items >= 0) & (items < len(self.known_items))
        ok[ok] = self.known_items[items[ok]]
        if not ok.any():
            return None
        items, values = items[ok], values[ok]
        row = sp.csr_matrix((values - self.mu - self.item_bias[items],
                             items, [0, len(items)]), shape=(1, len(self.known_items)))
        w = ridge_rows(row, self.item_factors, self.reg)[0]
        return w[:-1], float(w[-1])

    def state(self) -> dict[str, np.ndarray]:
        return {"mu": np.array([self.mu]), "user_bias": self.user_bias,
                "item_bias": self.item_bias, "user_factors": self.user_factors,
                "item_factors": self.item_factors, "known_users": self.known_users,
                "known_items": self.known_items, "scale": np.array(self.scale),
                "reg": np.array([self.reg])}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> RatingModel:
        scale = np.asarray(state["scale"], dtype=np.float64)
        return cls(float(state["mu"][0]), np.asarray(state["user_bias"]),
                   np.asarray(state["item_bias"]), np.asarray(state["user_factors"]),
                   np.asarray(state["item_factors"]), np.asarray(state["known_users"], bool),
                   np.asarray(state["known_items"], bool), (float(scale[0]), float(scale[1])),
                   float(state["reg"][0]))


def fit_als(ratings: Ratings, n_users: int, n_items: int, factors: int, reg: float,
            iterations: int, init_scale: float, seed: int) -> RatingModel:
    """Biased MF by alternating batched ridge solves (ALS), seeded."""
    rng = np.random.default_rng(seed)
    mu = float(ratings.values.mean())
    by_user = sp.csr_matrix((ratings.values, (ratings.users, ratings.items)),
                            shape=(n_users, n_items))
    by_item = sp.csr_matrix(by_user.T)
    known_users = np.diff(by_user.indptr) > 0
    known_items = np.diff(by_item.indptr) > 0
    # one buffer per side, [factors, bias], overwritten by each half-step: a half-step
    # reads only the other side's, so no second copy of either is needed
    w_users, w_items = np.zeros((n_users, factors + 1)), np.zeros((n_items, factors + 1))
    p, bu = w_users[:, :-1], w_users[:, -1]
    q, bi = w_items[:, :-1], w_items[:, -1]
    # the users' initial factors are never read (the first half-step solves them):
    # skipped, not drawn, so that the items' draw is what it always was
    _skip_normals(rng, n_users * factors)
    q[:] = rng.normal(0.0, init_scale, (n_items, factors))
    for _ in range(iterations):
        # users: target r - mu - b_i, unknowns [p_u, b_u]
        target = by_user.copy()
        target.data = target.data - mu - bi[target.indices]
        ridge_rows(target, q, reg, out=w_users)  # p and bu are views of w_users
        target = by_item.copy()
        target.data = target.data - mu - bu[target.indices]
        ridge_rows(target, p, reg, out=w_items)  # q and bi: views of w_items
    p[~known_users], q[~known_items] = 0.0, 0.0
    return RatingModel(mu, bu, bi, p, q, known_users, known_items,
                       (float(ratings.values.min()), float(ratings.values.max())), reg)


class RatingMF(Plugin):
    """Explicit-rating prediction; ranks candidates by predicted stars."""

    Params = RatingMFParams

    @property
    def rating_types(self) -> list[str]:
        return list(self.params.get("rating_types", ["rating"]))

    # ---- lifecycle -------------------------------------------------------------------

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        p = self.params
        ratings = Ratings.from_dataset(dataset, self.rating_types)
        self.model_ = fit_als(ratings, dataset.n_users, dataset.n_items,
                              int(p.get("factors", 50)), float(p.get("reg", 10.0)),
                              int(p.get("iterations", 15)), float(p.get("init_scale", 0.1)),
                              context.seed)
        self.user_index_ = dataset.user_index
        self.item_index_ = dataset.item_index

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        return self.model_.state() if hasattr(self, "model_") else None

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        self.model_ = RatingModel.from_state(state)
        self.user_index_ = dataset.user_index
        self.item_index_ = dataset.item_index

    # ---- prediction ------------------------------------------------------------------

    def _item_codes(self, item_ids: Sequence[str]) -> np.ndarray:
        return lookup_codes(self.item_index_, [str(i) for i in item_ids])

    def _user_vector(self, user_id: str | None,
                     history: UserHistory | None) -> tuple[np.ndarray, float] | None:
        """The user's factors and bias: stored, folded in from rated history, or None."""
        model = self.model_
        code = self.user_index_.get(user_id) if user_id is not None else None
        if code is not None and model.known_users[code]:
            return model.user_factors[code], float(model.user_bias[code])
        if history is None or not len(history):
            return None
        wanted = set(self.rating_types)
        latest: dict[str, float] = {}
        order = np.argsort(np.nan_to_num(np.asarray(history.timestamps, dtype=np.float64),
                                         nan=-np.inf), kind="stable")
        for k in order:
            value = history.values[k]
            if history.types[k] in wanted and value is not None and np.isfinite(value):
                latest[history.item_ids[k]] = float(value)
        if not latest:
            return None
        return model.fold_in(self._item_codes(list(latest)), np.array(list(latest.values())))

    def predict(self, user_id: str | None, item_ids: Sequence[str],
                history: UserHistory | None = None) -> np.ndarray:
        """Predicted stars for ``item_ids`` (clipped to the training scale); NaN for an
        item unknown to the model, or for every item when the user is unknown and
        ``history`` holds no rating of ``rating_types``."""
        if not hasattr(self, "model_"):
            return np.full(len(item_ids), np.nan)
        vector = self._user_vector(user_id, history)
        if vector is None:
            return np.full(len(item_ids), np.nan)
        p, b = vector
        return self.model_.predict_rows(p[None, :], np.array([b]),
                                        self._item_codes(item_ids))[0]

    # ---- scoring ---------------------------------------------------------------------

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "model_"):
            return None
        vector = self._user_vector(request.user_id, request.history)
        if vector is None:
            return None
        p, b = vector
        return self.model_.predict_rows(p[None, :], np.array([b]),
                                        np.asarray(candidates.codes, dtype=np.int64))[0]

    @hookimpl
    def recsdk_predict_ratings(self, request: RecommendationRequest,
                               candidates: CandidateSet) -> np.ndarray | None:
        """Predicted stars for ``RecSDK.predict_ratings`` and ``GET /api/v1/ratings``:
        the same numbers the plugin ranks by, before the blend rescales them."""
        return self.recsdk_score(request=request, candidates=candidates)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "model_"):
            return None
        model = self.model_
        codes = lookup_codes(self.user_index_, user_ids)
        known = codes >= 0
        known[known] = model.known_users[codes[known]]
        safe = np.where(known, codes, 0)
        scores = model.predict_rows(model.user_factors[safe], model.user_bias[safe],
                                    np.asarray(candidates.codes, dtype=np.int64))
        scores[~known] = np.nan
        return scores

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        """Cosine of item factors; NaN for candidates without ratings."""
        if not hasattr(self, "model_"):
            return None
        model = self.model_
        code = self.item_index_.get(item_id)
        if code is None or not model.known_items[code]:
            return None
        q = model.item_factors
        norms = np.linalg.norm(q, axis=1)
        codes = np.asarray(candidates.codes, dtype=np.int64)
        ok = (codes >= 0) & (codes < len(q))
        ok[ok] = model.known_items[codes[ok]] & (norms[codes[ok]] > 0)
        out = np.full(len(codes), np.nan)
        if norms[code] == 0:
            return None
        c = codes[ok]
        out[ok] = q[c] @ q[code] / (norms[c] * norms[code])
        return out

