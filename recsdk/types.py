"""Plain data objects that travel between the host and plugins."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recsdk.catalog import Catalog
    from recsdk.config import Settings
    from recsdk.storage.store import Store


def new_request_id() -> str:
    """An unguessable request id: 128 random bits as 32 hex digits.

    Browsers send request ids back with clicks, so an id must not reveal or let anyone
    predict another list's id (a counter would); random ids are also unique across
    processes and workers without coordination. About 1.2 us each.
    """
    return secrets.token_hex(16)


#: Event types recsdk knows; any other string is accepted as a custom type.
STANDARD_EVENT_TYPES = (
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "rating",
    "review",
    "return",
)


@dataclass(slots=True)
class Event:
    """One user action on one item, as accepted by ingestion."""

    user_id: str
    item_id: str
    type: str
    timestamp: datetime
    session_id: str | None = None
    value: float | None = None
    event_id: str | None = None
    context: dict[str, Any] | None = None


@dataclass(slots=True)
class Feedback:
    """A user's reaction to a served recommendation, attributed to the request."""

    request_id: str
    item_id: str
    type: str
    timestamp: datetime
    user_id: str | None = None
    position: int | None = None
    variant: str | None = None
    plugins: tuple[str, ...] = ()
    value: float | None = None


@dataclass(slots=True)
class UserHistory:
    """What a user (or an anonymous session) did, oldest first, newest last.

    Parallel lists, one entry per event: the item, the event type, the time in UNIX
    seconds, the event's ``value`` (a rating, say; NaN when none) and its session id.
    Its length is capped by ``[cache] recent_events``; sequential models read order
    and time from it.
    """

    item_ids: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    session_ids: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if len(self.types) != n:
            raise ValueError(f"UserHistory has {n} items but {len(self.types)} types")
        # histories built from items and types alone (tests, callers) get blank columns
        if not self.timestamps:
            self.timestamps = [float("nan")] * n
        if not self.values:
            self.values = [float("nan")] * n
        if not self.session_ids:
            self.session_ids = [None] * n

    def __len__(self) -> int:
        return len(self.item_ids)

    def items_of_types(self, types: Sequence[str] | None) -> set[str]:
        """Items the user touched with one of ``types`` (None: any type)."""
        if types is None:
            return set(self.item_ids)
        wanted = set(types)
        return {i for i, t in zip(self.item_ids, self.types, strict=True) if t in wanted}

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> UserHistory:
        if not rows:
            return cls()
        items, kinds, times, values, sessions = zip(*rows, strict=True)
        nan = float("nan")
        return cls(list(items), list(kinds),
                   [nan if t is None else float(t) for t in times],
                   [nan if v is None else float(v) for v in values], list(sessions))


@dataclass(slots=True)
class Retrieved:
    """A retriever's answer: item ids with its scores (higher is better), best first."""

    ids: list[str]
    scores: list[float] | None = None

    def __post_init__(self) -> None:
        if self.scores is not None and len(self.scores) != len(self.ids):
            raise ValueError(f"Retrieved has {len(self.ids)} ids but {len(self.scores)} "
                             "scores")


@dataclass(slots=True)
class CandidateSet:
    """Items to score: external ids and their codes in the trained vocabulary.

    ``codes[i]`` is -1 when ``ids[i]`` was unknown at fit time (a brand-new item).
    Batch-first: scorers work on the arrays, not item by item.
    """

    ids: np.ndarray
    codes: np.ndarray
    #: retriever name -> its score per candidate (NaN where it did not retrieve it);
    #: empty when every catalogue item is a candidate (full ranking).
    retrieval: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Ranking:
    """An ordered list of items with their blended scores, best first.

    ``propensities``, set by a stochastic reranker (a bandit), holds per position the
    probability that the policy put that item at that position (None where it did not
    choose the item); they are served as ``RecommendedItem.propensity`` and logged with
    the impressions, so that other policies can later be evaluated off-policy.
    """

    item_ids: list[str]
    scores: list[float]
    propensities: list[float | None] | None = None

    def __post_init__(self) -> None:
        if len(self.item_ids) != len(self.scores):
            raise ValueError(
                f"Ranking has {len(self.item_ids)} items but {len(self.scores)} scores"
            )
        if self.propensities is not None and len(self.propensities) != len(self.item_ids):
            raise ValueError(f"Ranking has {len(self.item_ids)} items but "
                             f"{len(self.propensities)} propensities")

    def __len__(self) -> int:
        return len(self.item_ids)

    def propensity(self, position: int) -> float | None:
        """The propensity at 0-based ``position``; None when none was logged."""
        return None if self.propensities is None else self.propensities[position]

    def head(self, n: int) -> Ranking:
        """The first ``n`` items, with their scores and propensities."""
        return Ranking(self.item_ids[:n], self.scores[:n],
                       None if self.propensities is None else self.propensities[:n])

    def keep(self, mask: Sequence[bool]) -> Ranking:
        """The ranking with only the items whose mask entry is true, order kept."""
        mask = list(mask)
        return Ranking(
            [i for i, m in zip(self.item_ids, mask, strict=True) if m],
            [s for s, m in zip(self.scores, mask, strict=True) if m],
            None if self.propensities is None else
            [p for p, m in zip(self.propensities, mask, strict=True) if m],
        )


@dataclass(slots=True)
class RecommendationRequest:
    """Everything a plugin may read about one ``recommend`` call."""

    user_id: str | None
    k: int
    placement: str = "default"
    session_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    history: UserHistory = field(default_factory=UserHistory)
    features: dict[str, Any] = field(default_factory=dict)
    variant: str = "default"
    request_id: str = field(default_factory=new_request_id)
    catalog: Catalog | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: items never to recommend in this request (besides what the filters drop)
    exclude: frozenset[str] = frozenset()
    #: when set, only these items may be ranked (cold-start protocols, a shelf)
    allowed: tuple[str, ...] | None = None

    @property
    def cart(self) -> tuple[str, ...]:
        """The ids in ``context["cart"]`` (a list of ids, or one id), in order; () when
        there is no cart or it is not a list of ids."""
        cart = self.context.get("cart")
        if isinstance(cart, str | int):
            cart = [cart]
        if not isinstance(cart, list | tuple):
            return ()
        return tuple(dict.fromkeys(str(i) for i in cart if isinstance(i, str | int)))


@dataclass(slots=True)
class RecommendedItem:
    """One shown item; ``source`` is the plugin that contributed most to its score."""

    item_id: str
    score: float
    position: int
    source: str | None = None
    #: probability that a stochastic policy showed this item at this position (None:
    #: the list was not chosen at random); logged for off-policy evaluation
    propensity: float | None = None


@dataclass(slots=True)
class RecommendationResult:
    """The answer to ``recommend``: what to show and what produced it."""

    request_id: str
    items: list[RecommendedItem]
    placement: str
    variant: str
    plugins: list[str]
    config_hash: str
    degraded: bool = False
    failures: list[str] = field(default_factory=list)
    model_run: str | None = None
    #: the A/B experiment that chose ``variant`` (None: the list is in no experiment)
    experiment: str | None = None

    @property
    def item_ids(self) -> list[str]:
        return [i.item_id for i in self.items]

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "placement": self.placement,
            "variant": self.variant,
            "experiment": self.experiment,
            "plugins": list(self.plugins),
            "config_hash": self.config_hash,
            "model_run": self.model_run,
            "degraded": self.degraded,
            "failures": list(self.failures),
            "items": [
                {"item_id": i.item_id, "score": i.score, "position": i.position,
                 "source": i.source, "propensity": i.propensity}
                for i in self.items
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecommendationResult:
        return cls(
            request_id=data["request_id"],
            items=[RecommendedItem(**i) for i in data["items"]],
            placement=data["placement"],
            variant=data["variant"],
            plugins=list(data["plugins"]),
            config_hash=data["config_hash"],
            degraded=data["degraded"],
            failures=list(data["failures"]),
            model_run=data.get("model_run"),
            experiment=data.get("experiment"),
        )


@dataclass(slots=True)
class PluginContext:
    """What ``recsdk_configure`` and ``recsdk_fit`` hand to plugins."""

    settings: Settings
    store: Store | None = None
    seed: int = 0
    device_setting: str = "auto"
    #: the catalogue snapshot at configure (and fit) time; None when there is none
    catalog: Catalog | None = None

    @property
    def device(self) -> str:
        """``cuda`` or ``cpu`` (or what settings name); resolved on first use."""
        from recsdk.device import resolve_device

        return resolve_device(self.device_setting)


@dataclass
class RatingPrediction:
    """Predicted ratings of items for one user, and the plugin that predicted them."""

    user_id: str | None
    #: item id -> predicted rating; None where no plugin could predict it
    ratings: dict[str, float | None]
    plugin: str | None = None
    model_run: str | None = None
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "ratings": self.ratings, "plugin": self.plugin,
                "model_run": self.model_run, "failures": self.failures}
