"""The user interest model: who a user is, what they like now, how they shop.

A profile has four parts: static demographics (the user's stored attributes),
dynamic affinities (time-decayed event weights per category node at every level of
the tree and per item tag), interaction statistics (frequency, click-through, dwell)
and purchase statistics (count, spend, categories); user tags are derived from the
affinities. Affinities decay exponentially with ``half_life_days``, so yesterday's
browsing outweighs last year's; a user's values are kept as of their own newest
event and decayed to the model's newest event when read, which makes incremental
updates (:meth:`UserInterestModel.update`) give the same answer as a refit.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS
from recsdk.dataset import InteractionDataset
from recsdk.errors import NotTrainedError, ValidationFailed
from recsdk.features.activity import SECONDS_PER_DAY, reference_time
from recsdk.features.categorical import normalise_tags
from recsdk.types import Event

#: Upper bounds of the age bands reported with the demographics.
AGE_BANDS = ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"),
             (65, "55-64"))
#: Events on items the catalogue does not know yet, held until it does (then replayed).
MAX_PENDING = 100_000
#: Context keys read as dwell time in seconds on live events.
DWELL_CONTEXT_KEYS = ("dwell_s", "dwell_seconds", "dwell_time")
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """What the interest model reads about an item: category path, tags, price."""

    path: tuple[str, ...]
    tags: tuple[str, ...]
    price: float


@dataclass(slots=True)
class _UserState:
    """Running sums of one user; affinities are as of ``reference`` (UNIX seconds)."""

    reference: float
    categories: dict[str, float] = field(default_factory=dict)
    tags: dict[str, float] = field(default_factory=dict)
    mass: float = 0.0  # decayed weight of events on known items: the tags' denominator
    counts: dict[str, int] = field(default_factory=dict)
    days: set[int] = field(default_factory=set)
    dwell_sum: float = 0.0
    dwell_n: int = 0
    spend: float = 0.0
    purchase_categories: dict[str, int] = field(default_factory=dict)
    first: float = math.inf
    last: float = -math.inf


@dataclass
class InteractionStats:
    """How often and how a user interacts."""

    events: int
    by_type: dict[str, int]
    active_days: int
    events_per_active_day: float
    click_through: float | None  # clicks / views; None without views
    mean_dwell_s: float | None
    first_seen: str | None
    last_seen: str | None


@dataclass
class PurchaseStats:
    """What a user bought: count, spend (event value, else item price), categories."""

    purchases: int
    spend: float
    mean_order_value: float | None
    categories: dict[str, int]


@dataclass
class UserProfile:
    """One user's interest profile, as of ``as_of`` (the model's newest event)."""

    user_id: str | None
    as_of: str | None
    demographics: dict[str, Any]
    category_affinity: dict[str, float]
    tag_affinity: dict[str, float]
    interaction: InteractionStats
    purchase: PurchaseStats
    tags: list[str]
    leaf_categories: list[str] = field(default_factory=list)

    def top_categories(self, k: int, leaves_only: bool = True) -> list[str]:
        """The ``k`` categories with the highest affinity (leaves only by default)."""
        allowed = set(self.leaf_categories) if leaves_only else None
        ranked = sorted(((v, c) for c, v in self.category_affinity.items()
                         if allowed is None or c in allowed), key=lambda p: (-p[0], p[1]))
        return [c for _, c in ranked[:k]]

    def top_tags(self, k: int) -> list[str]:
        ranked = sorted(self.tag_affinity.items(), key=lambda p: (-p[1], p[0]))
        return [t for t, _ in ranked[:k]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what ``recsdk_extract_features`` hands the pipeline)."""
        out = asdict(self)
        out.pop("leaf_categories")
        return out


def _iso(seconds: float) -> str | None:
    if not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def age_band(age: Any) -> str | None:
    try:
        value = float(age)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    for bound, label in AGE_BANDS:
        if value < bound:
            return label
    return "65+"


def demographics(attributes: Any) -> dict[str, Any]:
    """The user's scalar attributes plus an ``age_band`` derived from ``age``."""
    if not isinstance(attributes, Mapping):
        return {}
    out = {str(k): v.item() if isinstance(v, np.generic) else v
           for k, v in attributes.items()
           if isinstance(v, str | int | float | bool | np.generic) or v is None}
    if "age" in out and (band := age_band(out["age"])) is not None:
        out["age_band"] = band
    return out


class UserInterestModel:
    """Fit from an :class:`InteractionDataset`, update from live events, query profiles.

    ``tag_share``: a user is tagged ``category:<id>`` when one node holds at least this
    share of the user's affinity among the nodes of its tree level, and ``tag:<tag>``
    when items carrying the tag make up at least this share of the user's activity;
    only users with ``min_events_for_tags`` events are tagged.
    """

    def __init__(self, half_life_days: float = 30.0, tag_share: float = 0.5,
                 min_events_for_tags: int = 3, dwell_types: Sequence[str] = ("view",),
                 view_type: str = "view", click_type: str = "click",
                 purchase_type: str = "purchase") -> None:
        self.half_life_days = half_life_days
        self.tag_share = tag_share
        self.min_events_for_tags = min_events_for_tags
        self.dwell_types = tuple(dwell_types)
        self.view_type = view_type
        self.click_type = click_type
        self.purchase_type = purchase_type
        self._lock = threading.RLock()
        self._catalog: Catalog | None = None
        self._items: dict[str, ItemInfo | None] = {}
        self._depth: dict[str, int] = {}
        self._leaves: set[str] = set()
        self.pending_: list[tuple[str, str, str, float, float, bool]] = []

    def _check_params(self) -> None:
        problems = {}
        if not self.half_life_days > 0:
            problems["half_life_days"] = [f"must be positive, got {self.half_life_days}"]
        if not 0 < self.tag_share <= 1:
            problems["tag_share"] = [f"must be in (0, 1], got {self.tag_share}"]
        if self.min_events_for_tags < 0:
            problems["min_events_for_tags"] = ["must not be negative"]
        if problems:
            raise ValidationFailed(problems, "interest model parameters")

    @property
    def _half_life_s(self) -> float:
        return self.half_life_days * SECONDS_PER_DAY

    # ---- catalogue -------------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> int:
        """Read items from a new catalogue snapshot; replay the events held for items it
        now knows. Returns how many held events were applied."""
        with self._lock:
            self._catalog = catalog
            self._items = {}
            self._depth = {}
            parents = set(catalog.tree.parents.values())
            self._leaves = {c for c in catalog.tree.parents if c not in parents}
            self._leaves |= {str(c) for c in catalog.category if isinstance(c, str)}
            self._leaves -= parents
            return self._replay_pending()

    def item_info(self, item_id: str) -> ItemInfo | None:
        """Path, tags and price of an item of the current catalogue (None if unknown)."""
        if item_id in self._items:
            return self._items[item_id]
        catalog = self._catalog
        pos = None if catalog is None else catalog.index.get(item_id)
        info = None
        if catalog is not None and pos is not None:
            category = catalog.category[pos]
            path = tuple(catalog.tree.path(str(category))) if isinstance(category, str) else ()
            frame = catalog.frame
            tags: tuple[str, ...] = ()
            if frame is not None and "tags" in frame:
                tags = tuple(dict.fromkeys(normalise_tags(frame["tags"].iat[pos])))
            info = ItemInfo(path, tags, float(catalog.price[pos]))
        self._items[item_id] = info
        return info

    def _node_depth(self, node: str) -> int:
        if node not in self._depth:
            tree = self._catalog.tree if self._catalog is not None else None
            self._depth[node] = len(tree.path(node)) - 1 if tree is not None else 0
        return self._depth[node]

    # ---- fitting ---------------------------------------------------------------------

    def fit(self, dataset: InteractionDataset,
            users: pd.DataFrame | None = None) -> UserInterestModel:
        """Build every user's state from the dataset's interactions (vectorised).

        ``users``: a frame with ``id`` and ``attributes`` (dict) for demographics.
        """
        self._check_params()
        with self._lock:
            self.pending_ = []
            self.set_catalog(dataset.catalog)
            inter = dataset.interactions
            now = reference_time(inter["timestamp"])
            infos = [self.item_info(str(i)) for i in dataset.item_ids]
            nodes, item_nodes = _incidence([i.path if i else () for i in infos])
            tag_names, item_tags = _incidence([i.tags if i else () for i in infos])
            t = np.nan_to_num(inter["timestamp"].to_numpy(float), nan=now)
            user = inter["user"].to_numpy()
            item = inter["item"].to_numpy()
            known = np.array([i is not None for i in infos], dtype=bool)[item]
            # each user's sums are kept as of their own newest event on a known item,
            # so a long-inactive user's values stay far from underflow
            reference = np.full(dataset.n_users, now)
            newest = pd.Series(t[known]).groupby(user[known]).max()
            reference[newest.index.to_numpy()] = newest.to_numpy()
            weight = inter["weight"].to_numpy(np.float64)
            decayed = weight * np.exp2(-(reference[user] - t) / self._half_life_s)
            shape = (dataset.n_users, dataset.n_items)
            activity = sp.csr_matrix((decayed, (user, item)), shape=shape)
            affinity = sp.csr_matrix(activity @ item_nodes)
            tag_affinity = sp.csr_matrix(activity @ item_tags)
            mass = np.bincount(user[known], weights=decayed[known], minlength=dataset.n_users)
            states = {str(u): _UserState(reference=float(r))
                      for u, r in zip(dataset.user_ids, reference, strict=True)}
            ordered = [states[str(u)] for u in dataset.user_ids]
            for code, state in enumerate(ordered):
                state.categories = _row_dict(affinity, code, nodes)
                state.tags = _row_dict(tag_affinity, code, tag_names)
                state.mass = float(mass[code])
            self._fit_interactions(inter, t, ordered, infos)
            self.users_ = states
            self.demographics_ = {} if users is None else _demographics_by_user(users)
            self.now_ = now
        return self

    def _fit_interactions(self, inter: pd.DataFrame, t: np.ndarray,
                          states: list[_UserState], infos: list[ItemInfo | None]) -> None:
        types = inter["type"].astype(str).to_numpy()
        user = inter["user"].to_numpy()
        frame = pd.DataFrame({"user": user, "type": types, "t": t,
                              "day": np.floor(t / SECONDS_PER_DAY).astype(np.int64),
                              "value": inter["value"].to_numpy(float),
                              "item": inter["item"].to_numpy()})
        for (code, kind), n in frame.groupby(["user", "type"]).size().items():
            states[code].counts[str(kind)] = int(n)
        for code, days in frame.groupby("user")["day"].unique().items():
            states[code].days = {int(d) for d in days}
        bounds = frame.groupby("user")["t"].agg(["min", "max"])
        for code, lo, hi in zip(bounds.index, bounds["min"], bounds["max"], strict=True):
            states[code].first, states[code].last = float(lo), float(hi)
        value = frame["value"].to_numpy()
        dwell = np.isin(types, self.dwell_types) & np.isfinite(value) & (value > 0)
        sums = frame[dwell].groupby("user")["value"].agg(["sum", "count"])
        for code, total, n in zip(sums.index, sums["sum"], sums["count"], strict=True):
            states[code].dwell_sum, states[code].dwell_n = float(total), int(n)
        bought = frame[types == self.purchase_type]
        price = np.array([i.price if i else np.nan for i in infos])[bought["item"].to_numpy()]
        paid = bought["value"].to_numpy()
        spend = np.where(np.isfinite(paid) & (paid > 0), paid, np.nan_to_num(price, nan=0.0))
        for code, amount in pd.Series(spend).groupby(bought["user"].to_numpy()).sum().items():
            states[code].spend = float(amount)
        leaf = [infos[i].path[-1] if infos[i] and infos[i].path else None
                for i in bought["item"].to_numpy()]
        pairs = pd.DataFrame({"user": bought["user"].to_numpy(), "leaf": leaf}).dropna()
        for (code, node), n in pairs.groupby(["user", "leaf"]).size().items():
            states[code].purchase_categories[str(node)] = int(n)

    def set_users(self, users: pd.DataFrame) -> None:
        """Replace demographics from a frame with ``id`` and ``attributes``."""
        with self._lock:
            self.demographics_ = _demographics_by_user(users)

    # ---- incremental updates ---------------------------------------------------------

    def update(self, events: Iterable[Event],
               weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS) -> None:
        """Fold live events into the profiles; equal to refitting on all events.

        Events on items the catalogue does not know yet count in the interaction
        statistics now and in the affinities once :meth:`set_catalog` brings the item.
        """
        self._require_fitted()
        with self._lock:
            for e in events:
                t = e.timestamp.timestamp()
                w = float(weights.get(e.type, 1.0))
                state = self.users_.get(e.user_id)
                if state is None:
                    state = self.users_[e.user_id] = _UserState(reference=t)
                value = e.value if e.value is not None and math.isfinite(e.value) else None
                self._apply_interaction(state, e.type, t, value, e.context)
                info = self.item_info(e.item_id)
                if info is None:
                    if len(self.pending_) < MAX_PENDING:
                        self.pending_.append((e.user_id, e.item_id, e.type, t, w,
                                              value is None or value <= 0))
                else:
                    self._apply_content(state, info, e.type, t, w, value is None or value <= 0)
                self.now_ = max(self.now_, t)

    def _apply_interaction(self, state: _UserState, kind: str, t: float,
                           value: float | None, context: Mapping[str, Any] | None) -> None:
        state.counts[kind] = state.counts.get(kind, 0) + 1
        state.days.add(math.floor(t / SECONDS_PER_DAY))
        state.first, state.last = min(state.first, t), max(state.last, t)
        dwell = None
        if kind in self.dwell_types and value is not None and value > 0:
            dwell = value
        elif context:
            dwell = next((float(context[k]) for k in DWELL_CONTEXT_KEYS
                          if isinstance(context.get(k), int | float) and context[k] > 0), None)
        if dwell is not None:
            state.dwell_sum += dwell
            state.dwell_n += 1
        if kind == self.purchase_type and value is not None and value > 0:
            state.spend += value

    def _apply_content(self, state: _UserState, info: ItemInfo, kind: str, t: float,
                       w: float, no_value: bool) -> None:
        if t > state.reference:
            factor = math.exp2(-(t - state.reference) / self._half_life_s)
            for table in (state.categories, state.tags):
                for key in table:
                    table[key] *= factor
            state.mass *= factor
            state.reference = t
            added = w
        else:
            added = w * math.exp2(-(state.reference - t) / self._half_life_s)
        for node in info.path:
            state.categories[node] = state.categories.get(node, 0.0) + added
        for tag in info.tags:
            state.tags[tag] = state.tags.get(tag, 0.0) + added
        state.mass += added
        if kind == self.purchase_type:
            if info.path:
                leaf = info.path[-1]
                state.purchase_categories[leaf] = state.purchase_categories.get(leaf, 0) + 1
            if no_value and math.isfinite(info.price):
                state.spend += info.price

    def _replay_pending(self) -> int:
        pending = getattr(self, "pending_", None)
        if not pending:
            return 0
        kept, applied = [], 0
        for entry in pending:
            user_id, item_id, kind, t, w, no_value = entry
            info = self.item_info(item_id)
            if info is None:
                kept.append(entry)
                continue
            self._apply_content(self.users_[user_id], info, kind, t, w, no_value)
            applied += 1
        self.pending_ = kept
        return applied

    # ---- queries ---------------------------------------------------------------------

    def _require_fitted(self) -> None:
        if not hasattr(self, "users_"):
            raise NotTrainedError("the interest model is not fitted: call fit() or load_state()")

    def __contains__(self, user_id: object) -> bool:
        return hasattr(self, "users_") and user_id in self.users_

    @property
    def user_ids(self) -> list[str]:
        self._require_fitted()
        return list(self.users_)

    def profile(self, user_id: str) -> UserProfile:
        """The profile of a user seen in training or in live events."""
        self._require_fitted()
        with self._lock:
            state = self.users_.get(user_id)
            if state is None:
                raise LookupError(
                    f"no interest profile for user {user_id!r}: the user has no event in "
                    "the training data or in live events since")
            return self._profile(user_id, state, self.now_)

    def profile_from_history(self, item_ids: Sequence[str], types: Sequence[str],
                             weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
                             user_id: str | None = None) -> UserProfile:
        """A transient profile from a recent history (an anonymous session, a user not
        yet in the model); all events count as happening now."""
        if len(item_ids) != len(types):
            raise ValidationFailed({"types": [f"{len(types)} types for {len(item_ids)} items"]},
                                   "history")
        with self._lock:
            now = getattr(self, "now_", 0.0)
            state = _UserState(reference=now)
            for item_id, kind in zip(item_ids, types, strict=True):
                self._apply_interaction(state, kind, now, None, None)
                info = self.item_info(item_id)
                if info is not None:
                    self._apply_content(state, info, kind, now, float(weights.get(kind, 1.0)),
                                        True)
            return self._profile(user_id, state, now)

    def _profile(self, user_id: str | None, state: _UserState, now: float) -> UserProfile:
        factor = math.exp2(-(now - state.reference) / self._half_life_s)
        raw_categories = {c: v for c, v in state.categories.items() if v > _EPSILON}
        raw_tags = {t: v for t, v in state.tags.items() if v > _EPSILON}
        n_events = sum(state.counts.values())
        views = state.counts.get(self.view_type, 0)
        purchases = state.counts.get(self.purchase_type, 0)
        interaction = InteractionStats(
            events=n_events, by_type=dict(state.counts), active_days=len(state.days),
            events_per_active_day=n_events / len(state.days) if state.days else 0.0,
            click_through=state.counts.get(self.click_type, 0) / views if views else None,
            mean_dwell_s=state.dwell_sum / state.dwell_n if state.dwell_n else None,
            first_seen=_iso(state.first), last_seen=_iso(state.last),
        )
        purchase = PurchaseStats(
            purchases=purchases, spend=round(state.spend, 2),
            mean_order_value=state.spend / purchases if purchases else None,
            categories=dict(state.purchase_categories),
        )
        user_tags = self._tags(raw_categories, raw_tags, state.mass, n_events)
        demo = getattr(self, "demographics_", {}).get(user_id, {}) if user_id else {}
        return UserProfile(
            user_id=user_id, as_of=_iso(now), demographics=dict(demo),
            category_affinity={c: v * factor for c, v in raw_categories.items()},
            tag_affinity={t: v * factor for t, v in raw_tags.items()},
            interaction=interaction, purchase=purchase, tags=user_tags,
            leaf_categories=sorted(c for c in raw_categories if c in self._leaves),
        )

    def _tags(self, categories: Mapping[str, float], tags: Mapping[str, float],
              mass: float, n_events: int) -> list[str]:
        if n_events < self.min_events_for_tags:
            return []
        by_level: dict[int, float] = {}
        for node, value in categories.items():
            depth = self._node_depth(node)
            by_level[depth] = by_level.get(depth, 0.0) + value
        out = [f"category:{node}" for node, value in sorted(categories.items())
               if value >= self.tag_share * by_level[self._node_depth(node)]]
        if mass > _EPSILON:
            out += [f"tag:{tag}" for tag, value in sorted(tags.items())
                    if value >= self.tag_share * mass]
        return out

    def top_categories(self, user_ids: Sequence[str], k: int,
                       leaves_only: bool = True) -> list[list[str]]:
        """Each user's ``k`` highest-affinity categories ([] for an unknown user)."""
        self._require_fitted()
        with self._lock:
            out = []
            for user_id in user_ids:
                state = self.users_.get(user_id)
                if state is None:
                    out.append([])
                    continue
                ranked = sorted(((v, c) for c, v in state.categories.items()
                                 if v > _EPSILON and (not leaves_only or c in self._leaves)),
                                key=lambda p: (-p[0], p[1]))
                out.append([c for _, c in ranked[:k]])
            return out

    def top_tags(self, user_ids: Sequence[str], k: int) -> list[list[str]]:
        self._require_fitted()
        with self._lock:
            out = []
            for user_id in user_ids:
                state = self.users_.get(user_id)
                table = state.tags if state is not None else {}
                ranked = sorted(((v, t) for t, v in table.items() if v > _EPSILON),
                                key=lambda p: (-p[0], p[1]))
                out.append([t for _, t in ranked[:k]])
            return out

    # ---- state -----------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """Everything learned, as plain arrays (saved as ``.npz``, never pickled)."""
        self._require_fitted()
        with self._lock:
            ids = list(self.users_)
            states = [self.users_[u] for u in ids]
            out: dict[str, np.ndarray] = {
                "user_ids": np.array(ids, dtype=str),
                "scalars": np.array([[s.reference, s.mass, s.dwell_sum, s.dwell_n, s.spend,
                                      s.first, s.last] for s in states],
                                    dtype=np.float64).reshape(len(ids), 7),
                "now": np.array([self.now_]),
                "half_life_days": np.array([self.half_life_days]),
            }
            for name, tables in (("categories", [s.categories for s in states]),
                                 ("tags", [s.tags for s in states]),
                                 ("counts", [s.counts for s in states]),
                                 ("purchase_categories",
                                  [s.purchase_categories for s in states])):
                out.update(_pack_dicts(name, tables))
            days = [sorted(s.days) for s in states]
            out["days.indptr"] = np.cumsum([0] + [len(d) for d in days]).astype(np.int64)
            out["days.values"] = np.array([d for row in days for d in row], dtype=np.int64)
            demo = getattr(self, "demographics_", {})
            out["demographics.user_ids"] = np.array(list(demo), dtype=str)
            out["demographics.json"] = np.array([json.dumps(v, default=str)
                                                 for v in demo.values()], dtype=str)
            pending = self.pending_
            out["pending.ids"] = np.array([[p[0], p[1], p[2]] for p in pending],
                                          dtype=str).reshape(len(pending), 3)
            out["pending.values"] = np.array([[p[3], p[4], float(p[5])] for p in pending],
                                             dtype=np.float64).reshape(len(pending), 3)
            return out

    def load_state(self, state: Mapping[str, np.ndarray],
                   catalog: Catalog | None = None) -> UserInterestModel:
        """Restore :meth:`state`; ``catalog`` is the current catalogue snapshot."""
        saved_half_life = float(state["half_life_days"][0])
        if not math.isclose(saved_half_life, self.half_life_days):
            raise ValidationFailed(
                {"half_life_days": [f"state was fitted with {saved_half_life}, parameters "
                                    f"say {self.half_life_days}: retrain"]}, "interest state")
        with self._lock:
            ids = [str(u) for u in state["user_ids"]]
            tables = {name: _unpack_dicts(name, state, len(ids))
                      for name in ("categories", "tags", "counts", "purchase_categories")}
            users: dict[str, _UserState] = {}
            indptr, values = state["days.indptr"], state["days.values"]
            for row, user_id in enumerate(ids):
                ref, mass, dwell_sum, dwell_n, spend, first, last = state["scalars"][row]
                users[user_id] = _UserState(
                    reference=float(ref), categories=tables["categories"][row],
                    tags=tables["tags"][row], mass=float(mass),
                    counts={k: int(v) for k, v in tables["counts"][row].items()},
                    days={int(d) for d in values[indptr[row]:indptr[row + 1]]},
                    dwell_sum=float(dwell_sum), dwell_n=int(dwell_n), spend=float(spend),
                    purchase_categories={k: int(v) for k, v in
                                         tables["purchase_categories"][row].items()},
                    first=float(first), last=float(last),
                )
            self.users_ = users
            self.now_ = float(state["now"][0])
            self.demographics_ = {
                str(u): json.loads(str(j)) for u, j in zip(
                    state["demographics.user_ids"], state["demographics.json"], strict=True)}
            self.pending_ = [
                (str(i[0]), str(i[1]), str(i[2]), float(v[0]), float(v[1]), bool(v[2]))
                for i, v in zip(state["pending.ids"], state["pending.values"], strict=True)]
            if catalog is not None:
                self.set_catalog(catalog)
        return self


def _incidence(rows: Sequence[Sequence[str]]) -> tuple[np.ndarray, sp.csr_matrix]:
    """Vocabulary and a rows x vocabulary 0/1 matrix of which row holds which name."""
    names = sorted({n for row in rows for n in row})
    index = {n: i for i, n in enumerate(names)}
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([index[n] for r in rows for n in r], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(indices)), indices, indptr),
                           shape=(len(rows), len(names)))
    return np.array(names, dtype=object), matrix


def _row_dict(matrix: sp.csr_matrix, row: int, names: np.ndarray) -> dict[str, float]:
    lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
    return dict(zip(names[matrix.indices[lo:hi]].tolist(), matrix.data[lo:hi].tolist(),
                    strict=True))


def _pack_dicts(name: str, tables: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Rows of ``{key: number}`` as a CSR layout over a shared key vocabulary."""
    keys = sorted({k for t in tables for k in t})
    index = {k: i for i, k in enumerate(keys)}
    indptr = np.cumsum([0] + [len(t) for t in tables]).astype(np.int64)
    return {
        f"{name}.keys": np.array(keys, dtype=str),
        f"{name}.indptr": indptr,
        f"{name}.indices": np.array([index[k] for t in tables for k in t], dtype=np.int64),
        f"{name}.data": np.array([v for t in tables for v in t.values()], dtype=np.float64),
    }


def _unpack_dicts(name: str, state: Mapping[str, np.ndarray],
                  n_rows: int) -> list[dict[str, float]]:
    keys = [str(k) for k in state[f"{name}.keys"]]
    indptr, indices, data = (state[f"{name}.{p}"] for p in ("indptr", "indices", "data"))
    return [{keys[indices[j]]: float(data[j]) for j in range(indptr[r], indptr[r + 1])}
            for r in range(n_rows)]


def _demographics_by_user(users: pd.DataFrame) -> dict[str, dict[str, Any]]:
    missing = {"id", "attributes"} - set(users.columns)
    if missing:
        raise ValidationFailed({"columns": [f"users frame lacks {sorted(missing)}; has "
                                            f"{list(users.columns)}"]}, "users")
    return {str(u): demographics(a) for u, a in zip(users["id"], users["attributes"],
                                                    strict=True)}
