"""The ``cooccurrence`` plugin: "frequently bought together" and "customers also viewed".

It learns association rules between items from **baskets** (Agrawal, Imielinski & Swami
1993) and serves them item to item (Linden, Smith & York 2003). A basket is the set of
distinct items of one user's session, over the configured event types: by default
``add_to_cart`` and ``purchase`` ("frequently bought together"); ``["view", "click"]``
gives "customers also viewed". A session is the events sharing a session id where the
data has one, else a window of activity that ends after ``session_gap_minutes`` without
an event. An item is in a basket when its summed event-type weight in that session is
positive (an item added and then removed is not).

With ``w_b`` the weight of basket ``b`` (1, or ``2 ** (-age_b / half_life_days)`` with
decay, ``age_b`` the time from the basket's last event to the newest event of the data):

* ``N = sum_b w_b``, ``n(A) = sum_{b ∋ A} w_b``, ``n(A, B) = sum_{b ∋ A, B} w_b``
  (the pair counts are ``Bᵀ W B`` for the baskets x items 0/1 matrix ``B``);
* ``support(A, B) = n(A, B) / N``;
* ``confidence(A -> B) = n(A, B) / n(A)`` (an estimate of P(B in basket | A in it));
* ``lift(A, B) = confidence(A -> B) / P(B) = n(A, B) N / (n(A) n(B))``;
* each measure is multiplied by ``n(A, B) / (n(A, B) + shrinkage)``: a pair seen in
  two baskets of rare items has a lift in the thousands by chance, and the factor
  keeps such pairs from outranking well-supported ones (significance weighting, as
  in neighbourhood collaborative filtering);
* pairs seen in fewer than ``min_support`` baskets (undecayed count) are dropped, and
  each item keeps its ``neighbours`` best partners.

Scores: ``similar(A)[B] = m(A -> B)``; for a request, the basket is the cart
(``request.context["cart"]``, a list of item ids), else the user's current session in
``request.history``, and ``score[B] = sum_{A in basket} m(A -> B)``. Items no basket
item points to score a popularity tie-break below every associated item, so lists are
full; an item the model never saw scores NaN; no usable basket: the plugin abstains.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from marshmallow import fields, validate

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset, lookup_codes, session_numbers
from recsdk.errors import ConfigurationError
from recsdk.interactions import (
    SECONDS_PER_DAY,
    SPARSE_SCORING_SHARE,
    Weighting,
    WeightingParams,
    candidate_scores,
    sorted_lookup,
)
from recsdk.retrieval import (
    PoolSettings,
    RequestVectors,
    pool_answer,
    served_items,
    top_positions,
)
from recsdk.types import (
    CandidateSet,
    PluginContext,
    RecommendationRequest,
    Retrieved,
    UserHistory,
)

log = logging.getLogger(__name__)

NAME = "cooccurrence"
MEASURES = ("confidence", "lift", "support")
DEFAULT_EVENT_TYPES = ("add_to_cart", "purchase")
#: Upper bound of the pair entries one block of the ``Bᵀ W B`` product may create
#: (about 16 bytes each, times three arrays while pruning): bounds fit memory.
BLOCK_PAIRS = 2**22
#: Unassociated items score at most this share of the smallest association.
TIE_BREAK = 1e-3
#: Columns of ``dataset.interactions`` that may carry sessions (``session``: the
#: dataset's session numbers, see InteractionDataset; ``session_id``: raw ids).
SESSION_COLUMNS = ("session", "session_id")


class CooccurrenceParams(WeightingParams):
    """Parameters; ``event_types`` and ``half_life_days`` come from WeightingParams."""

    event_types = fields.List(
        fields.String(), load_default=lambda: list(DEFAULT_EVENT_TYPES),
        validate=validate.Length(min=1),
        metadata={"description": "baskets hold the items of these event types; "
                  "[\"view\", \"click\"] gives \"customers also viewed\""})
    measure = fields.String(
        load_default="confidence", validate=validate.OneOf(MEASURES),
        metadata={"description": "confidence: n(A,B)/n(A); lift: confidence/P(B); "
                  "support: n(A,B)/N"})
    min_support = fields.Integer(
        load_default=1, validate=validate.Range(min=1),
        metadata={"description": "drop pairs seen together in fewer baskets than this"})
    neighbours = fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=10_000),
        metadata={"description": "keep this many best partners per item"})
    shrinkage = fields.Float(
        load_default=10.0, validate=validate.Range(min=0),
        metadata={"description": "multiply each measure by n(A,B)/(n(A,B)+shrinkage)"})
    session_gap_minutes = fields.Float(
        load_default=30.0, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "without a session id, a session ends after this many "
                  "minutes without an event"})


# --------------------------------------------------------------------------------------
# Sessions and baskets
# --------------------------------------------------------------------------------------


def session_codes(users: np.ndarray, timestamps: np.ndarray, session_ids: Sequence[Any] | None,
                  gap_seconds: float) -> np.ndarray:
    """A session number per event: its (user, session id) where it has one, else the
    user's window of activity, cut where ``gap_seconds`` pass without an event.

    Missing timestamps never cut a session (data without times is one session a user).
    Every number belongs to one user. Memory stays a few arrays of the events' length
    (at 100M events this runs beside the whole dataset): windows are cut only among
    events without a session id, and where no session id is shared by two users the
    dataset's session numbers are used as they are.
    """
    n = len(users)
    codes = np.empty(n, dtype=np.int64)
    explicit = np.zeros(n, dtype=bool)
    if session_ids is not None:
        numbers = np.asarray(session_ids)
        if not np.issubdtype(numbers.dtype, np.integer):  # ids, not the dataset's numbers
            numbers = session_numbers(numbers)
        np.greater_equal(numbers, 0, out=explicit)
    base = 0  # the first number left for windows
    if explicit.any():
        everywhere = bool(explicit.all())  # the usual case: views, not copies
        named = numbers if everywhere else numbers[explicit]
        who = users if everywhere else users[explicit]
        into = slice(None) if everywhere else explicit
        owner = session_owners(named, who)
        if np.array_equal(owner[named], who):  # no id shared by two users: numbers as is
            codes[into] = named
            base = len(owner)
        else:  # a (user, session) pair as one int64 key: no tuple per event
            pairs = named.astype(np.int64) * (int(users.max()) + 1)
            pairs += who
            paired, distinct = pd.factorize(pairs)
            codes[into] = paired
            base = len(distinct)
            del pairs, paired, distinct
        del named, who, owner
    windowed = ~explicit
    if windowed.any():
        codes[windowed] = base + _activity_windows(users[windowed],
                                                   np.asarray(timestamps, np.float64)[windowed],
                                                   gap_seconds)
    return codes


def _activity_windows(users: np.ndarray, timestamps: np.ndarray,
                      gap_seconds: float) -> np.ndarray:
    """Each event's window of its user's activity (numbered from 0), a window ending
    where ``gap_seconds`` pass without an event."""
    n = len(users)
    order = np.lexsort((np.nan_to_num(timestamps, nan=-np.inf), users))
    u, t = users[order], timestamps[order]
    new = np.ones(n, dtype=bool)
    if n > 1:
        with np.errstate(invalid="ignore"):
            new[1:] = (u[1:] != u[:-1]) | (np.diff(t) > gap_seconds)
    windows = np.empty(n, dtype=np.int64)
    windows[order] = np.cumsum(new) - 1
    return windows


def session_owners(sessions: np.ndarray, users: np.ndarray) -> np.ndarray:
    """The user of each session number (-1 for numbers no event has), from one
    assignment: exact when every number belongs to one user, as those of
    :func:`session_codes` do (where two users share one, either may be kept)."""
    owner = np.full(int(sessions.max()) + 1 if len(sessions) else 0, -1, dtype=np.int64)
    owner[sessions] = users
    return owner


def basket_matrix(sessions: np.ndarray, items: np.ndarray, weights: np.ndarray,
                  timestamps: np.ndarray, n_items: int) -> tuple[sp.csr_matrix, np.ndarray,
                                                                  np.ndarray]:
    """The baskets x items 0/1 matrix (an item is in when its summed weight is positive),
    each basket's last event time, and each basket's session number."""
    frame = pd.DataFrame({"s": sessions, "i": items, "w": weights})
    cells = frame.groupby(["s", "i"], sort=True)["w"].sum()
    cells = cells[cells > 0]
    sess = cells.index.get_level_values("s").to_numpy()
    basket_sessions, rows = np.unique(sess, return_inverse=True)
    matrix = sp.csr_matrix(
        (np.ones(len(cells)), (rows, cells.index.get_level_values("i").to_numpy())),
        shape=(len(basket_sessions), n_items))
    last = pd.Series(timestamps).groupby(sessions).max()
    times = last.reindex(basket_sessions).to_numpy(np.float64)
    return matrix, times, basket_sessions


def _blocks(work: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive item ranges whose summed pair work stays within ``budget`` (an item
    whose own work exceeds it forms a range alone)."""
    n = len(work)
    cumulative = np.concatenate([[0], np.cumsum(work)])
    start = 0
    while start < n:
        stop = int(np.searchsorted(cumulative, cumulative[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        yield start, stop
        start = stop


def top_per_row(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` largest entries (ties: lower column first), rows kept in order."""
    n_rows = len(indptr) - 1
    rows = np.repeat(np.arange(n_rows), np.diff(indptr))
    order = np.lexsort((indices, -data, rows))
    rank = np.arange(len(order)) - indptr[rows[order]]
    keep = order[rank < k]
    keep.sort()  # back to row-major, columns ascending within a row
    counts = np.bincount(rows[keep], minlength=n_rows)
    return np.concatenate([[0], np.cumsum(counts)]), indices[keep], data[keep]


def association_matrix(baskets: sp.csr_matrix, basket_weights: np.ndarray, measure: str,
                       min_support: int, neighbours: int, shrinkage: float,
                       block_pairs: int = BLOCK_PAIRS) -> tuple[sp.csr_matrix, np.ndarray, float]:
    """Items x items matrix of ``measure(A -> B)`` (top ``neighbours`` per row A), the
    weighted basket count per item ``n(A)`` and the weighted number of baskets ``N``.

    ``Bᵀ W B`` is formed one block of item rows at a time, pruned and cut to the
    ``neighbours`` best per row before the next block, so memory stays bounded by
    ``block_pairs`` plus the kept result however many items there are.
    """
    n_items = baskets.shape[1]
    w = np.asarray(basket_weights, dtype=np.float64)
    total = float(w.sum())
    item_counts = np.asarray(baskets.T @ w).ravel()
    items_t = sp.csr_matrix(baskets.T)
    decayed = not np.all(w == 1.0)
    weighted = sp.csr_matrix(sp.diags(w) @ baskets) if decayed else baskets
    sizes = np.diff(baskets.indptr).astype(np.int64)
    work = np.asarray(items_t @ sizes).ravel().astype(np.int64)
    indptrs, indices, data = [np.zeros(1, dtype=np.int64)], [], []
    offset = 0
    for lo, hi in _blocks(work, block_pairs):
        raw = items_t[lo:hi] @ baskets
        raw.sort_indices()
        if decayed:
            pair = items_t[lo:hi] @ weighted
            pair.sort_indices()
        else:
            pair = raw
        rows = np.repeat(np.arange(lo, hi), np.diff(raw.indptr))
        keep = (raw.data >= min_support) & (raw.indices != rows)
        rows, cols, n_ab = rows[keep], raw.indices[keep], pair.data[keep]
        if measure == "support":
            value = n_ab / total
        elif measure == "confidence":
            value = n_ab / item_counts[rows]
        else:
            value = n_ab * total / (item_counts[rows] * item_counts[cols])
        if shrinkage > 0:
            value = value * n_ab / (n_ab + shrinkage)
        counts = np.bincount(rows - lo, minlength=hi - lo)
        ptr = np.concatenate([[0], np.cumsum(counts)])
        ptr, cols, value = top_per_row(ptr, cols, value, neighbours)
        indptrs.append(ptr[1:] + offset)
        indices.append(cols)
        data.append(value)
        offset += len(cols)
    matrix = sp.csr_matrix(
        (np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
         np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
         np.concatenate(indptrs)), shape=(n_items, n_items))
    return matrix, item_counts, total


# --------------------------------------------------------------------------------------
# The plugin
# --------------------------------------------------------------------------------------


class Cooccurrence(Plugin):
    """Item-to-item association rules from session baskets (see the module docstring)."""

    Params = CooccurrenceParams

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self._configure(context.settings.event_weights)
        self.pools_ = PoolSettings.from_pipeline(context.settings.pipeline)

    def _configure(self, event_weights: Mapping[str, float]) -> None:
        params = {**self.params, "half_life_days": None}  # decay weighs baskets, not events
        self.weighting_ = Weighting.from_params(params, event_weights)

    @property
    def gap_seconds(self) -> float:
        return float(self.params["session_gap_minutes"]) * 60.0

    # ---- fit -------------------------------------------------------------------------

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        if not hasattr(self, "weighting_"):
            self._configure(context.settings.event_weights)
        inter = dataset.interactions
        timestamps = inter["timestamp"].to_numpy(np.float64)
        finite = timestamps[np.isfinite(timestamps)]
        self.data_end_ = float(finite.max()) if len(finite) else 0.0
        session_column = next((c for c in SESSION_COLUMNS if c in inter), None)
        sessions = session_codes(
            inter["user"].to_numpy(np.int64), timestamps,
            None if session_column is None else inter[session_column].to_numpy(),
            self.gap_seconds)
        weights = self.weighting_.weights(inter["type"], timestamps, self.data_end_,
                                          inter["value"])
        chosen = weights != 0
        baskets, times, basket_sessions = basket_matrix(
            sessions[chosen], inter["item"].to_numpy(np.int64)[chosen], weights[chosen],
            timestamps[chosen], dataset.n_items)
        if baskets.shape[0] == 0:
            present = sorted({str(t) for t in inter["type"].unique()})
            raise ConfigurationError(
                f"plugins.{NAME}: the training data has no basket of event types "
                f"{list(self.weighting_.event_types or ())} (event types present: "
                f"{present or 'none'}); set event_types to types the data has")
        half_life = self.params.get("half_life_days")
        basket_weights = np.ones(baskets.shape[0])
        if half_life is not None:
            age = np.where(np.isfinite(times), np.maximum(self.data_end_ - times, 0.0), 0.0)
            basket_weights = np.exp2(-age / (half_life * SECONDS_PER_DAY))
        self.associations_, self.item_baskets_, self.n_baskets_ = association_matrix(
            baskets, basket_weights, self.params["measure"], self.params["min_support"],
            self.params["neighbours"], self.params["shrinkage"])
        self.item_index_ = dict(dataset.item_index)
        self.item_ids_ = np.asarray(dataset.item_ids, dtype=object)
        self._set_tie_break()
        # offline batch path only (not saved): each user's newest basket
        basket_users = session_owners(sessions, inter["user"].to_numpy(np.int64))[
            basket_sessions]
        newest = pd.DataFrame({"u": basket_users, "t": np.nan_to_num(times, nan=-np.inf),
                               "b": np.arange(len(basket_users))})
        last = newest.sort_values(["u", "t", "b"]).groupby("u")["b"].last()
        rows = np.full(dataset.n_users, -1, dtype=np.int64)
        rows[last.index.to_numpy()] = last.to_numpy()
        self._user_index = dict(dataset.user_index)
        self._last_baskets = (rows, baskets)

    def _set_tie_break(self) -> None:
        """Popularity in baskets, scaled below the smallest association, so that items
        no basket item points to still come in a sensible order after associated ones."""
        counts = self.item_baskets_
        data = self.associations_.data
        smallest = float(data[data > 0].min()) if (data > 0).any() else 1.0
        top = float(counts.max()) if len(counts) and counts.max() > 0 else 1.0
        self.tie_break_ = TIE_BREAK * smallest * counts / top

    # ---- state -----------------------------------------------------------------------

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        if not hasattr(self, "associations_"):
            return None
        m = self.associations_
        return {"indptr": m.indptr, "indices": m.indices, "data": m.data,
                "item_baskets": self.item_baskets_,
                "totals": np.array([self.n_baskets_, self.data_end_])}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        counts = np.asarray(state["item_baskets"], dtype=np.float64)
        n = len(counts)
        if n != dataset.n_items:
            raise ConfigurationError(
                f"plugins.{NAME}: saved state has {n} items, the run's vocabulary "
                f"{dataset.n_items}")
        self.associations_ = sp.csr_matrix(
            (np.asarray(state["data"]), np.asarray(state["indices"]),
             np.asarray(state["indptr"])), shape=(n, n))
        self.item_baskets_ = counts
        self.n_baskets_, self.data_end_ = (float(v) for v in state["totals"])
        self.item_index_ = dict(dataset.item_index)
        self.item_ids_ = np.asarray(dataset.item_ids, dtype=object)
        self._last_baskets = None
        self._set_tie_break()

    # ---- baskets at request time -------------------------------------------------------

    def _codes(self, item_ids: Iterable[Any]) -> np.ndarray:
        get = self.item_index_.get
        codes = {get(str(i), -1) for i in item_ids}
        codes.discard(-1)
        return np.array(sorted(codes), dtype=np.int64)

    def session_basket(self, history: UserHistory) -> np.ndarray:
        """Codes of the basket of the newest session in ``history``: the events sharing
        the newest event's session id, else those since the last gap of inactivity."""
        n = len(history)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        sid = history.session_ids[-1]
        if sid is not None:
            members = [i for i in range(n) if history.session_ids[i] == sid]
        else:
            ts = np.asarray(history.timestamps, dtype=np.float64)
            first = n - 1
            while first > 0 and not (ts[first] - ts[first - 1] > self.gap_seconds):
                first -= 1
            members = list(range(first, n))
        items = [history.item_ids[i] for i in members]
        weights = self.weighting_.weights([history.types[i] for i in members],
                                          np.zeros(len(members)), 0.0,
                                          [history.values[i] for i in members])
        totals: dict[str, float] = {}
        for item, weight in zip(items, weights, strict=True):
            if weight != 0:
                totals[item] = totals.get(item, 0.0) + float(weight)
        return self._codes(i for i, w in totals.items() if w > 0)

    def basket_scores(self, codes: np.ndarray) -> np.ndarray:
        """``sum_{A in basket} m(A -> B)`` for every item B, plus the tie-break."""
        sums = np.asarray(self.associations_[codes].sum(axis=0), dtype=np.float64).ravel()
        return sums + self.tie_break_

    def request_neighbours(self, request: RecommendationRequest, codes: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`basket_neighbours` once per request (retrieval, then scoring)."""
        cache = getattr(self, "_neighbours", None)
        if cache is None:
            cache = self._neighbours = RequestVectors[tuple[np.ndarray, np.ndarray]]()
        return cache.get(request.request_id, lambda: self.basket_neighbours(codes))

    def basket_neighbours(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The items the basket points to (sorted codes) and their summed association
        plus tie-break: the basket's rows only, no pass over the catalogue."""
        rows = self.associations_[codes]
        items, inverse = np.unique(rows.indices, return_inverse=True)
        sums = np.bincount(inverse, weights=rows.data.astype(np.float64),
                           minlength=len(items))
        return items.astype(np.int64), sums + self.tie_break_[items]

    def candidate_basket_scores(self, codes: np.ndarray, candidates: CandidateSet,
                                request: RecommendationRequest | None = None) -> np.ndarray:
        """:meth:`basket_scores` at the candidates; a few candidates (retrieval on) are
        looked up in the basket's neighbours instead of a dense row over every item."""
        n = len(self.tie_break_)
        if len(candidates) >= SPARSE_SCORING_SHARE * n:
            return candidate_scores(self.basket_scores(codes), candidates)
        found = None if request is None else self.request_neighbours(request, codes)
        items, sums = found if found is not None else self.basket_neighbours(codes)
        cand = np.asarray(candidates.codes, dtype=np.int64)
        known = (cand >= 0) & (cand < n)
        out = np.full(len(cand), np.nan)
        out[known] = sorted_lookup(items, sums, cand[known], self.tie_break_[cand[known]])
        return out

    def request_basket(self, request: RecommendationRequest) -> np.ndarray:
        """The cart's codes, else those of the newest session's basket."""
        codes = self._codes(request.cart)
        return codes if len(codes) else self.session_basket(request.history)

    @hookimpl
    def recsdk_retrieve_candidates(self, request: RecommendationRequest,
                                   n: int) -> Retrieved | None:
        """With pools on: the basket's strongest neighbours (its association rows)."""
        pools = getattr(self, "pools_", None) or PoolSettings()
        if not hasattr(self, "associations_"):
            return None
        if not pools.active(served_items(request, len(self.tie_break_))):
            return None
        codes = self.request_basket(request)
        if not len(codes):
            return None
        found = self.request_neighbours(request, codes)
        if found is None:
            return None
        items, scores = found
        best = top_positions(scores, pools.take(n))
        if not len(best):
            return None
        return pool_answer(self.item_ids_, items[best], scores[best])

    # ---- scoring -----------------------------------------------------------------------

    @hookimpl
    def recsdk_score(self, request: RecommendationRequest,
                     candidates: CandidateSet) -> np.ndarray | None:
        if not hasattr(self, "associations_"):
            return None
        codes = self.request_basket(request)
        if len(codes) == 0:
            return None
        return self.candidate_basket_scores(codes, candidates, request)

    @hookimpl
    def recsdk_score_users(self, user_ids: list[str],
                           candidates: CandidateSet) -> np.ndarray | None:
        """Each user's newest training basket as the basket (NaN row: the user has none)."""
        if getattr(self, "_last_baskets", None) is None or not hasattr(self, "associations_"):
            return None
        rows, baskets = self._last_baskets
        codes = lookup_codes(self._user_index, user_ids)
        basket_rows = np.where(codes >= 0, rows[np.maximum(codes, 0)], -1)
        has = basket_rows >= 0
        users = baskets[np.maximum(basket_rows, 0)]
        scores = np.asarray((users @ self.associations_).todense(), dtype=np.float64)
        scores += self.tie_break_
        scores[~has] = np.nan
        return candidate_scores(scores, candidates)

    @hookimpl
    def recsdk_score_similar(self, item_id: str, candidates: CandidateSet,
                             catalog: Catalog | None) -> np.ndarray | None:
        if not hasattr(self, "associations_"):
            return None
        code = self.item_index_.get(item_id)
        if code is None:
            return None
        return candidate_scores(self.basket_scores(np.array([code])), candidates)


__all__ = ["Cooccurrence", "CooccurrenceParams",
           "association_matrix", "basket_matrix", "session_codes"]
