"""Score top-k lists against held-out interactions: the table of metrics at k.

Both ways of evaluating (a recommendation file from anywhere, or lists a plugin just
produced) end here, so a number means the same whichever way it was made. The lists
and test sets are encoded once over one item universe; metrics at several k reuse it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.errors import ValidationFailed
from recsdk.evaluation import metrics
from recsdk.evaluation.files import check_known_users, fail, item_categories

#: Metrics averaged over evaluated users, in report order.
USER_METRICS = ("precision", "recall", "f1", "ndcg", "map", "mrr", "hit_rate", "auc")
#: Metrics of the whole set of lists (catalogue and popularity).
BEYOND_ACCURACY = ("coverage", "novelty", "diversity", "diversity_embedding", "gini", "arp")
METRICS = USER_METRICS + BEYOND_ACCURACY
#: Metrics where a smaller value is better (more even exposure, less popularity bias).
LOWER_IS_BETTER = frozenset({"gini", "arp"})


@dataclass(frozen=True)
class EvaluationInput:
    """Lists and test sets as codes over one item universe.

    ``ranked`` is users x depth item codes, best first, -1 past a list's end;
    ``relevant`` marks each user's test items; ``seen`` the training items that are not
    relevant (they are not candidates, so AUC leaves them out); ``popularity`` counts
    training users per item. ``n_negative`` overrides the number of non-relevant
    candidates per user when candidates were sampled.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    ranked: np.ndarray
    relevant: sp.csr_matrix
    seen: sp.csr_matrix
    popularity: np.ndarray | None = None
    n_train_users: int = 0
    categories: sp.csr_matrix | None = None
    vectors: np.ndarray | None = None
    n_negative: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.user_ids) == 0:
            raise ValidationFailed({"rows": ["empty test set: nothing to score against"]},
                                   "truth")
        empty = np.flatnonzero(self.n_relevant == 0)
        if len(empty):
            raise ValueError(f"users without a relevant item, e.g. {self.user_ids[empty[0]]!r}")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_relevant(self) -> np.ndarray:
        return np.diff(self.relevant.indptr)

    def lists_at(self, k: int) -> np.ndarray:
        """The first ``k`` positions of every list, padded with -1."""
        top = self.ranked[:, :k]
        if top.shape[1] < k:
            top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=-1)
        return top

    def per_user(self, k: int) -> pd.DataFrame:
        """One row per evaluated user, one column per per-user metric at ``k``."""
        ranked = self.lists_at(k)
        hits = metrics.hit_matrix(ranked, self.relevant)
        n_rel = self.n_relevant
        seen_listed = metrics.hit_matrix(ranked, self.seen)
        listed_negative = (ranked >= 0) & ~hits & ~seen_listed
        n_negative = (self.n_negative if self.n_negative is not None
                      else self.n_items - np.diff(self.seen.indptr) - n_rel)
        columns: dict[str, np.ndarray] = {
            "precision": metrics.precision(hits),
            "recall": metrics.recall(hits, n_rel),
            "f1": metrics.f1(hits, n_rel),
            "ndcg": metrics.ndcg(hits, n_rel),
            "map": metrics.average_precision(hits, n_rel),
            "mrr": metrics.reciprocal_rank(hits),
            "hit_rate": metrics.hit_rate(hits),
            "auc": metrics.auc(hits, listed_negative, n_rel, n_negative),
        }
        nan = np.full(len(ranked), np.nan)
        popular = self.popularity is not None
        columns["novelty"] = (metrics.novelty(ranked, self.popularity, self.n_train_users)
                              if popular else nan)
        columns["arp"] = metrics.average_popularity(ranked, self.popularity) if popular else nan
        columns["diversity"] = (metrics.category_diversity(ranked, self.categories)
                                if self.categories is not None else nan)
        columns["diversity_embedding"] = (metrics.embedding_diversity(ranked, self.vectors)
                                          if self.vectors is not None else nan)
        return pd.DataFrame(columns, index=pd.Index(self.user_ids, name="user"))

    def metrics_at(self, k: int) -> dict[str, float | None]:
        """Every metric at ``k``; None where the inputs it needs were not given."""
        table = self.per_user(k)
        ranked = self.lists_at(k)
        out: dict[str, float | None] = {}
        for name in USER_METRICS:
            out[name] = _mean(table[name])
        out["coverage"] = metrics.coverage(ranked, self.n_items)
        out["novelty"] = _mean(table["novelty"])
        out["diversity"] = _mean(table["diversity"])
        out["diversity_embedding"] = _mean(table["diversity_embedding"])
        out["gini"] = metrics.gini(metrics.exposure(ranked, self.n_items))
        out["arp"] = _mean(table["arp"])
        out["users"] = len(self.user_ids)
        return out

    def recommended_popularity(self, k: int) -> np.ndarray:
        """Training popularity of every recommended item (for the popularity plot)."""
        ranked = self.lists_at(k)
        if self.popularity is None:
            return np.array([])
        return self.popularity[ranked[ranked >= 0]]


def _mean(values: pd.Series) -> float | None:
    mean = float(np.nanmean(values)) if values.notna().any() else math.nan
    return None if math.isnan(mean) else mean


def _pairs_matrix(users: pd.Series, items: pd.Series, user_index: pd.Index,
                  item_index: pd.Index) -> sp.csr_matrix:
    """Binary users x items matrix of the (user, item) pairs whose user is evaluated."""
    rows = user_index.get_indexer(users)
    cols = item_index.get_indexer(items)
    keep = rows >= 0
    matrix = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])),
                           shape=(len(user_index), len(item_index)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _category_matrix(items: pd.DataFrame, item_index: pd.Index) -> sp.csr_matrix:
    pairs = item_categories(items)
    known = pairs[item_index.get_indexer(pairs["item"]) >= 0]
    categories = pd.Index(sorted(known["category"].unique()))
    return _pairs_matrix(known["item"], known["category"], item_index, categories) \
        if len(categories) else sp.csr_matrix((len(item_index), 1))


def _vector_rows(embeddings: tuple[np.ndarray, np.ndarray], item_index: pd.Index) -> np.ndarray:
    ids, vectors = embeddings
    out = np.full((len(item_index), vectors.shape[1]), np.nan)
    codes = item_index.get_indexer(ids)
    out[codes[codes >= 0]] = vectors[codes >= 0]
    return out


def _ranked_codes(recommendations: pd.DataFrame, user_index: pd.Index,
                  item_index: pd.Index) -> np.ndarray:
    ordered = recommendations.sort_values(["user", "rank"], kind="stable")
    rows = user_index.get_indexer(ordered["user"])
    position = ordered.groupby("user", sort=False).cumcount().to_numpy()
    depth = int(position.max()) + 1 if len(position) else 1
    ranked = np.full((len(user_index), depth), -1, dtype=np.int64)
    ranked[rows, position] = item_index.get_indexer(ordered["item"])
    return ranked


def evaluation_input(
    recommendations: pd.DataFrame,
    truth: pd.DataFrame,
    train: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    n_negative: Mapping[str, int] | None = None,
) -> EvaluationInput:
    """Encode checked frames (see :mod:`recsdk.evaluation.files`) for the metrics.

    The evaluated users are the truth file's users; one without recommendations
    scores 0 on accuracy. The item universe is every item of ``train``, ``truth``,
    the recommendations and ``items``; without ``train`` there is no popularity, so
    novelty and ARP are None and no training items are left out of AUC's candidates.
    """
    if len(truth) == 0:
        raise ValidationFailed({"rows": ["empty test set: nothing to score against"]}, "truth")
    check_known_users(recommendations, truth)
    frames = [truth["item"], recommendations["item"]]
    frames += [train["item"]] if train is not None else []
    frames += [items["item"].astype(str)] if items is not None else []
    item_index = pd.Index(np.unique(pd.concat(frames, ignore_index=True).to_numpy(dtype=str)))
    user_index = pd.Index(np.unique(truth["user"].to_numpy(dtype=str)))
    relevant = _pairs_matrix(truth["user"], truth["item"], user_index, item_index)
    popularity, n_train_users = None, 0
    seen = sp.csr_matrix(relevant.shape)
    if train is not None:
        seen = _pairs_matrix(train["user"], train["item"], user_index, item_index)
        seen = (seen - seen.multiply(relevant)).tocsr()
        seen.eliminate_zeros()
        pairs = train[["user", "item"]].drop_duplicates()
        popularity = np.bincount(item_index.get_indexer(pairs["item"]),
                                 minlength=len(item_index)).astype(float)
        n_train_users = int(train["user"].nunique())
    negatives = None
    if n_negative is not None:
        negatives = np.array([n_negative.get(u, 0) for u in user_index], dtype=np.int64)
    return EvaluationInput(
        user_ids=user_index.to_numpy(dtype=object),
        item_ids=item_index.to_numpy(dtype=object),
        ranked=_ranked_codes(recommendations, user_index, item_index),
        relevant=relevant,
        seen=seen,
        popularity=popularity,
        n_train_users=n_train_users,
        categories=_category_matrix(items, item_index) if items is not None else None,
        vectors=_vector_rows(embeddings, item_index) if embeddings is not None else None,
        n_negative=negatives,
    )


def evaluate(
    recommendations: pd.DataFrame,
    truth: pd.DataFrame,
    k: int = 10,
    train: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float | None]:
    """Metrics at ``k`` of checked recommendations and truth (see :func:`evaluation_input`)."""
    return evaluation_input(recommendations, truth, train, items, embeddings).metrics_at(k)


def rating_errors(truth: pd.DataFrame, predictions: pd.DataFrame) -> dict[str, float]:
    """RMSE and MAE of predicted ratings (``predictions``: user, item, rating).

    Every truth pair needs a prediction: a missing one is an error, not a skipped row,
    so a predictor cannot look better by abstaining on hard cases.
    """
    for frame, what in ((truth, "truth"), (predictions, "predictions")):
        if "rating" not in frame:
            raise ValidationFailed({"columns": [f"missing column 'rating'; the header names "
                                                f"{list(frame.columns)}"]},
                                   frame.attrs.get("source", what))
    unrated = np.flatnonzero(truth["rating"].isna().to_numpy())
    if len(unrated):
        raise fail(truth, "truth", "rating", unrated, "empty rating")
    predicted = predictions.drop_duplicates(["user", "item"], keep="last")
    joined = truth.reset_index(drop=True).merge(
        predicted[["user", "item", "rating"]], on=["user", "item"], how="left",
        suffixes=("", "_predicted"))
    missing = np.flatnonzero(joined["rating_predicted"].isna().to_numpy())
    if len(missing):
        raise fail(truth, "truth", "rating", missing,
                   f"{len(missing)} (user, item) pair(s) have no predicted rating")
    true, guess = joined["rating"].to_numpy(float), joined["rating_predicted"].to_numpy(float)
    return {"rmse": metrics.rmse(true, guess), "mae": metrics.mae(true, guess),
            "pairs": float(len(joined))}
