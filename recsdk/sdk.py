"""The public facade: one object a shop's backend creates and keeps for its lifetime.

It ties settings, storage, cache, plugins and the pipeline together::

    sdk = RecSDK({"plugins": {"popularity": {}, "trending": {"weight": 0.5}}})
    sdk.track({"user_id": "u1", "item_id": "sku-1", "type": "purchase"})
    sdk.fit()
    sdk.recommend("u1", k=10).item_ids
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from recsdk.cache import Cache, make_cache
from recsdk.catalog import Catalog
from recsdk.config import Settings, load_settings
from recsdk.dataset import InteractionDataset
from recsdk.device import resolve_device
from recsdk.errors import ConfigurationError, NotTrainedError, ValidationFailed
from recsdk.pipeline import ModelState, Pipeline
from recsdk.plugin_manager import PluginManager
from recsdk.request_log import RequestLog
from recsdk.schemas import (
    CategorySchema,
    FeedbackSchema,
    ItemSchema,
    UserSchema,
    load_events,
    load_many,
)
from recsdk.storage.store import InsertReport, Store
from recsdk.telemetry import Telemetry
from recsdk.types import (
    Feedback,
    PluginContext,
    RecommendationRequest,
    RecommendationResult,
    UserHistory,
    new_request_id,
)

log = logging.getLogger(__name__)

VOCABULARY_ARTIFACT = "vocabulary"
_ITEMS = ItemSchema()
_USERS = UserSchema()
_CATEGORIES = CategorySchema()
_FEEDBACK = FeedbackSchema()


@dataclass(frozen=True)
class TrainReport:
    run_id: str
    users: int
    items: int
    interactions: int
    plugins: dict[str, int]
    seconds: float


class RecSDK:
    """Recommendations inside the shop's own process, on the shop's own database."""

    def __init__(
        self,
        config: Mapping[str, Any] | str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        plugins: Mapping[str, type] | None = None,
        migrate: bool = True,
        cache: Cache | None = None,
    ) -> None:
        """``config``: a dict or a TOML path (see :func:`recsdk.config.load_settings`);
        ``plugins``: extra plugin classes by name, beside installed entry points."""
        self.settings: Settings = load_settings(config, environ=environ)
        self.telemetry = Telemetry()
        self.store = Store(self.settings.database_url)
        self.store.ensure_schema(migrate=migrate)
        self.cache: Cache = cache or make_cache(
            self.settings.redis_url, self.telemetry,
            max_entries=self.settings.cache["max_entries"],
            socket_timeout_s=self.settings.cache["socket_timeout_s"],
        )
        self.plugins = PluginManager(self.telemetry, plugins,
                                     max_workers=self.settings.pipeline["max_workers"])
        self.plugins.enable(self.settings.plugins)
        fallback = self.settings.pipeline["fallback"]
        if fallback and fallback not in self.plugins.settings:
            raise ConfigurationError(
                f"pipeline.fallback names {fallback!r}, which is not enabled; enabled: "
                f"{', '.join(self.plugins.settings)}"
            )
        for placement, table in self.settings.placements.items():
            unknown = set(table.get("weights", {})) - set(self.plugins.settings)
            if unknown:
                raise ConfigurationError(
                    f"placements.{placement}.weights names {sorted(unknown)}, which are not "
                    f"enabled; enabled: {', '.join(self.plugins.settings)}"
                )
        self.pipeline = Pipeline(self.plugins, self.settings)
        self.request_log = RequestLog(self.store)
        self._state_lock = threading.Lock()
        catalog = self._read_catalog()
        self._state = ModelState.build(
            catalog, InteractionDataset.from_vocabulary(
                {"user_ids": np.array([]), "item_ids": np.asarray(catalog.ids)}, catalog))
        self.trained = False
        self.model_run: str | None = None
        self.plugins.call_each("recsdk_configure", isolate=False, context=self._context())
        self.load_models()

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def device(self) -> str:
        """Where deep plugins run; resolved on first use (importing torch is slow)."""
        return resolve_device(self.settings.device)

    def _context(self) -> PluginContext:
        return PluginContext(settings=self.settings, store=self.store,
                             seed=self.settings.seed, device_setting=self.settings.device)

    def close(self) -> None:
        self.request_log.close()
        self.plugins.close()
        self.cache.close()
        self.store.close()

    def __enter__(self) -> RecSDK:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def config_hash(self) -> str:
        return self.settings.config_hash

    # ---- catalogue -------------------------------------------------------------------

    def _read_catalog(self) -> Catalog:
        self._catalog_checked = time.monotonic()
        version = self.store.catalog_version()
        return Catalog.from_frames(self.store.items_frame(), self.store.categories_frame(),
                                   version=version)

    def refresh_catalog(self, if_changed: bool = False) -> None:
        """Re-read the catalogue snapshot the request path uses.

        With ``if_changed``, first compare the stored catalogue's version (one cheap
        query) and keep the snapshot when nothing changed; other processes sharing the
        database see this process's item updates that way.
        """
        if if_changed:
            self._catalog_checked = time.monotonic()
            if self.store.catalog_version() == self._state.catalog.version:
                return
        catalog = self._read_catalog()
        with self._state_lock:
            self._state = ModelState.build(catalog, self._state.dataset)

    def _maybe_refresh_catalog(self) -> None:
        every = self.settings.cache["catalog_refresh_s"]
        if time.monotonic() - self._catalog_checked >= every:
            self.refresh_catalog(if_changed=True)

    @property
    def catalog(self) -> Catalog:
        return self._state.catalog

    def upsert_categories(self, rows: Sequence[Mapping[str, Any]]) -> int:
        n = self.store.upsert_categories(load_many(_CATEGORIES, list(rows), "categories"))
        self.refresh_catalog()
        return n

    def upsert_items(self, rows: Sequence[Mapping[str, Any]]) -> int:
        n = self.store.upsert_items(load_many(_ITEMS, list(rows), "items"))
        self.refresh_catalog()
        return n

    def upsert_users(self, rows: Sequence[Mapping[str, Any]]) -> int:
        return self.store.upsert_users(load_many(_USERS, list(rows), "users"))

    # ---- stage 1: collect events -------------------------------------------------------

    def track(self, event: Mapping[str, Any]) -> InsertReport:
        """Validate and store one event; see :meth:`track_many`."""
        return self.track_many([event])

    def track_many(self, events: Sequence[Mapping[str, Any]]) -> InsertReport:
        """Validate a batch, store it in one transaction, then tell the plugins.

        A batch with any invalid event is refused whole (:class:`ValidationFailed`
        maps row numbers to field messages) and nothing of it is stored. Events with
        an ``event_id`` already stored are skipped and counted as duplicates.
        """
        try:
            rows = load_events(list(events) if not isinstance(events, list | str) else events)
        except ValidationFailed:
            self.telemetry.events.labels(outcome="rejected").inc(len(events))
            raise
        report = self.store.add_events(rows)
        self.telemetry.events.labels(outcome="stored").inc(report.stored)
        self.telemetry.events.labels(outcome="duplicate").inc(report.duplicates)
        if report.rows:
            self._remember(report)
            if self.plugins.implementers("recsdk_collect_event"):
                self.plugins.call_each("recsdk_collect_event", events=report.events,
                                       weights=self.settings.event_weights)
        return report

    def _remember(self, report: InsertReport) -> None:
        """Extend the cached recent activity of every user and session in the batch."""
        recent: dict[str, list[str]] = {}
        for user, session, item, kind, *_ in report.rows:
            entry = f"{item}\t{kind}"
            recent.setdefault(_history_key(user, None), []).append(entry)
            if session:
                recent.setdefault(_history_key(None, session), []).append(entry)
        self.cache.push_recent(recent, self.settings.cache["recent_events"])

    def forget_recent(self, user_ids: Iterable[str] = (), session_ids: Iterable[str] = ()
                      ) -> None:
        """Drop cached recent activity (after a bulk import), so it is read again."""
        keys = [_history_key(u, None) for u in user_ids]
        keys += [_history_key(None, s) for s in session_ids]
        for start in range(0, len(keys), 10_000):
            self.cache.delete(*keys[start : start + 10_000])

    def history(self, user_id: str | None, session_id: str | None = None) -> UserHistory:
        """Recent activity of a user (or an anonymous session), cached."""
        if user_id is None and session_id is None:
            return UserHistory()
        key = _history_key(user_id, session_id)
        entries = self.cache.get_recent(key)
        if entries is None:
            cap = self.settings.cache["recent_events"]
            pairs = self.store.history(user_id, session_id, limit=cap)
            entries = [f"{i}\t{t}" for i, t in pairs]
            self.cache.set_recent(key, entries, cap, ttl_s=3600)
        split = [e.split("\t", 1) for e in entries]
        return UserHistory([s[0] for s in split], [s[1] for s in split])

    # ---- training ------------------------------------------------------------------------

    def fit(self, save: bool = True) -> TrainReport:
        """Train every enabled plugin on all stored events and store their state."""
        start = time.perf_counter()
        catalog = self._read_catalog()
        events = self.store.events_frame()
        dataset = InteractionDataset.from_frame(events, catalog, self.settings.event_weights)
        return self.fit_dataset(dataset, save=save, started=start)

    def fit_dataset(self, dataset: InteractionDataset, save: bool = True,
                    started: float | None = None) -> TrainReport:
        """Train on a prepared dataset (e.g. a cleaned or split one)."""
        start = started or time.perf_counter()
        self.plugins.call_each("recsdk_fit", isolate=False, dataset=dataset,
                               context=self._context())
        run_id = uuid.uuid4().hex
        sizes: dict[str, int] = {}
        if save:
            config_hash = self.config_hash
            for r in self.plugins.call_each("recsdk_save_state", isolate=False):
                if r.value:
                    self.store.save_artifact(f"plugin:{r.plugin}", r.value, config_hash,
                                             {"run": run_id})
                    sizes[r.plugin] = int(sum(np.asarray(v).nbytes for v in r.value.values()))
            self.store.save_artifact(VOCABULARY_ARTIFACT, dataset.vocabulary_state(),
                                     config_hash, {"run": run_id})
        with self._state_lock:
            self._state = ModelState.build(dataset.catalog, dataset)
            self.trained = True
            self.model_run = run_id
        return TrainReport(run_id, dataset.n_users, dataset.n_items, len(dataset.interactions),
                           sizes, time.perf_counter() - start)

    def load_models(self) -> bool:
        """Load the newest stored model run; False when nothing was trained yet."""
        vocab = self.store.load_artifact(VOCABULARY_ARTIFACT)
        if vocab is None:
            return False
        arrays, meta = vocab
        catalog = self._read_catalog()
        dataset = InteractionDataset.from_vocabulary(arrays, catalog)
        for name in self.plugins.names():
            got = self.store.load_artifact(f"plugin:{name}")
            if got is None:
                continue
            state, pmeta = got
            if pmeta.get("run") != meta.get("run"):
                log.warning("stored state of plugin %s is from another training run; "
                            "retrain to use it", name)
                continue
            for loaded in self.plugins.call_each("recsdk_load_state", only=[name],
                                                 state=state, dataset=dataset):
                if not loaded.ok:  # e.g. its parameters changed since it was trained
                    log.warning("plugin %s could not load its stored state (%s); it "
                                "abstains until `recsdk train`", name, loaded.error)
        with self._state_lock:
            self._state = ModelState.build(catalog, dataset)
            self.trained = True
            self.model_run = meta.get("run")
        return True

    # ---- recommendations -----------------------------------------------------------------

    def recommend(
        self,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        placement: str = "default",
        k: int | None = None,
        context: Mapping[str, Any] | None = None,
        variant: str = "default",
        log_request: bool = True,
    ) -> RecommendationResult:
        """Top ``k`` items for a user or an anonymous session at a placement."""
        started = time.perf_counter()
        self._maybe_refresh_catalog()
        if k is None:
            k = int(self.settings.placements.get(placement, {}).get("k")
                    or self.settings.pipeline["k"])
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
            raise ValidationFailed({"k": ["k must be between 1 and 1000."]}, "request")
        history = self.history(user_id, session_id)
        key = self._result_key(user_id, session_id, placement, variant, k, history, context)
        cached = self.cache.get(key)
        if cached is not None:
            result = RecommendationResult.from_dict(json.loads(cached))
            result.request_id = new_request_id()
            outcome = "cached"
        else:
            request = RecommendationRequest(
                user_id=user_id, session_id=session_id, k=k, placement=placement,
                context=dict(context or {}), history=history, variant=variant,
            )
            result = self.pipeline.recommend(request, self._state, self.config_hash)
            if not self.trained:
                result.degraded = True
                result.failures.append("no trained model: run `recsdk train` (or fit())")
            if not result.degraded:
                self.cache.set(key, json.dumps(result.to_dict()).encode(),
                               self.settings.cache["result_ttl_s"])
            outcome = "degraded" if result.degraded else "ok"
        self.telemetry.recommendations.labels(placement=placement, variant=variant,
                                              outcome=outcome).inc()
        self.telemetry.latency.labels(placement=placement).observe(
            time.perf_counter() - started)
        if log_request:
            self._log(result, user_id, session_id)
        return result

    def similar_items(self, item_id: str, k: int = 10, *, placement: str = "similar",
                      log_request: bool = True) -> RecommendationResult:
        """Items like ``item_id`` (for product pages), the item itself excluded."""
        if not self.trained:
            raise NotTrainedError("similar_items needs a trained model: run fit() first")
        result = self.pipeline.similar_items(str(item_id), k, self._state, self.config_hash,
                                             placement=placement)
        if log_request:
            self._log(result, None, None)
        return result

    def _result_key(self, user_id: str | None, session_id: str | None, placement: str,
                    variant: str, k: int, history: UserHistory,
                    context: Mapping[str, Any] | None) -> str:
        tail = "|".join(history.item_ids[-20:]) + "#" + str(len(history.item_ids))
        ctx = json.dumps(context or {}, sort_keys=True, default=str)
        digest = hashlib.blake2b(f"{tail}:{ctx}".encode(), digest_size=10).hexdigest()
        who = f"u:{user_id}" if user_id is not None else f"s:{session_id}"
        catalog = hashlib.blake2b(self._state.catalog.version.encode(),
                                  digest_size=6).hexdigest()
        return (f"rec:{self.config_hash}:{self.model_run}:{catalog}:{placement}:{variant}:"
                f"{k}:{who}:{digest}")

    def _log(self, result: RecommendationResult, user_id: str | None,
             session_id: str | None) -> None:
        self.request_log.add({
            "request_id": result.request_id, "user_id": user_id, "session_id": session_id,
            "placement": result.placement, "variant": result.variant,
            "config_hash": result.config_hash, "plugins": result.plugins,
            "degraded": result.degraded, "created_at": datetime.now(UTC),
            "items": [(i.item_id, i.position, i.score) for i in result.items],
        })

    # ---- stage 5: feedback ---------------------------------------------------------------

    def log_feedback(self, rows: Sequence[Mapping[str, Any]]) -> list[Feedback]:
        """Store reactions to served lists, credited to the request, variant and plugins.

        Every row must name a ``request_id`` that was served; the batch is refused
        whole otherwise.
        """
        loaded = load_many(_FEEDBACK, list(rows), "feedback")
        self.request_log.flush()
        info = self.store.request_info(r["request_id"] for r in loaded)
        unknown = {i: {"request_id": [f"Unknown request {r['request_id']!r}."]}
                   for i, r in enumerate(loaded) if r["request_id"] not in info}
        if unknown:
            raise ValidationFailed(unknown, "feedback")
        now = datetime.now(UTC)
        out = []
        for r in loaded:
            req = info[r["request_id"]]
            out.append(Feedback(
                request_id=r["request_id"], item_id=r["item_id"], type=r["type"],
                timestamp=r.get("timestamp") or now, user_id=r.get("user_id") or req["user_id"],
                position=req["positions"].get(r["item_id"]), variant=req["variant"],
                plugins=tuple(req["plugins"]), value=r.get("value"),
            ))
        self.store.add_feedback([{
            "request_id": f.request_id, "user_id": f.user_id, "item_id": f.item_id,
            "type": f.type, "position": f.position, "value": f.value,
            "variant": f.variant, "timestamp": f.timestamp,
        } for f in out])
        self.plugins.call_each("recsdk_log_feedback", feedback=out)
        return out


def _history_key(user_id: str | None, session_id: str | None) -> str:
    return f"recent:u:{user_id}" if user_id is not None else f"recent:s:{session_id}"
