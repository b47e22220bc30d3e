"""The ranker's features: the scorers' answers on a request's candidates, and what the
training data says about each candidate and the user.

One function, :func:`feature_matrix`, builds the rows at training time (from the
stacked scorers fitted on the sub-split) and at serving (from ``recsdk_rank``'s
``scores``), so the model never sees a feature computed two ways. Per scorer: its raw
score, its rank among the candidates and its score min-max scaled over them (raw
scales differ by user; rank and scaled score do not). Then the candidate's position in
the blend, item statistics (:class:`ItemStats`), user statistics (:class:`UserStats`)
and how well the item matches the user's interests (:class:`InterestMatch`, on
:class:`recsdk.features.interest.UserInterestModel`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsdk.dataset import InteractionDataset
from recsdk.features.activity import SECONDS_PER_DAY, reference_time
from recsdk.features.interest import UserInterestModel
from recsdk.types import RecommendationRequest

SCORER_FEATURES = ("score", "rank", "scaled")
ITEM_FEATURES = ("popularity", "mean_value", "days_since_first", "days_since_last", "price")
USER_FEATURES = ("activity", "mean_value")
TIME_FEATURES = ("share_when_active", "gap_days")
#: equal-width time bins of :class:`Timing` over the training data's span
TIME_BINS = 32
INTEREST_FEATURES = ("category", "tags")


def feature_names(scorers: Sequence[str], attributes: Sequence[str]) -> list[str]:
    """Column names, in :func:`feature_matrix`'s order."""
    return ([f"{s}.{f}" for s in scorers for f in SCORER_FEATURES] + ["blend.position"]
            + [f"item.{f}" for f in ITEM_FEATURES] + [f"item.{a}" for a in attributes]
            + [f"user.{f}" for f in USER_FEATURES] + [f"time.{f}" for f in TIME_FEATURES]
            + [f"interest.{f}" for f in INTEREST_FEATURES])


def _rank(scores: np.ndarray) -> np.ndarray:
    """0 for the best finite score, NaN where the score is NaN (ties: candidate order)."""
    out = np.full(len(scores), np.nan)
    finite = np.flatnonzero(np.isfinite(scores))
    order = finite[np.argsort(-scores[finite], kind="stable")]
    out[order] = np.arange(len(order))
    return out


def _scaled(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    if not finite.any():
        return np.full(len(scores), np.nan)
    lo, hi = scores[finite].min(), scores[finite].max()
    if hi <= lo:
        return np.where(finite, 1.0, np.nan)
    return (scores - lo) / (hi - lo)


@dataclass(frozen=True)
class ItemStats:
    """Per item code: training statistics, price and numeric catalogue attributes."""

    #: (n_items, len(ITEM_FEATURES) + len(attributes))
    values: np.ndarray

    @classmethod
    def fit(cls, dataset: InteractionDataset, attributes: Sequence[str]) -> ItemStats:
        inter = dataset.interactions
        n = dataset.n_items
        item = inter["item"].to_numpy()
        users = pd.Series(inter["user"].to_numpy()).groupby(item).nunique()
        counts = np.zeros(n)
        counts[users.index.to_numpy()] = users.to_numpy()
        mean_value = _mean_by(item, inter["value"].to_numpy(float), n)
        t = inter["timestamp"].to_numpy(float)
        now = reference_time(inter["timestamp"]) if len(inter) else 0.0
        first = np.full(n, np.nan)
        last = np.full(n, np.nan)
        seen = np.isfinite(t)
        if seen.any():
            by = pd.Series(t[seen]).groupby(item[seen])
            first[by.min().index.to_numpy()] = (now - by.min().to_numpy()) / SECONDS_PER_DAY
            last[by.max().index.to_numpy()] = (now - by.max().to_numpy()) / SECONDS_PER_DAY
        columns = [quantile(counts), mean_value, first, last, _catalog_column(dataset, "price")]
        columns += [_catalog_attribute(dataset, a) for a in attributes]
        return cls(np.column_stack(columns).astype(np.float64))

    def rows(self, codes: np.ndarray) -> np.ndarray:
        """Rows of ``codes``; NaN for -1 (an item unknown at fit time)."""
        out = np.full((len(codes), self.values.shape[1]), np.nan)
        known = codes >= 0
        out[known] = self.values[codes[known]]
        return out


@dataclass(frozen=True)
class UserStats:
    """Per user code: how many training events, mean event value (a rating)."""

    values: np.ndarray

    @classmethod
    def fit(cls, dataset: InteractionDataset) -> UserStats:
        inter = dataset.interactions
        user = inter["user"].to_numpy()
        counts = np.bincount(user, minlength=dataset.n_users).astype(np.float64)
        mean_value = _mean_by(user, inter["value"].to_numpy(float), dataset.n_users)
        return cls(np.column_stack([quantile(counts), mean_value]))

    def row(self, code: int | None) -> np.ndarray:
        if code is None or code < 0:
            return np.full(self.values.shape[1], np.nan)
        return self.values[code]


@dataclass(frozen=True)
class Timing:
    """When items were popular and when users were active, in ``TIME_BINS`` equal
    bins over the training span: an item's events per bin, each user's share of events
    per bin and both mean times. Candidates that were popular while the user was active
    (what their peers then chose), and how far an item's time is from the user's, are
    strong signals in logged data, where what one sees depends on when one looks.
    The first is the user's activity-weighted mean of the item's share of each bin's
    events (scale-free, so the same on the stacking split and at serving)."""

    item_bins: np.ndarray  # (n_items, TIME_BINS) event counts
    user_bins: np.ndarray  # (n_users, TIME_BINS) shares, rows sum to 1 (0 without events)
    item_mean: np.ndarray  # (n_items,) mean event time, days; NaN without events
    user_mean: np.ndarray  # (n_users,)

    @property
    def bin_totals(self) -> np.ndarray:
        return self.item_bins.sum(axis=0)

    @classmethod
    def fit(cls, dataset: InteractionDataset) -> Timing:
        inter = dataset.interactions
        t = inter["timestamp"].to_numpy(float) / SECONDS_PER_DAY
        ok = np.isfinite(t)
        user, item, t = inter["user"].to_numpy()[ok], inter["item"].to_numpy()[ok], t[ok]
        lo, hi = (t.min(), t.max()) if len(t) else (0.0, 0.0)
        b = np.clip(((t - lo) / max(hi - lo, 1e-9) * TIME_BINS).astype(np.int64), 0,
                    TIME_BINS - 1)
        item_bins = np.zeros((dataset.n_items, TIME_BINS))
        np.add.at(item_bins, (item, b), 1.0)
        user_bins = np.zeros((dataset.n_users, TIME_BINS))
        np.add.at(user_bins, (user, b), 1.0)
        total = user_bins.sum(axis=1, keepdims=True)
        user_bins = np.divide(user_bins, total, out=np.zeros_like(user_bins), where=total > 0)
        return cls(item_bins, user_bins, _mean_by(item, t, dataset.n_items),
                   _mean_by(user, t, dataset.n_users))

    def of(self, user: int, codes: np.ndarray) -> np.ndarray:
        """(len(codes), len(TIME_FEATURES)); NaN for an unknown user or item."""
        out = np.full((len(codes), len(TIME_FEATURES)), np.nan)
        known = codes >= 0
        if user < 0 or not known.any():
            return out
        items = codes[known]
        share = np.divide(self.item_bins[items], self.bin_totals,
                          out=np.zeros((len(items), TIME_BINS)), where=self.bin_totals > 0)
        out[known, 0] = share @ self.user_bins[user]
        out[known, 1] = self.item_mean[items] - self.user_mean[user]
        return out


class InterestMatch:
    """How the user's interest profile matches each candidate: the affinity of the
    item's own category and the mean affinity of its tags, each relative to the user's
    strongest (so 1 is the favourite); NaN without a profile or item categories/tags."""

    def __init__(self, model: UserInterestModel) -> None:
        self.model = model

    def of(self, request: RecommendationRequest, item_ids: Sequence[str]) -> np.ndarray:
        profile = None
        user = request.user_id
        if user is not None and user in self.model:
            profile = self.model.profile(user)
        elif request.history.item_ids:
            profile = self.model.profile_from_history(request.history.item_ids,
                                                      request.history.types)
        out = np.full((len(item_ids), len(INTEREST_FEATURES)), np.nan)
        if profile is None:
            return out
        categories, tags = profile.category_affinity, profile.tag_affinity
        top_category = max(categories.values(), default=0.0)
        top_tag = max(tags.values(), default=0.0)
        for row, item_id in enumerate(item_ids):
            info = self.model.item_info(str(item_id))
            if info is None:
                continue
            if info.path and top_category > 0:
                out[row, 0] = categories.get(info.path[-1], 0.0) / top_category
            if info.tags and top_tag > 0:
                out[row, 1] = np.mean([tags.get(t, 0.0) for t in info.tags]) / top_tag
        return out


def feature_matrix(scores: Mapping[str, np.ndarray], scorers: Sequence[str],
                   codes: np.ndarray, items: ItemStats, user: np.ndarray, timing: np.ndarray,
                   interest: np.ndarray) -> np.ndarray:
    """One row per candidate (in blend order), columns as :func:`feature_names`; a
    scorer missing from ``scores`` gives NaN columns."""
    n = len(codes)
    columns: list[np.ndarray] = []
    for name in scorers:
        raw = np.asarray(scores.get(name, np.full(n, np.nan)), dtype=np.float64)
        raw = np.where(np.isfinite(raw), raw, np.nan)
        columns += [raw, _rank(raw), _scaled(raw)]
    columns.append(np.arange(n, dtype=np.float64))
    parts = [np.column_stack(columns), items.rows(codes),
             np.broadcast_to(user, (n, len(user))), timing, interest]
    return np.hstack(parts)


def quantile(values: np.ndarray) -> np.ndarray:
    """Each value's share of values below it (ties: mid-rank), in [0, 1]: counts that
    grow with the data (popularity, activity) mean the same on the stacking split, which
    holds a share of the interactions out, and at serving."""
    if len(values) < 2:
        return np.full(len(values), 0.5)
    order = np.sort(values)
    below = np.searchsorted(order, values, side="left")
    upto = np.searchsorted(order, values, side="right")
    return (below + upto - 1) / (2.0 * (len(values) - 1))


def _mean_by(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Mean of finite ``values`` per ``index`` code; NaN where none."""
    ok = np.isfinite(values)
    total = np.bincount(index[ok], weights=values[ok], minlength=n)
    count = np.bincount(index[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _catalog_column(dataset: InteractionDataset, name: str) -> np.ndarray:
    """A numeric catalogue column per item code (NaN where the catalogue lacks it)."""
    catalog = dataset.catalog
    out = np.full(dataset.n_items, np.nan)
    if not len(catalog):
        return out
    pos = catalog.positions(dataset.item_ids)
    known = pos >= 0
    out[known] = np.asarray(getattr(catalog, name), dtype=np.float64)[pos[known]]
    return out


def _catalog_attribute(dataset: InteractionDataset, name: str) -> np.ndarray:
    """A numeric item attribute (``attributes[name]`` in the catalogue) per item code."""
    catalog = dataset.catalog
    out = np.full(dataset.n_items, np.nan)
    frame = catalog.frame
    if not len(catalog) or frame is None or "attributes" not in frame:
        return out
    values = np.array([_number((a or {}).get(name)) if isinstance(a, dict) else np.nan
                       for a in frame["attributes"]], dtype=np.float64)
    pos = catalog.positions(dataset.item_ids)
    known = pos >= 0
    out[known] = values[pos[known]]
    return out


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan
