"""The bandit reranker both plugins share: context in, slate and propensities out,
pulls and rewards into the shared state.

The hooks, in request order:

* ``recsdk_rerank`` (``trylast``: after the filters and any other reranker) takes the
  best ``pool`` items (at least ``k``) of the ranking it receives, builds each one's context
  (:mod:`.features`), and lets the policy fill ``k`` slots from them; it answers a
  :class:`recsdk.types.Ranking` with one propensity per position (the items it did not
  pick are dropped, as the chain allows). It does no I/O: it reads this process's view
  of the shared statistics.
* ``recsdk_served`` records the pulls: each shown item's context ``x`` is added to
  ``A`` with weight ``1 / position ** position_discount``, and written to the shared
  pending pulls with a TTL, so that any process can credit a later reward.

  Why discount: under a position-based click model a click at position p happens with
  probability ``e_p * theta^T x`` (``e_p`` the examination probability). With
  ``A = lambda I + sum e_p x x^T`` and ``b = sum r x``, ``E[b] = (A - lambda I) theta``,
  so ``A^-1 b`` estimates the relevance ``theta`` rather than the position-diluted
  click rate, and a low slot that was likely never looked at counts as a fraction of a
  pull. ``position_discount = 1`` assumes ``e_p = 1 / p``; 0 counts every slot fully.
* ``recsdk_log_feedback`` turns each feedback row into a reward (``rewards``: event
  type -> value; other types are ignored) and adds ``r x`` to ``b``, with ``x`` read
  from the pending pulls. A row whose request has no pending pull here (unknown id,
  served without this bandit, or expired) or whose item was not shown by it is counted
  in ``stats_`` and dropped.

The statistics are saved with a training run and seed the shared state of a fresh
deployment; see :mod:`.state`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates
from recsdk_plugins.bandits import features
from recsdk_plugins.bandits.policy import LinearStats, LinearThompson, LinUCB
from recsdk_plugins.bandits.state import (
    DatabaseBackend,
    MemoryBackend,
    RedisBackend,
    SharedStats,
    StateBackend,
)

from recsdk import Plugin, hookimpl
from recsdk.catalog import Catalog
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.types import (
    Feedback,
    PluginContext,
    Ranking,
    RecommendationRequest,
    RecommendationResult,
)

log = logging.getLogger(__name__)

BACKENDS = ("auto", "redis", "database", "memory")
DEFAULT_REWARDS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 5.0}
#: requests whose contexts wait in this process between rerank and served
MAX_WAITING = 10_000


class BanditParams(Schema):
    class Meta:
        unknown = RAISE

    rewards = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)), values=fields.Float(
            allow_nan=False), load_default=lambda: dict(DEFAULT_REWARDS),
        metadata={"description": "feedback type -> reward credited to the shown item; "
                  "types not listed are ignored"})
    pool = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=10_000),
        metadata={"description": "the bandit picks the list from this many (at least k) "
                  "of the best items of the ranking it receives"})
    ridge = fields.Float(
        load_default=1.0, validate=validate.Range(min=0, min_inclusive=False),
        metadata={"description": "lambda: A starts as lambda I"})
    position_discount = fields.Float(
        load_default=1.0, validate=validate.Range(min=0, max=5),
        metadata={"description": "a pull at position p adds weight 1/p**this to A "
                  "(0: every shown slot counts fully)"})
    n_draws = fields.Integer(
        load_default=256, validate=validate.Range(min=1, max=100_000),
        metadata={"description": "Monte Carlo draws of the policy's randomness per "
                  "request, for the propensities"})
    interest_plugin = fields.String(
        load_default="interest",
        metadata={"description": "the plugin whose request features hold the user's "
                  "interest profile"})
    backend = fields.String(
        load_default="auto", validate=validate.OneOf(BACKENDS),
        metadata={"description": "shared state: auto (Redis when the cache is Redis, "
                  "else the database), redis, database, or memory (one process only)"})
    namespace = fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,100}$"),
        metadata={"description": "name of the shared state (default: the plugin kind); "
                  "plugins with the same namespace learn together"})
    sync_s = fields.Float(
        load_default=1.0, validate=validate.Range(min=0, max=3600),
        metadata={"description": "seconds between syncs with the shared state (0: on "
                  "every update)"})
    pull_ttl_s = fields.Float(
        load_default=86_400.0, validate=validate.Range(min=1, max=30 * 86_400),
        metadata={"description": "how long a shown item waits for its reward"})

    @validates("rewards")
    def _rewards(self, value: Mapping[str, float], **_: Any) -> None:
        if not value or not any(v != 0 for v in value.values()):
            raise ValidationError("give at least one feedback type with a non-zero "
                                  f"reward, e.g. {DEFAULT_REWARDS}")


class BanditReranker(Plugin):
    """A contextual bandit over the pipeline's ranking; subclasses name the policy."""

    Params: ClassVar[type[Schema]] = BanditParams
    #: the plugin's name, and the default namespace of its shared state
    kind: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        try:  # from_config validated them already; a direct call is checked here
            loaded = dict(type(self).Params().load(params))
        except ValidationError as exc:
            raise ConfigurationError(
                f"plugins.{self.kind}: invalid parameters {exc.messages}; allowed "
                f"parameters: {', '.join(sorted(type(self).Params().fields))}") from exc
        super().__init__(**loaded)
        self.policy = self.make_policy()
        self.stats_: Counter[str] = Counter()
        self.shared: SharedStats | None = None
        self.backend: StateBackend | None = None
        self.seed = 0
        self.popularity_: np.ndarray = np.zeros(0)
        self._dataset: InteractionDataset | None = None
        self._catalog: features.CatalogContext | None = None
        self._roots: tuple[str, ...] = ()
        self._waiting: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def make_policy(self) -> LinUCB | LinearThompson:
        raise NotImplementedError

    @property
    def namespace(self) -> str:
        return f"{self.params.get('namespace') or self.kind}:d{features.DIM}"

    # ---- lifecycle -----------------------------------------------------------------

    @hookimpl
    def recsdk_configure(self, context: PluginContext) -> None:
        self.seed = int(context.seed)
        self.backend = self._backend(context)
        self.shared = SharedStats(self.backend, self.namespace, features.DIM,
                                  sync_s=self.params["sync_s"])
        self.shared.sync()

    def _backend(self, context: PluginContext) -> StateBackend:
        choice = self.params["backend"]
        redis_url = context.settings.redis_url
        if choice == "redis" or (choice == "auto" and redis_url):
            if not redis_url:
                raise ConfigurationError(
                    f"plugins.{self.kind}: backend = 'redis' needs redis_url in the settings")
            return RedisBackend(redis_url)
        if choice in ("database", "auto") and context.store is not None:
            return DatabaseBackend(context.store.engine)
        if choice == "database":
            raise ConfigurationError(f"plugins.{self.kind}: backend = 'database' needs a "
                                     "store (RecSDK passes its database)")
        return MemoryBackend()

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset) -> None:
        counts = np.asarray(dataset.matrix.sum(axis=0)).ravel()
        self.popularity_ = features.popularity_share(counts)
        self._dataset = dataset

    @hookimpl
    def recsdk_save_state(self) -> Mapping[str, np.ndarray] | None:
        if self.shared is None:
            return None
        self.shared.sync()  # the run keeps what every process learned so far
        return {"popularity": self.popularity_,
                "statistics": self.shared.stats().to_vector(),
                "features": np.asarray(features.FEATURES, dtype=str)}

    @hookimpl
    def recsdk_load_state(self, state: Mapping[str, np.ndarray],
                          dataset: InteractionDataset) -> None:
        saved = tuple(str(f) for f in state["features"])
        if saved != features.FEATURES:
            raise ValueError(f"{self.kind}: the run's context features {saved} differ from "
                             f"this version's {features.FEATURES}: retrain")
        self.popularity_ = np.asarray(state["popularity"], dtype=np.float64)
        self._dataset = dataset
        if self.shared is not None:
            saved = LinearStats.from_vector(state["statistics"], features.DIM)
            try:
                self.shared.seed(saved)
            except Exception as exc:  # the store is down: serve, and sync when it is back
                log.warning("%s: could not seed the shared state from the run (%s); it "
                            "starts from the shared store's state once it answers",
                            self.kind, exc)

    # ---- stage 4: choose the list ---------------------------------------------------

    @hookimpl(trylast=True)
    def recsdk_rerank(self, request: RecommendationRequest, ranking: Ranking
                      ) -> Ranking | None:
        if self.shared is None or len(ranking) == 0:
            return None
        pool = min(len(ranking), max(self.params["pool"], request.k))
        ids = list(ranking.item_ids[:pool])
        X = self.contexts(request, ids, np.asarray(ranking.scores[:pool], dtype=np.float64))
        order, propensities = self.policy.select(X, request.k, self.shared.stats(),
                                                 self.rng(request.request_id))
        with self._lock:
            self._waiting[request.request_id] = {ids[i]: X[i] for i in order}
            self._waiting.move_to_end(request.request_id)
            while len(self._waiting) > MAX_WAITING:
                self._waiting.popitem(last=False)
        return Ranking([ids[i] for i in order], [float(ranking.scores[i]) for i in order],
                       propensities=[float(p) for p in propensities])

    def rng(self, request_id: str) -> np.random.Generator:
        """The request's own random stream: the same seed and request id give the same
        list (a rerun of the chain on one request draws the same), whatever the order
        requests arrive in."""
        digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"),
                                 digest_size=8).digest()
        return np.random.default_rng([self.seed, int.from_bytes(digest, "little")])

    def contexts(self, request: RecommendationRequest, ids: list[str],
                 scores: np.ndarray) -> np.ndarray:
        """The context rows of ``ids`` (the pipeline's order) for this request."""
        catalog = self._catalog_context(request.catalog)
        profile = request.features.get(self.params["interest_plugin"])
        shares, user_price = features.interest_shares(profile, self._roots)
        if catalog is not None:
            pos = request.catalog.positions(ids)  # type: ignore[union-attr]
            known = pos >= 0

            def nodes(column: np.ndarray) -> np.ndarray:
                return np.where(known, column[np.maximum(pos, 0)], None)

            leaf, parent, root = nodes(catalog.leaf), nodes(catalog.parent), nodes(catalog.root)
            price = np.where(known, catalog.price[np.maximum(pos, 0)], np.nan)
            scale = catalog.scale
        else:
            leaf = parent = root = np.full(len(ids), None, dtype=object)
            price, scale = np.full(len(ids), np.nan), (0.0, 1.0)
        return features.context_matrix(
            leaf=features.lookup(shares, leaf), parent=features.lookup(shares, parent),
            root=features.lookup(shares, root), price=price, price_scale=scale,
            user_price=user_price, popularity=self._popularity(ids),
            upstream_scores=scores, known_user=bool(shares),
            recent=features.recency(request.history.item_ids, ids))

    def _popularity(self, ids: list[str]) -> np.ndarray:
        if self._dataset is None or len(self.popularity_) == 0:
            return np.zeros(len(ids))
        codes = self._dataset.item_codes(ids)
        ok = (codes >= 0) & (codes < len(self.popularity_))
        return np.where(ok, self.popularity_[np.where(ok, codes, 0)], 0.0)

    def _catalog_context(self, catalog: Catalog | None) -> features.CatalogContext | None:
        if catalog is None or len(catalog) == 0:
            return None
        key = (id(catalog), catalog.version)
        cached = self._catalog
        if cached is None or cached.version != key:
            cached = features.CatalogContext.build(catalog)
            self._roots = tuple(c for c, p in catalog.tree.parents.items() if p is None)
            self._catalog = cached
        return cached

    # ---- stage 5: pulls and rewards --------------------------------------------------

    @hookimpl
    def recsdk_served(self, result: RecommendationResult) -> None:
        with self._lock:
            contexts = self._waiting.pop(result.request_id, None)
        if not contexts or self.shared is None or self.backend is None:
            return  # not chosen by this bandit (a cached answer, another variant)
        shown = [(i.item_id, i.position) for i in result.items if i.item_id in contexts]
        if not shown:
            return
        X = np.stack([contexts[item] for item, _ in shown])
        positions = np.asarray([p for _, p in shown], dtype=np.float64)
        update = LinearStats.zeros(features.DIM)
        update.add_pulls(X, positions ** -self.params["position_discount"])
        self.shared.add(update)
        with self._lock:
            self.stats_["pulls"] += len(shown)
        self.backend.put_pulls(self.namespace, result.request_id,
                               {item: contexts[item] for item, _ in shown},
                               self.params["pull_ttl_s"])

    @hookimpl
    def recsdk_log_feedback(self, feedback: list[Feedback]) -> None:
        if self.shared is None or self.backend is None:
            return
        rewards = self.params["rewards"]
        rows: list[np.ndarray] = []
        values: list[float] = []
        counts: Counter[str] = Counter()
        for f in feedback:
            reward = rewards.get(f.type)
            if not reward:
                continue
            try:
                known, x = self.backend.get_pull(self.namespace, f.request_id, f.item_id)
            except Exception as exc:  # the shared store is down: the reward is lost
                log.warning("%s: could not read the pull of request %s (%s); reward "
                            "dropped", self.kind, f.request_id, exc)
                counts["dropped_backend_error"] += 1
                continue
            if not known:
                counts["dropped_unknown_request"] += 1
            elif x is None or x.shape != (features.DIM,):
                counts["dropped_not_shown"] += 1
            else:
                rows.append(x)
                values.append(float(reward))
                counts["rewards"] += 1
        if rows:
            update = LinearStats.zeros(features.DIM)
            update.add_rewards(np.stack(rows), np.asarray(values))
            self.shared.add(update)
        with self._lock:
            self.stats_.update(counts)
        dropped = sum(v for k, v in counts.items() if k.startswith("dropped_"))
        if dropped:
            log.info("%s: %d reward(s) dropped (%s)", self.kind, dropped,
                     {k: v for k, v in counts.items() if k.startswith("dropped_")})
