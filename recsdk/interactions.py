"""Weighted user x item matrices for collaborative plugins, and their fold-in at request time.

Every collaborative plugin (neighbourhoods, matrix factorisation, linear autoencoders)
learns from the same thing: a users x items matrix whose cells say how strongly a user
chose an item. :class:`Weighting` turns the event log into that matrix the same way for
all of them: each event counts its type's configured weight (a purchase more than a
view, a return against), optionally halved every ``half_life_days`` before the newest
event, optionally only if its value (a rating) is at least ``min_value``, summed per
(user, item) and clipped at zero.

At request time the same weighting turns a user's history into a row in the model's
item space (:meth:`UserRows.request_row`): the user's training row, plus the events of
the history newer than the training data (so a click made after training changes the
next list without retraining), or the whole history for a user the model never saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from marshmallow import RAISE, Schema, fields, validate

from recsdk.dataset import InteractionDataset, lookup_codes
from recsdk.errors import ConfigurationError
from recsdk.types import CandidateSet, UserHistory

SECONDS_PER_DAY = 86400.0


class WeightingParams(Schema):
    """Parameters every collaborative plugin shares; plugin schemas inherit them."""

    class Meta:
        unknown = RAISE

    event_types = fields.List(
        fields.String(), load_default=None, allow_none=True, validate=validate.Length(min=1),
        metadata={"description": "learn only from these event types (none: every type with "
                  "a weight in [event_weights]); e.g. [\"add_to_cart\", \"purchase\"]"})
    half_life_days = fields.Float(
        load_default=None, allow_none=True,
        validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "an event's weight halves every this many days before the "
                  "newest event; none: no time decay"})
    min_value = fields.Float(
        load_default=None, allow_none=True, allow_nan=False,
        metadata={"description": "learn only from events whose value (a rating, say) is at "
                  "least this; events without a value count nothing; none: every event"})


@dataclass(frozen=True)
class Weighting:
    """How events become matrix cells: type weights, a type filter, a value floor and
    time decay."""

    event_weights: Mapping[str, float]
    event_types: tuple[str, ...] | None = None
    half_life_days: float | None = None
    min_value: float | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any],
                    event_weights: Mapping[str, float]) -> Weighting:
        types = params.get("event_types")
        return cls(dict(event_weights), tuple(types) if types else None,
                   params.get("half_life_days"), params.get("min_value"))

    def weights(self, types: Sequence[str] | np.ndarray | pd.Series, timestamps: np.ndarray,
                reference_time: float,
                values: Sequence[float] | np.ndarray | pd.Series | None = None) -> np.ndarray:
        """Each event's weight: its type's weight (0 when filtered out, or when its value
        is below ``min_value`` or missing), decayed.

        Types are looked up once per distinct type, not per event (a categorical
        column passes its codes through as they are). ``values`` may be omitted only
        without ``min_value``."""
        get = self.event_weights.get
        allowed = None if self.event_types is None else set(self.event_types)
        if isinstance(types, pd.Series) and isinstance(types.dtype, pd.CategoricalDtype):
            codes, names = types.cat.codes.to_numpy(), types.cat.categories
        else:
            codes, names = pd.factorize(np.asarray(types, dtype=object))
        per_type = np.fromiter(
            (get(t, 1.0) if allowed is None or t in allowed else 0.0 for t in names),
            dtype=np.float64, count=len(names))
        # a missing type (code -1): weight 1 unless only some types are kept
        w = np.append(per_type, 1.0 if allowed is None else 0.0)[codes]
        if self.half_life_days is not None and len(w):
            age = reference_time - np.asarray(timestamps, dtype=np.float64)
            age = np.where(np.isfinite(age), np.maximum(age, 0.0), 0.0)
            w *= np.exp2(-age / (self.half_life_days * SECONDS_PER_DAY))
        if self.min_value is not None:
            if values is None:
                raise ValueError("Weighting with min_value needs the events' values")
            w *= np.asarray(values, dtype=np.float64) >= self.min_value  # NaN: False
        return w


def _data_end(timestamps: np.ndarray) -> float:
    finite = timestamps[np.isfinite(timestamps)]
    return float(finite.max()) if len(finite) else 0.0


def weighted_matrix(dataset: InteractionDataset, weighting: Weighting,
                    plugin: str) -> tuple[sp.csr_matrix, float]:
    """The users x items matrix of ``dataset`` under ``weighting``, and the data's end time.

    Raises :class:`ConfigurationError` naming ``plugin`` when no interaction of the
    plugin's event types is left: a model fitted on nothing would serve noise.
    """
    inter = dataset.interactions
    timestamps = inter["timestamp"].to_numpy(np.float64)
    end = _data_end(timestamps)
    values = weighting.weights(inter["type"], timestamps, end, inter["value"])
    matrix = sp.csr_matrix(
        (values.astype(np.float32), (inter["user"].to_numpy(), inter["item"].to_numpy())),
        shape=(dataset.n_users, dataset.n_items))
    matrix.sum_duplicates()
    matrix.data = np.clip(matrix.data, 0, None)
    matrix.eliminate_zeros()
    if matrix.nnz == 0:
        present = sorted({str(t) for t in inter["type"].unique()})
        wanted = list(weighting.event_types) if weighting.event_types else "any type"
        floor = "" if weighting.min_value is None else \
            f" with a value of at least min_value = {weighting.min_value:g}"
        raise ConfigurationError(
            f"plugins.{plugin}: the training data has no positive interaction of event "
            f"types {wanted}{floor} (event types present: {present or 'none'}); nothing "
            "to learn")
    return matrix, end


def close_pairs(dataset: InteractionDataset, rows: UserRows, window: int
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The pairs of each user's events at most ``window`` apart in time order, for models
    that should learn from what a user had *close together* rather than at all.

    The events counted are those of a positive weight (``rows.weighting``) on an item in
    the user's row of the fitted matrix ``rows``: a purchase that a return cancelled is
    not in the row and teaches nothing here either. A user's events are ordered by time
    (ties in log order). For each distance ``d = 0 .. window`` this yields ``(d, earlier
    items, later items, weights)`` over all users, a pair's weight ``w_a w_b (1 - d /
    (window + 1))``; ``d = 0`` pairs each event with itself. Summed into an items x items
    matrix (both orders for ``d > 0``) this is ``M^T M`` for ``M`` the user's history cut
    into overlapping windows of ``window + 1`` events with each event's weight over
    ``sqrt(window + 1)``: on 0/1 data its diagonal is the plain ``X^T X``'s, and pairs
    further apart count nothing. Memory is one distance's pairs at a time, O(events).
    """
    inter = dataset.interactions
    timestamps = inter["timestamp"].to_numpy(np.float64)
    values = rows.weighting.weights(inter["type"], timestamps, rows.data_end, inter["value"])
    users, items = inter["user"].to_numpy(np.int64), inter["item"].to_numpy(np.int64)
    chosen = np.flatnonzero(values > 0)
    in_row = np.asarray(rows.matrix[users[chosen], items[chosen]]).ravel() > 0
    chosen = chosen[in_row]
    order = chosen[np.lexsort((np.nan_to_num(timestamps[chosen], nan=-np.inf),
                               users[chosen]))]
    users, items = users[order], items[order]
    weights = values[order].astype(np.float64)
    n = len(users)
    for d in range(min(window, max(n - 1, 0)) + 1):
        same = users[d:] == users[:n - d]
        yield (d, items[:n - d][same], items[d:][same],
               (weights[:n - d] * weights[d:])[same] * (1.0 - d / (window + 1.0)))


class UserRows:
    """The fitted users x items matrix, and each user's row as it is at request time."""

    def __init__(self, matrix: sp.csr_matrix, user_index: Mapping[str, int],
                 item_index: Mapping[str, int], weighting: Weighting, data_end: float) -> None:
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        self.user_index = user_index
        self.item_index = item_index
        self.weighting = weighting
        self.data_end = data_end

    @classmethod
    def fit(cls, dataset: InteractionDataset, weighting: Weighting, plugin: str) -> UserRows:
        matrix, end = weighted_matrix(dataset, weighting, plugin)
        return cls(matrix, dataset.user_index, dataset.item_index, weighting, end)

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    # ---- state -----------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        m = self.matrix
        return {"rows_indptr": m.indptr, "rows_indices": m.indices, "rows_data": m.data,
                "rows_shape": np.array(m.shape, dtype=np.int64),
                "rows_data_end": np.array([self.data_end])}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], dataset: InteractionDataset,
                   weighting: Weighting) -> UserRows:
        shape = tuple(int(s) for s in state["rows_shape"])
        matrix = sp.csr_matrix((state["rows_data"], state["rows_indices"],
                                state["rows_indptr"]), shape=shape)
        return cls(matrix, dataset.user_index, dataset.item_index, weighting,
                   float(state["rows_data_end"][0]))

    # ---- rows ------------------------------------------------------------------------

    def batch_rows(self, user_ids: Sequence[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Training rows of ``user_ids`` (empty for unknown users) and a known-user mask."""
        codes = lookup_codes(self.user_index, user_ids)
        known = codes >= 0
        rows = self.matrix[np.maximum(codes, 0)]
        if not known.all():
            rows = sp.diags(known.astype(np.float32)) @ rows
            rows.eliminate_zeros()
        return sp.csr_matrix(rows), known

    def user_code(self, user_id: str | None) -> int | None:
        """The user's row in the training matrix, None for a user the model never saw."""
        return self.user_index.get(user_id) if user_id is not None else None

    def new_events(self, user_id: str | None, history: UserHistory) -> np.ndarray:
        """Which history events the training row lacks: those newer than the training
        data for a known user, every one for a user the model never saw."""
        if self.user_code(user_id) is None:
            return np.ones(len(history), dtype=bool)
        timestamps = np.asarray(history.timestamps, dtype=np.float64)
        return np.isfinite(timestamps) & (timestamps > self.data_end)

    def request_row(self, user_id: str | None, history: UserHistory) -> sp.csr_matrix:
        """The user's row now: training row plus history events newer than the training
        data (a user unknown to the model: the whole history), decayed to the newest."""
        code = self.user_code(user_id)
        timestamps = np.asarray(history.timestamps, dtype=np.float64)
        new = self.new_events(user_id, history)
        newest = max(self.data_end, _data_end(timestamps[new])) if new.any() else self.data_end
        n = self.n_items
        parts = []
        if code is not None:
            row = self.matrix[code]
            if self.weighting.half_life_days is not None and newest > self.data_end:
                row = row * np.exp2(-(newest - self.data_end)
                                    / (self.weighting.half_life_days * SECONDS_PER_DAY))
            parts.append(sp.csr_matrix(row, dtype=np.float64))
        if new.any():
            idx = np.flatnonzero(new)
            codes = lookup_codes(self.item_index, [history.item_ids[i] for i in idx])
            weights = self.weighting.weights([history.types[i] for i in idx],
                                             timestamps[idx], newest,
                                             [history.values[i] for i in idx])
            keep = (codes >= 0) & (codes < n)
            parts.append(sp.csr_matrix(
                (weights[keep], (np.zeros(keep.sum(), dtype=np.int64), codes[keep])),
                shape=(1, n)))
        if not parts:
            return sp.csr_matrix((1, n), dtype=np.float64)
        row = sp.csr_matrix(sum(parts[1:], parts[0]))
        row.sum_duplicates()
        row.data = np.clip(row.data, 0, None)
        row.eliminate_zeros()
        return row


def candidate_scores(scores: np.ndarray, candidates: CandidateSet) -> np.ndarray:
    """Scores over the model's items (last axis) taken at the candidates' codes.

    NaN for a candidate the model does not know (code -1, or beyond its vocabulary):
    the blend then falls back to the other plugins for it.
    """
    codes = np.asarray(candidates.codes, dtype=np.int64)
    n = scores.shape[-1]
    known = (codes >= 0) & (codes < n)
    out = np.full((*scores.shape[:-1], len(codes)), np.nan, dtype=np.float64)
    out[..., known] = scores[..., codes[known]]
    return out


#: Below this share of a model's items, a request's candidates are scored from their
#: own rows (or a sparse row's entries), not through a dense row over every item.
SPARSE_SCORING_SHARE = 0.25


def sorted_lookup(keys: np.ndarray, values: np.ndarray, codes: np.ndarray,
                  default: np.ndarray | float) -> np.ndarray:
    """``values`` at ``codes`` for sorted unique ``keys`` (a sparse row's columns), and
    ``default`` (a scalar, or one value per code) where a code is not a key: scores a few
    candidates from a sparse row without making it dense over the catalogue."""
    codes = np.asarray(codes, dtype=np.int64)
    out = np.array(np.broadcast_to(default, codes.shape), dtype=np.float64)
    if len(keys) and len(codes):
        at = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
        hit = keys[at] == codes
        out[hit] = values[at[hit]]
    return out


def candidate_dot(item_vectors: np.ndarray, query: np.ndarray,
                  candidates: CandidateSet) -> np.ndarray:
    """``item_vectors[code] @ query`` for each candidate, on the candidates' rows only
    (a retrieved set costs its size, not the catalogue's); NaN for unknown codes."""
    codes = np.asarray(candidates.codes, dtype=np.int64)
    known = (codes >= 0) & (codes < len(item_vectors))
    out = np.full(len(codes), np.nan)
    out[known] = item_vectors[codes[known]] @ query
    return out


def cosine_to_item(item_unit: np.ndarray, code: int | None,
                   candidates: CandidateSet) -> np.ndarray | None:
    """Cosine of each candidate to the item of ``code``, from unit-norm item rows; None
    when the model has no vector for it (unknown, or a zero row)."""
    if code is None or code >= len(item_unit) or not item_unit[code].any():
        return None
    return candidate_scores(item_unit @ item_unit[code], candidates)
