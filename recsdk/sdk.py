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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recsdk.cache import Cache, make_cache
from recsdk.catalog import Catalog
from recsdk.config import Settings, load_settings
from recsdk.dataset import InteractionDataset
from recsdk.device import resolve_device
from recsdk.errors import ConfigurationError, NotTrainedError, ValidationFailed
from recsdk.experiments.assignment import Assignment, Experiments
from recsdk.experiments.config import check_change
from recsdk.experiments.config import record as record_of
from recsdk.experiments.pipelines import VariantPipelines, enabled_plugins
from recsdk.experiments.sticky import ThompsonAssigner
from recsdk.isolation import PluginRunner
from recsdk.jsonable import json_safe
from recsdk.lifecycle import ModelWatcher, TrainingJobs
from recsdk.monitoring_gauges import register_monitoring_gauges
from recsdk.pipeline import ModelState, Pipeline
from recsdk.plugin_manager import PluginManager
from recsdk.registry import STATE, VOCABULARY, ArtifactError, ModelRegistry, default_artifact_dir
from recsdk.request_log import RequestLog
from recsdk.rules import RuleError, identifier
from recsdk.schemas import (
    CategorySchema,
    FeedbackSchema,
    ItemSchema,
    UserSchema,
    load_events,
    load_many,
)
from recsdk.served import ServedDispatcher
from recsdk.storage.store import InsertReport, Store
from recsdk.telemetry import Telemetry
from recsdk.types import (
    Feedback,
    PluginContext,
    RatingPrediction,
    RecommendationRequest,
    RecommendationResult,
    UserHistory,
    new_request_id,
)

log = logging.getLogger(__name__)

_ITEMS = ItemSchema()
_USERS = UserSchema()
_CATEGORIES = CategorySchema()
_FEEDBACK = FeedbackSchema()
#: owner of a run's own artifacts (vocabularies) in the registry
RUN_OWNER = "run"
#: items one predict_ratings call may rate (a page shows a few dozen)
MAX_RATED_ITEMS = 1000


@dataclass(frozen=True)
class TrainReport:
    run_id: str
    users: int
    items: int
    interactions: int
    plugins: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class ServingRun:
    """One complete model run as a process serves it: its own plugin instances, the
    pipeline over them and the vocabularies they were fit with. Swapped whole."""

    id: str | None
    plugins: PluginManager
    pipelines: VariantPipelines
    state: ModelState

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline of everyone outside experiments (and of holdouts)."""
        return self.pipelines.default

    @property
    def trained(self) -> bool:
        """False only for the placeholder a process serves before any run."""
        return self.id is not None


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
        serve_models: bool = True,
    ) -> None:
        """``config``: a dict or a TOML path (see :func:`recsdk.config.load_settings`);
        ``plugins``: extra plugin classes by name, beside installed entry points;
        ``migrate``: bring the schema to the latest version (False: refuse to start on
        an old schema, as serving processes should); ``serve_models``: load the active
        model run and follow newer ones (False for processes that only train or
        import)."""
        self.settings: Settings = load_settings(config, environ=environ)
        self.telemetry = Telemetry(self.settings)
        self.store = Store(self.settings.database_url)
        self.store.ensure_schema(migrate=migrate)
        self._record_experiments()
        #: keeps the units of Thompson-allocated experiments in their first arm (None:
        #: no such experiment; fixed ones are pure hashes, no database)
        self.thompson = (ThompsonAssigner(self.store) if any(
            e.allocation.method == "thompson" for e in self.settings.experiments) else None)
        self.experiments = Experiments(self.settings.experiments, thompson=self.thompson)
        self.cache: Cache = cache or make_cache(
            self.settings.redis_url, self.telemetry,
            max_entries=self.settings.cache["max_entries"],
            socket_timeout_s=self.settings.cache["socket_timeout_s"],
        )
        models_cfg = self.settings.models
        self.registry = ModelRegistry(
            self.store.engine,
            Path(models_cfg["artifact_dir"]) if models_cfg["artifact_dir"]
            else default_artifact_dir(self.settings.database_url),
            models_cfg["inline_max_bytes"],
        )
        # staleness and drift on /metrics, read from this database at scrape time
        self.monitoring_gauges = register_monitoring_gauges(self.telemetry.registry,
                                                            self.store, self.registry)
        self._extra_plugins = dict(plugins or {})
        # breakers and per-plugin capacity belong to plugin names, across model runs
        self.runner = PluginRunner.from_settings(self.settings, self.telemetry)
        first = self._new_plugins()
        self._check_configuration(first)
        self.request_log = RequestLog(self.store, telemetry=self.telemetry)
        self.served = ServedDispatcher(self.telemetry)
        self._swap_lock = threading.RLock()
        #: the periodic catalogue check runs here, off the request threads
        self._catalog_refresher: threading.Thread | None = None
        self._training_run: str | None = None
        self.jobs = TrainingJobs()
        catalog = self._read_catalog()
        dataset = InteractionDataset.from_vocabulary(
            {"user_ids": np.array([]), "item_ids": np.asarray(catalog.ids)}, catalog)
        first.call_each("recsdk_configure", isolate=False, context=self._context(catalog))
        self._run = ServingRun(None, first, VariantPipelines(first, self.settings),
                               ModelState.build(catalog, dataset))
        if serve_models:
            try:
                self.load_models()
            except ArtifactError as exc:  # serve degraded answers rather than not at all
                log.error("could not load the active model run (%s); answers are degraded "
                          "until a run loads: retrain, or `recsdk models activate` another",
                          exc)
        self._watcher = ModelWatcher(self, models_cfg["model_refresh_s"] if serve_models
                                     else 0.0)

    # ---- lifecycle ---------------------------------------------------------------------

    def _record_experiments(self) -> None:
        """Refuse a configuration that would move units between the arms of a running
        experiment (a changed salt, split, start or past ramp step), against what was
        stored when it last served; then store the current one."""
        stored = self.store.experiment_records()
        now = datetime.now(UTC)
        for experiment in self.settings.experiments:
            current = record_of(experiment)
            previous = stored.get(experiment.name)
            if previous is not None:
                check_change(previous, experiment, now)
            if previous != current:
                self.store.save_experiment_record(experiment.name, current)

    def _new_plugins(self) -> PluginManager:
        """A fresh set of plugin instances (one per training run or loaded run)."""
        manager = PluginManager(self.telemetry, self._extra_plugins, runner=self.runner)
        for experiment in self.settings.experiments:  # names the experiment and variant
            experiment.check_plugins(manager.available)
        manager.enable(enabled_plugins(self.settings))  # variants' plugins train too
        return manager

    def _check_configuration(self, plugins: PluginManager) -> None:
        fallback = self.settings.pipeline["fallback"]
        if fallback and fallback not in plugins.settings:
            raise ConfigurationError(
                f"pipeline.fallback names {fallback!r}, which is not enabled; enabled: "
                f"{', '.join(plugins.settings)}"
            )
        for placement, table in self.settings.placements.items():
            unknown = set(table.get("weights", {})) - set(plugins.settings)
            if unknown:
                raise ConfigurationError(
                    f"placements.{placement}.weights names {sorted(unknown)}, which are not "
                    f"enabled; enabled: {', '.join(plugins.settings)}"
                )

    @property
    def plugins(self) -> PluginManager:
        """The plugin instances of the run being served now."""
        return self._run.plugins

    @property
    def pipeline(self) -> Pipeline:
        return self._run.pipeline

    @property
    def trained(self) -> bool:
        return self._run.trained

    @property
    def model_run(self) -> str | None:
        """Id of the run being served (what ``recsdk train`` printed), None before one."""
        return self._run.id

    @property
    def _state(self) -> ModelState:
        return self._run.state

    @property
    def device(self) -> str:
        """Where deep plugins run; resolved on first use (importing torch is slow)."""
        return resolve_device(self.settings.device)

    def _context(self, catalog: Catalog | None = None) -> PluginContext:
        return PluginContext(settings=self.settings, store=self.store,
                             seed=self.settings.seed, device_setting=self.settings.device,
                             catalog=catalog)

    def close(self) -> None:
        self._watcher.stop()
        refresher = self._catalog_refresher
        if refresher is not None:
            refresher.join(timeout=5)
        if self.thompson is not None:
            self.thompson.close()
        self.jobs.wait(timeout_s=5)
        self.served.close()
        self.request_log.close()
        self._run.plugins.close()
        self.runner.close()
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
        # plugins prepare what depends on the snapshot before any request sees it
        self._run.plugins.call_each("recsdk_catalog_refreshed", catalog=catalog)
        with self._swap_lock:
            run = self._run
            self._run = replace(run, state=ModelState.build(catalog, run.state.dataset))

    def _maybe_refresh_catalog(self) -> None:
        """When due, look for catalogue changes on a background thread: the version
        query counts the items table, a full scan whose cost grows with the catalogue
        (hundreds of ms at 1M items on SQLite), so a request must not wait for it; it
        is served from the current snapshot meanwhile. ``catalog_refresh_s = 0`` checks
        inline before every request."""
        every = self.settings.cache["catalog_refresh_s"]
        if time.monotonic() - self._catalog_checked < every:
            return
        if every == 0:
            self.refresh_catalog(if_changed=True)
            return
        with self._swap_lock:
            running = self._catalog_refresher
            if running is not None and running.is_alive():
                return
            self._catalog_checked = time.monotonic()
            self._catalog_refresher = threading.Thread(
                target=self._refresh_catalog_quietly, name="recsdk-catalog-refresh",
                daemon=True)
            self._catalog_refresher.start()

    def _refresh_catalog_quietly(self) -> None:
        try:
            self.refresh_catalog(if_changed=True)
        except Exception:  # the next check retries; requests keep the current snapshot
            log.warning("catalogue refresh failed; serving the current snapshot",
                        exc_info=True)

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
            # under the swap lock: a run being swapped in gets these events exactly once
            with self._swap_lock:
                plugins = self._run.plugins
                if plugins.implementers("recsdk_collect_event"):
                    plugins.call_each("recsdk_collect_event", events=report.events,
                                      weights=self.settings.event_weights)
        return report

    def _remember(self, report: InsertReport) -> None:
        """Extend the cached recent activity of every user and session in the batch."""
        recent: dict[str, list[str]] = {}
        for user, session, item, kind, ts, value, *_ in report.rows:
            entry = _history_entry(item, kind, ts, value, session)
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
        """Recent activity of a user (or an anonymous session), oldest first, cached.

        Each event keeps its item, type, time, value and session; at most
        ``[cache] recent_events`` of them.
        """
        return _decode_history(self._recent_entries(user_id, session_id))

    def _recent_entries(self, user_id: str | None, session_id: str | None) -> list[str]:
        """The cached history entries (JSON text), read from the database on a miss."""
        if user_id is None and session_id is None:
            return []
        key = _history_key(user_id, session_id)
        entries = self.cache.get_recent(key)
        if entries is None:
            cap = self.settings.cache["recent_events"]
            rows = self.store.history(user_id, session_id, limit=cap)
            entries = [_history_entry(*r) for r in rows]
            self.cache.set_recent(key, entries, cap, ttl_s=3600)
        return entries

    # ---- training ------------------------------------------------------------------------

    def fit(self, save: bool = True) -> TrainReport:
        """Train every enabled plugin on all stored events, as a new run, and serve it.

        Training uses plugin instances of its own: requests served meanwhile keep
        using the current run until the new one is complete and swapped in.
        """
        start = time.perf_counter()
        dataset, through = self.read_training_data()
        offline = None
        if save and self.settings.models["offline_eval"]:
            from recsdk.evaluation.holdout import holdout_metrics  # pandas/evaluation: here

            offline = holdout_metrics(self.settings, self.store, dataset)
            start = time.perf_counter()  # the run's seconds are its own training's
        return self.fit_dataset(dataset, save=save, started=start, events_through=through,
                                offline=offline)

    def read_training_data(self) -> tuple[InteractionDataset, int]:
        """Every stored event up to the newest row id (returned too, the run's cut-off)
        with the store's catalogue, as :meth:`fit` trains on them."""
        catalog = self._read_catalog()
        through = self.store.max_event_id()
        # chunk by chunk into integer codes: memory follows the arrays, not the rows
        dataset = InteractionDataset.from_event_chunks(
            self.store.iter_event_columns(through_id=through), catalog,
            self.settings.event_weights)
        return dataset, through

    def fit_dataset(self, dataset: InteractionDataset, save: bool = True,
                    started: float | None = None, events_through: int | None = None,
                    activate: bool = True,
                    offline: dict[str, Any] | None = None) -> TrainReport:
        """Train on a prepared dataset (e.g. a cleaned or split one) as a new run.

        ``save``: record the run in the registry (False: in this process only);
        ``activate``: make it the run every process serves (and serve it here);
        ``offline``: the run's offline metrics, kept in its stats (``[models]
        offline_eval``, see :mod:`recsdk.evaluation.holdout`).
        The served catalogue is the dataset's until the next catalogue refresh, which
        reads the store's: build the dataset with :attr:`catalog` to keep them equal.
        """
        start = started or time.perf_counter()
        plugins = self._new_plugins()
        context = self._context(dataset.catalog)
        plugins.call_each("recsdk_configure", isolate=False, context=context)
        run_id = (self.registry.begin_run(self.config_hash, plugins.names()) if save
                  else uuid.uuid4().hex)
        self._training_run = run_id
        sizes: dict[str, int] = {}
        try:
            plugins.call_each("recsdk_fit", isolate=False, dataset=dataset, context=context)
            if save:
                sizes = self._save_run(run_id, plugins, dataset)
                self.registry.finish_run(
                    run_id, fingerprint=dataset.fingerprint(), events_through=events_through,
                    stats={"users": dataset.n_users, "items": dataset.n_items,
                           "interactions": len(dataset.interactions), "bytes": sizes,
                           "seconds": round(time.perf_counter() - start, 3),
                           **({"offline": offline} if offline is not None else {}),
                           **training_reports(plugins)},
                    activate=activate)
        except BaseException as exc:
            if save:
                self.registry.fail_run(run_id, f"{type(exc).__name__}: {exc}")
            plugins.close()
            raise
        if activate:
            run = ServingRun(run_id, plugins, VariantPipelines(plugins, self.settings),
                             ModelState.build(dataset.catalog, dataset))
            self._swap_in(run, events_through)
        else:
            plugins.close()
        return TrainReport(run_id, dataset.n_users, dataset.n_items, len(dataset.interactions),
                           sizes, time.perf_counter() - start)

    def _save_run(self, run_id: str, plugins: PluginManager,
                  dataset: InteractionDataset) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name in plugins.names():
            writer = self.registry.writer(run_id, f"plugin:{name}")
            for r in plugins.call_each("recsdk_save_state", isolate=False, only=[name],
                                       artifacts=writer):
                if r.value:
                    writer.save_arrays(STATE, r.value)
            if writer.bytes_written:
                sizes[name] = writer.bytes_written
        self.registry.writer(run_id, RUN_OWNER).save_arrays(VOCABULARY,
                                                            dataset.vocabulary_state())
        return sizes

    def load_models(self, run_id: str | None = None) -> bool:
        """Serve ``run_id`` (default: the active run); False when there is none.

        The run is loaded into fresh plugin instances, caught up with the events
        stored since it was trained, and swapped in whole.
        """
        run_id = run_id or self.registry.active_run_id()
        if run_id is None:
            return False
        info = self.registry.get(run_id)
        if info.id == self.model_run:
            return True
        catalog = self._read_catalog()
        vocab = self.registry.reader(info.id, RUN_OWNER).load_arrays(VOCABULARY, mmap=False)
        dataset = InteractionDataset.from_vocabulary(vocab, catalog)
        plugins = self._new_plugins()
        plugins.call_each("recsdk_configure", isolate=False, context=self._context(catalog))
        for name in plugins.names():
            if name not in info.plugins:
                log.warning("plugin %s is not part of run %s (enabled since?); it abstains "
                            "until the next `recsdk train`", name, info.id[:12])
                continue
            reader = self.registry.reader(info.id, f"plugin:{name}")
            if not reader.names():
                continue  # a plugin with no learned state
            try:
                state = reader.load_arrays(STATE) if STATE in reader else {}
            except ArtifactError as exc:
                log.error("run %s: %s; plugin %s abstains", info.id[:12], exc, name)
                continue
            for loaded in plugins.call_each("recsdk_load_state", only=[name], state=state,
                                            dataset=dataset, artifacts=reader):
                if not loaded.ok:  # e.g. its parameters changed since it was trained
                    log.warning("plugin %s could not load its state from run %s (%s); it "
                                "abstains until `recsdk train`", name, info.id[:12],
                                loaded.error)
        run = ServingRun(info.id, plugins, VariantPipelines(plugins, self.settings),
                         ModelState.build(catalog, dataset))
        self._swap_in(run, info.events_through)
        return True

    def _swap_in(self, run: ServingRun, events_through: int | None) -> None:
        """Catch ``run`` up with events stored after its training data, then serve it."""
        catch_up = events_through is not None and bool(
            run.plugins.implementers("recsdk_collect_event"))
        last = self._replay(run, events_through) if catch_up else 0
        with self._swap_lock:
            if catch_up:
                self._replay(run, last)  # what arrived while catching up
            old, self._run = self._run, run
        log.info("serving model run %s", run.id)
        if old.plugins is not run.plugins:
            # shares the runner, so closing releases nothing requests still inside it use
            old.plugins.close()

    def _replay(self, run: ServingRun, after: int) -> int:
        """Pass the events stored after row id ``after`` to ``run``'s plugins; return
        the last row id passed."""
        last = after
        while True:
            events, new_last = self.store.events_after(last)
            if not events:
                return last
            run.plugins.call_each("recsdk_collect_event", events=events,
                                  weights=self.settings.event_weights)
            last = new_last

    def refresh_model(self) -> bool:
        """Swap to the active run if another process activated a newer one; True if
        this process now serves a different run than before."""
        active = self.registry.active_run_id()
        if active is None or active == self.model_run:
            return False
        return self.load_models(active)

    def start_training(self) -> str:
        """Train in a background thread; returns the job id (see :attr:`jobs`).

        A job still running after ``[models] train_timeout_s`` is reported failed,
        its run is failed (a late finish is never activated) and the next job may
        start. Raises :class:`TrainingBusy` while a job runs.
        """
        return self.jobs.start(self._train_job, self.settings.models["train_timeout_s"],
                               self._end_timed_out_training)

    def _train_job(self) -> dict[str, Any]:
        report = self.fit()
        self.registry.prune(self.settings.models["keep_runs"])
        return asdict(report)

    def _end_timed_out_training(self) -> None:
        if self._training_run is not None:
            self.registry.fail_run(self._training_run, "timed out ([models] train_timeout_s)")

    # ---- recommendations -----------------------------------------------------------------

    def recommend(
        self,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        placement: str = "default",
        k: int | None = None,
        context: Mapping[str, Any] | None = None,
        force_variant: str | None = None,
        log_request: bool = True,
        exclude: Iterable[str] = (),
        candidates: Sequence[str] | None = None,
    ) -> RecommendationResult:
        """Top ``k`` items for a user or an anonymous session at a placement.

        An A/B experiment covering the placement picks the variant whose pipeline
        serves the list (``result.variant``, ``result.experiment``); ``force_variant``
        (``"EXPERIMENT:VARIANT"`` or ``"VARIANT"``) overrides it for QA, and such lists
        are logged as forced, never counted in the analysis.
        ``exclude``: items never to return (e.g. a user's training items, offline);
        ``candidates``: rank only these items (a shelf, a cold-start protocol).
        """
        started = time.perf_counter()
        self.settings.check_placement(placement)
        user_id, session_id = _checked_ids(user_id=user_id, session_id=session_id)
        self._maybe_refresh_catalog()
        if k is None:
            k = int(self.settings.placements.get(placement, {}).get("k")
                    or self.settings.pipeline["k"])
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
            raise ValidationFailed({"k": ["k must be between 1 and 1000."]}, "request")
        run = self._run  # one run for the whole request, whatever is swapped meanwhile
        entries = self._recent_entries(user_id, session_id)
        assignment = self._assign(run, placement, user_id, session_id, entries, force_variant)
        variant = assignment.variant if assignment is not None else "default"
        exclude = frozenset(map(str, exclude))
        context = dict(context or {})
        cacheable = not exclude and candidates is None
        arm = f"{assignment.experiment}:{variant}" if assignment is not None else variant
        key = self._result_key(run, user_id, session_id, placement, arm, k, context,
                               entries) if cacheable else None
        cached = self.cache.get(key) if key else None
        served = bool(log_request and run.plugins.implementers("recsdk_served"))
        request = None
        if cached is None or served:  # the history is decoded only when someone reads it
            request = RecommendationRequest(
                user_id=user_id, session_id=session_id, k=k, placement=placement,
                context=context, history=_decode_history(entries), variant=variant,
                exclude=exclude,
                allowed=None if candidates is None else tuple(map(str, candidates)),
            )
        if cached is not None:
            result = RecommendationResult.from_dict(json.loads(cached))
            result.request_id = request.request_id if request else new_request_id()
            outcome = "cached"
        else:
            assert request is not None
            result = run.pipelines.get(assignment).recommend(request, run.state,
                                                             self.config_hash)
            result.model_run = run.id
            result.experiment = assignment.experiment if assignment is not None else None
            if not run.trained:
                result.degraded = True
                result.failures.append("no trained model: run `recsdk train` (or fit())")
            # a degraded answer is cached briefly: while a plugin is failing, its
            # breaker keeps failing it, and recomputing the same fallback list per
            # request would cost the healthy path's throughput
            ttl = self.settings.cache["result_ttl_s"]
            if result.degraded:
                ttl = min(ttl, self.settings.cache["degraded_ttl_s"])
            # a list drawn at random (a bandit's, with propensities) is drawn anew per
            # request: replaying it would log impressions the policy never chose
            stochastic = any(i.propensity is not None for i in result.items)
            if key and run.trained and ttl > 0 and not stochastic:
                self.cache.set(key, json.dumps(result.to_dict()).encode(), ttl)
            outcome = "degraded" if result.degraded else "ok"
        self.telemetry.recommendations.labels(placement=placement, variant=variant,
                                              outcome=outcome).inc()
        elapsed = time.perf_counter() - started
        self.telemetry.latency.labels(placement=placement).observe(elapsed)
        if log_request:
            self._log(result, user_id, session_id,
                      forced=assignment is not None and assignment.forced,
                      latency_ms=1000 * elapsed, failures=len(result.failures))
            if served:
                assert request is not None
                self.served.submit(run.plugins, request, result)
        return result

    def _assign(self, run: ServingRun, placement: str, user_id: str | None,
                session_id: str | None, entries: list[str],
                force_variant: str | None) -> Assignment | None:
        """The request's experiment arm at ``placement`` (None: no experiment)."""
        if not self.experiments.experiments and force_variant is None:
            return None
        returning = bool(entries) or (user_id is not None
                                      and user_id in run.state.dataset.user_index)
        return self.experiments.assign(placement, user_id=user_id, session_id=session_id,
                                       now=datetime.now(UTC), is_returning=returning,
                                       force_variant=force_variant)

    def similar_items(self, item_id: str, k: int = 10, *, placement: str = "similar",
                      log_request: bool = True) -> RecommendationResult:
        """Items like ``item_id`` (for product pages), the item itself excluded."""
        self.settings.check_placement(placement)
        (item_id,) = _checked_ids(item_id=item_id)
        run = self._run
        if not run.trained:
            raise NotTrainedError("similar_items needs a trained model: run fit() first")
        start = time.perf_counter()
        result = run.pipeline.similar_items(item_id, k, run.state, self.config_hash,
                                            placement=placement)
        result.model_run = run.id
        if log_request:  # with its answer time, as recommend's (monitoring's percentiles)
            self._log(result, None, None, latency_ms=(time.perf_counter() - start) * 1000.0)
        return result

    def predict_ratings(self, user_id: str | None, item_ids: Sequence[str], *,
                        session_id: str | None = None) -> RatingPrediction:
        """Predicted stars of ``item_ids`` for a user (or session), from the first enabled
        plugin that predicts ratings (``rating_mf``); None for an item it cannot rate."""
        user_id, session_id = _checked_ids(user_id=user_id, session_id=session_id)
        items = [str(i) for i in item_ids]
        if not items or len(items) > MAX_RATED_ITEMS:
            raise ValidationFailed({"item_ids": [f"give 1 to {MAX_RATED_ITEMS} item ids; got "
                                                 f"{len(items)}"]}, "request")
        run = self._run
        if not run.trained:
            raise NotTrainedError("predict_ratings needs a trained model: run fit() first")
        request = RecommendationRequest(
            user_id=user_id, session_id=session_id, k=len(items), placement="default",
            history=_decode_history(self._recent_entries(user_id, session_id)),
            catalog=run.state.catalog)
        prediction = run.pipeline.predict_ratings(request, items, run.state)
        prediction.model_run = run.id
        return prediction

    def _result_key(self, run: ServingRun, user_id: str | None, session_id: str | None,
                    placement: str, variant: str, k: int, context: Mapping[str, Any],
                    entries: list[str]) -> str:
        """Keyed on the raw history entries (their last 20 and their count), so that a
        hit never decodes the history."""
        tail = "\x1e".join(entries[-20:]) + "#" + str(len(entries))
        ctx = json.dumps(context, sort_keys=True, default=str) if context else ""
        digest = hashlib.blake2b(f"{tail}:{ctx}".encode("utf-8", "surrogatepass"),
                                 digest_size=10).hexdigest()
        who = f"u:{user_id}" if user_id is not None else f"s:{session_id}"
        catalog = hashlib.blake2b(run.state.catalog.version.encode(),
                                  digest_size=6).hexdigest()
        return (f"rec:{self.config_hash}:{run.id}:{catalog}:{placement}:"
                f"{variant}:{k}:{who}:{digest}")

    def _log(self, result: RecommendationResult, user_id: str | None,
             session_id: str | None, forced: bool = False, latency_ms: float | None = None,
             failures: int = 0) -> None:
        self.request_log.add({
            "request_id": result.request_id, "user_id": user_id, "session_id": session_id,
            "placement": result.placement, "variant": result.variant,
            "experiment": result.experiment, "forced": forced,
            "config_hash": result.config_hash, "plugins": result.plugins,
            "degraded": result.degraded, "latency_ms": latency_ms, "failures": failures,
            "created_at": datetime.now(UTC),
            "items": [(i.item_id, i.position, i.score, i.propensity) for i in result.items],
        })

    # ---- stage 5: feedback ---------------------------------------------------------------

    def log_feedback(self, rows: Sequence[Mapping[str, Any]]) -> list[Feedback]:
        """Store reactions to served lists, credited to the request, variant and plugins.

        Every row must name a ``request_id`` that was served; the batch is refused
        whole otherwise.
        """
        loaded = load_many(_FEEDBACK, list(rows), "feedback")
        wanted = {r["request_id"] for r in loaded}
        info = self.store.request_info(wanted)
        if wanted - set(info):  # a list served a moment ago may still be queued
            self.request_log.flush()
            info = self.store.request_info(wanted)
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


def _checked_ids(**ids: object) -> tuple[str | None, ...]:
    """The ids of a request as text, by the same rule as ingestion; None stays None."""
    out, problems = [], {}
    for name, value in ids.items():
        try:
            out.append(None if value is None else identifier(value))
        except RuleError as exc:
            problems[name] = [str(exc)]
    if problems:
        raise ValidationFailed(problems, "request")
    return tuple(out)


def _decode_history(entries: list[str]) -> UserHistory:
    """Cached history entries (one JSON array each) as a UserHistory, in one parse."""
    return UserHistory.from_rows(json.loads(f"[{','.join(entries)}]"))


def _history_key(user_id: str | None, session_id: str | None) -> str:
    return f"recent:u:{user_id}" if user_id is not None else f"recent:s:{session_id}"


def _history_entry(item: str, kind: str, ts: datetime | float | None, value: float | None,
                   session: str | None) -> str:
    """One cached history event as JSON, so ids may hold any character."""
    seconds = ts.timestamp() if isinstance(ts, datetime) else ts
    return json.dumps([item, kind, seconds, value, session])


def training_reports(plugins: PluginManager) -> dict[str, Any]:
    """``{"training": {plugin: report}}`` for plugins that keep a training report.

    A plugin's ``report_`` attribute with an ``as_dict()`` method (the deep plugins'
    epochs, seconds per epoch and validation scores; ``ltr``'s feature importances) is
    kept in the run's stats, so ``recsdk models list --json`` shows how a run trained.
    """
    reports: dict[str, Any] = {}
    for name in plugins.names():
        as_dict = getattr(getattr(plugins.get(name), "report_", None), "as_dict", None)
        if callable(as_dict):
            reports[name] = json_safe(as_dict())
    return {"training": reports} if reports else {}
