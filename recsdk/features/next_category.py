"""How well interest profiles predict what a user turns to next.

Protocol: for each user with at least two events, hide the last one (by time); fit the
interest model on the rest; rank categories (or tags) from the profile; compare the top
``k`` with the hidden event's categories (one leaf, or an item's several tags, e.g. a
movie's genres). Two baselines run on the same split: the globally most popular
categories of the training events, and the category of the user's previous event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset
from recsdk.errors import ValidationFailed
from recsdk.features.categorical import normalise_tags
from recsdk.features.interest import UserInterestModel

TARGETS = ("category", "tags")
HIDE_UNITS = ("event", "session")


@dataclass(frozen=True)
class SetScores:
    """Mean precision@k and recall@k over users, and F1 of those two means."""

    k: int
    precision: float
    recall: float
    f1: float
    users: int

    def to_dict(self) -> dict[str, float]:
        return {"k": self.k, "precision": self.precision, "recall": self.recall,
                "f1": self.f1, "users": self.users}


def set_scores(predicted: Sequence[Sequence[str]], truth: Sequence[set[str]],
               k: int) -> SetScores:
    """precision@k = hits / k, recall@k = hits / |truth|, per user, then averaged."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} users")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    precision, recall = [], []
    for guess, actual in zip(predicted, truth, strict=True):
        if not actual:
            continue
        hits = len(set(guess[:k]) & actual)
        precision.append(hits / k)
        recall.append(hits / len(actual))
    p = float(np.mean(precision)) if precision else 0.0
    r = float(np.mean(recall)) if recall else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return SetScores(k, p, r, f1, len(precision))


def hide_last(events: pd.DataFrame, unit: str = "event") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training events, one hidden event per user).

    ``unit="event"``: the hidden event is the user's last; training keeps the others
    (users with at least two events). ``unit="session"``: the hidden event is the first
    of the user's last session and training keeps only what happened before it, so
    the question is what the user turns to next time, not within the same visit.
    Users with nothing to predict keep all their events in training.
    """
    if unit not in HIDE_UNITS:
        raise ValueError(f"unit must be one of {HIDE_UNITS}, got {unit!r}")
    needed = {"user_id", "item_id", "timestamp"} | ({"session_id"} if unit == "session"
                                                     else set())
    missing = needed - set(events.columns)
    if missing:
        raise ValidationFailed({"columns": [f"missing {sorted(missing)}"]}, "events")
    ordered = events.reset_index(drop=True)
    ordered = ordered.iloc[np.lexsort((np.arange(len(ordered)),
                                       ordered["timestamp"].to_numpy(),
                                       ordered["user_id"].astype(str).to_numpy()))]
    by_user = ordered.groupby("user_id", sort=False, observed=True)
    size = by_user["item_id"].transform("size").to_numpy()
    position = by_user.cumcount().to_numpy()
    if unit == "event":
        hidden = (position == size - 1) & (size >= 2)
        return ordered[~hidden], ordered[hidden]
    in_session = ordered["session_id"].notna().to_numpy()
    sessions = ordered[in_session]
    last_session = sessions.groupby("user_id", sort=False, observed=True)["session_id"].last()
    starts = sessions[sessions["session_id"].to_numpy() == last_session.reindex(
        sessions["user_id"]).to_numpy()].groupby("user_id", sort=False, observed=True).head(1)
    start_time = pd.Series(starts["timestamp"].to_numpy(), index=starts["user_id"].to_numpy())
    user = ordered["user_id"].to_numpy()
    cut = start_time.reindex(user).to_numpy(dtype=float)
    before = ordered["timestamp"].to_numpy(dtype=float) < cut
    has_past = pd.Series(before).groupby(user).any()
    evaluated = has_past[has_past].index
    hidden = starts[starts["user_id"].isin(evaluated).to_numpy()]
    # users with nothing to predict keep all their events for training
    keep = before | ~pd.Series(user).isin(evaluated).to_numpy()
    return ordered[keep], hidden


def item_targets(catalog: Catalog, item_ids: Sequence[str], target: str) -> list[set[str]]:
    """The leaf category, or the tags, of each item (an empty set when unknown)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    out = []
    tags = catalog.frame["tags"] if catalog.frame is not None and "tags" in catalog.frame \
        else None
    for item_id in item_ids:
        pos = catalog.index.get(str(item_id))
        if pos is None:
            out.append(set())
        elif target == "category":
            category = catalog.category[pos]
            out.append({str(category)} if isinstance(category, str) else set())
        else:
            out.append(set(normalise_tags(tags.iat[pos])) if tags is not None else set())
    return out


def evaluate_next_category(
    events: pd.DataFrame, catalog: Catalog, *, ks: Sequence[int] = (1, 3, 5),
    target: str = "category", users: pd.DataFrame | None = None,
    event_weights: Mapping[str, float] | None = None, half_life_days: float = 30.0,
    unit: str = "event",
) -> dict[str, dict[int, SetScores]]:
    """Scores of the interest model and both baselines, by method and k.

    ``events`` needs ``user_id``, ``item_id``, ``timestamp`` (UNIX seconds) and may
    have ``type``, ``value`` and ``session_id`` (needed for ``unit="session"``).
    """
    train, hidden = hide_last(events, unit)
    dataset = InteractionDataset.from_frame(train, catalog, event_weights)
    model = UserInterestModel(half_life_days=half_life_days).fit(dataset, users)
    user_ids = hidden["user_id"].astype(str).tolist()
    truth = item_targets(catalog, hidden["item_id"].astype(str).tolist(), target)
    k_max = max(ks)
    if target == "category":
        predicted = model.top_categories(user_ids, k_max)
    else:
        predicted = model.top_tags(user_ids, k_max)
    train_targets = item_targets(catalog, train["item_id"].astype(str).tolist(), target)
    counts = pd.Series([t for row in train_targets for t in row], dtype=object).value_counts()
    popular = sorted(counts.index, key=lambda c: (-counts[c], c))[:k_max]
    previous = train.groupby("user_id", sort=False, observed=True)["item_id"].last()
    previous_targets = dict(zip(previous.index.astype(str),
                                item_targets(catalog, previous.astype(str).tolist(), target),
                                strict=True))
    recency = [sorted(previous_targets.get(u, set())) for u in user_ids]
    return {
        "interest_profile": {k: set_scores(predicted, truth, k) for k in ks},
        "global_popular": {k: set_scores([popular] * len(user_ids), truth, k) for k in ks},
        "previous_event": {k: set_scores(recency, truth, k) for k in ks},
    }
