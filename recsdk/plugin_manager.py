"""A typed wrapper around pluggy: discovery, configuration and isolated hook calls.

Nothing else in recsdk touches ``pm.hook.*``. Each implementation is called on its
own so that one plugin that raises or overruns its time budget is skipped, logged and
counted while the others still answer (pluggy's own call would stop at the first error).
How a budgeted call is executed (capacity, circuit breaker) is :mod:`recsdk.isolation`'s.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

import pluggy

from recsdk import hookspecs
from recsdk.config import PluginSettings
from recsdk.errors import ConfigurationError, PluginError
from recsdk.isolation import ERROR, SKIPPED_KINDS, IsolationSettings, PendingCall, PluginRunner
from recsdk.telemetry import Telemetry

ENTRY_POINT_GROUP = "recsdk"

#: Built-in plugins, found even when recsdk runs from a checkout that is not installed.
BUILTIN_PLUGINS: dict[str, str] = {
    "popularity": "recsdk_plugins.popularity:GlobalPopularity",
    "category_popularity": "recsdk_plugins.popularity:CategoryPopularity",
    "trending": "recsdk_plugins.popularity:TrendingPopularity",
    "filters": "recsdk_plugins.filters:AvailabilityFilters",
    "interest": "recsdk_plugins.interest:UserInterest",
    "content": "recsdk_plugins.content:ContentBased",
    "cooccurrence": "recsdk_plugins.cooccurrence:Cooccurrence",
    "item_knn": "recsdk_plugins.knn:ItemKNN",
    "user_knn": "recsdk_plugins.knn:UserKNN",
    "ease": "recsdk_plugins.ease:EASE",
    "sasrec": "recsdk_plugins.sasrec:SASRec",
    "gru4rec": "recsdk_plugins.gru4rec:GRU4Rec",
    "rating_mf": "recsdk_plugins.rating_mf:RatingMF",
    "als": "recsdk_plugins.factorization:ALS",
    "bpr": "recsdk_plugins.factorization:BPR",
    "lmf": "recsdk_plugins.factorization:LMF",
    "multimodal": "recsdk_plugins.multimodal:Multimodal",
    "lightgcn": "recsdk_plugins.lightgcn:LightGCN",
    "cfgan": "recsdk_plugins.cfgan:CFGAN",
    "two_tower": "recsdk_plugins.two_tower:TwoTower",
    "ltr": "recsdk_plugins.ltr:LearningToRank",
    "linucb": "recsdk_plugins.bandits.linucb:LinUCBBandit",
    "thompson": "recsdk_plugins.bandits.thompson:ThompsonBandit",
    "multvae": "recsdk_plugins.multvae:MultVAE",
    "qlearning": "recsdk_plugins.qlearning:QLearning",
}


@dataclass(frozen=True)
class AvailablePlugin:
    """An installed plugin class, before anything is configured."""

    entry_point: str
    target: str
    distribution: str | None
    version: str | None
    loader: Callable[[], type]

    def load(self) -> type:
        return self.loader()


@dataclass(frozen=True)
class HookResult:
    """One implementation's answer to one hook call."""

    plugin: str
    value: Any = None
    error: str | None = None
    elapsed_ms: float = 0.0
    #: why it failed: "error" or "timeout"; or why it was skipped: "open" or "saturated"
    kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _import_target(target: str) -> type:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def discover_plugins() -> dict[str, AvailablePlugin]:
    """Installed plugins by entry-point name; built-ins fill in what is not installed."""
    found: dict[str, AvailablePlugin] = {}
    for name, target in BUILTIN_PLUGINS.items():
        found[name] = AvailablePlugin(
            name, target, "recsdk", _recsdk_version(), lambda t=target: _import_target(t)
        )
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        found[ep.name] = AvailablePlugin(ep.name, ep.value, dist, version, ep.load)
    return found


def _recsdk_version() -> str:
    from recsdk import __version__

    return __version__


class PluginManager:
    """Loads the configured plugins and calls their hooks, each on its own."""

    def __init__(
        self,
        telemetry: Telemetry | None = None,
        extra_plugins: Mapping[str, type] | None = None,
        max_workers: int | None = None,
        runner: PluginRunner | None = None,
    ) -> None:
        """``runner``: shared isolation state (breakers, capacity) kept across managers;
        without one, the manager makes its own, with ``max_workers`` as each plugin's
        default ``max_concurrency``, and closes it in :meth:`close`."""
        if runner is not None and max_workers is not None:
            raise TypeError("PluginManager takes max_workers or runner, not both: "
                            "max_workers only sizes a runner the manager makes itself")
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.telemetry = telemetry or Telemetry()
        self.available = discover_plugins()
        for name, cls in (extra_plugins or {}).items():
            self.available[name] = AvailablePlugin(
                name, f"{cls.__module__}:{cls.__qualname__}", None,
                getattr(cls, "version", None), lambda c=cls: c,
            )
        self.settings: dict[str, PluginSettings] = {}
        self._owns_runner = runner is None
        self.runner = runner or PluginRunner(
            IsolationSettings(default_concurrency=max_workers or 16), self.telemetry)

    # ---- configuration ---------------------------------------------------------------

    def enable(self, plugins: Iterable[PluginSettings]) -> None:
        """Instantiate and register each configured plugin; fail on any problem."""
        for cfg in plugins:
            if cfg.plugin not in self.available:
                names = ", ".join(sorted(self.available))
                raise ConfigurationError(
                    f"plugins.{cfg.name}: unknown plugin {cfg.plugin!r}; available: {names}"
                )
            cls = self.available[cfg.plugin].load()
            if hasattr(cls, "from_config"):
                instance = cls.from_config(cfg.params, name=cfg.name)
            elif cfg.params:
                raise ConfigurationError(
                    f"plugins.{cfg.name}: {cfg.plugin!r} takes no parameters, "
                    f"got {sorted(cfg.params)}"
                )
            else:
                instance = cls() if inspect.isclass(cls) else cls
            self.register(instance, cfg)
        self.check()

    def register(self, plugin: object, cfg: PluginSettings) -> None:
        """Register one plugin instance under its configured name."""
        if cfg.name in self.settings:
            raise ConfigurationError(f"plugins.{cfg.name}: enabled twice")
        try:
            self._pm.register(plugin, name=cfg.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {cfg.name!r} does not fit its hooks: {exc}") from exc
        self.runner.configure(cfg.name, cfg.max_concurrency)
        self.settings[cfg.name] = cfg

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self.settings.pop(name, None)

    def check(self) -> None:
        """Fail when an implementation names a hook that does not exist (a typo)."""
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("recsdk_")))
            raise PluginError(f"{exc}; known hooks: {known}") from exc

    # ---- introspection ---------------------------------------------------------------

    def names(self) -> list[str]:
        return [name for name, _ in self._pm.list_name_plugin()]

    def get(self, name: str) -> object | None:
        return self._pm.get_plugin(name)

    def hooks_of(self, name: str) -> list[str]:
        plugin = self._pm.get_plugin(name)
        callers = self._pm.get_hookcallers(plugin) or []
        return sorted(c.name for c in callers)

    def implementers(self, hook: str) -> list[str]:
        """Plugin names implementing ``hook``, in call order."""
        caller = getattr(self._pm.hook, hook)
        return [impl.plugin_name for impl in reversed(caller.get_hookimpls())]

    # ---- calls -----------------------------------------------------------------------

    def call_each(
        self,
        hook: str,
        *,
        timeout_ms: float | None = None,
        only: Iterable[str] | None = None,
        isolate: bool = True,
        **kwargs: Any,
    ) -> list[HookResult]:
        """Call every implementation of ``hook``; failures become error results.

        With ``timeout_ms`` each call runs on its plugin's own capacity, behind its
        circuit breaker (see :mod:`recsdk.isolation`), and is abandoned (and counted)
        once its budget, or the plugin's own ``timeout_ms``, is spent; the calls run in
        parallel. A call the breaker or a full capacity refuses is skipped at once.
        Without a budget, calls run inline in the caller's thread. With
        ``isolate=False`` they run inline and an exception propagates, naming the
        plugin (used for fit).
        """
        caller = getattr(self._pm.hook, hook)
        wanted = set(only) if only is not None else None
        results: list[HookResult | None] = []
        pending: list[tuple[int, PendingCall, float]] = []
        for impl in reversed(caller.get_hookimpls()):  # pluggy's call order
            if wanted is not None and impl.plugin_name not in wanted:
                continue
            cfg = self.settings.get(impl.plugin_name)
            args = [_own_seed(kwargs[name], cfg) if name == "context" else kwargs[name]
                    for name in impl.argnames]
            budget = cfg.timeout_ms if cfg and cfg.timeout_ms is not None else timeout_ms
            if budget is None or not isolate:
                results.append(self._call_inline(hook, impl, args, isolate))
            else:
                call = self.runner.submit(impl.plugin_name, impl.function, args)
                pending.append((len(results), call, budget))
                results.append(None)
        for slot, call, budget in pending:
            outcome = self.runner.collect(call, budget)
            results[slot] = (
                HookResult(outcome.plugin, outcome.value, None, outcome.elapsed_ms)
                if outcome.ok else
                self._failed(hook, outcome.plugin, outcome.error or "", outcome.kind or ERROR,
                             outcome.elapsed_ms, outcome.exception)
            )
        return results  # type: ignore[return-value]  # every slot is filled above

    def _call_inline(self, hook: str, impl: Any, args: list[Any], isolate: bool) -> HookResult:
        start = time.perf_counter()
        try:
            value = impl.function(*args)
        except Exception as exc:
            if not isolate:
                raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook}: {exc}") from exc
            return self._failed(hook, impl.plugin_name, f"{type(exc).__name__}: {exc}",
                                ERROR, _ms_since(start), exc)
        return HookResult(impl.plugin_name, value, None, _ms_since(start))

    def _failed(
        self, hook: str, plugin: str, message: str, kind: str, elapsed_ms: float,
        exc: BaseException | None = None,
    ) -> HookResult:
        """Count a failed or skipped call and log it, once per interval per kind."""
        if kind in SKIPPED_KINDS:
            self.telemetry.plugin_skipped.labels(plugin=plugin, reason=kind).inc()
            line = f"plugin {plugin} {message} ({hook})"
        else:
            self.telemetry.plugin_failures.labels(plugin=plugin, hook=hook, kind=kind).inc()
            line = f"plugin {plugin} failed in {hook} ({kind}): {message}"
        self.runner.failure_log.warning((plugin, hook, kind), line, exc)
        return HookResult(plugin, None, message, elapsed_ms, kind)

    # ---- health and lifecycle --------------------------------------------------------

    def isolation_health(self) -> dict[str, dict[str, Any]]:
        """Per enabled plugin: breaker state and capacity in use (for ``/healthz``)."""
        return self.runner.health(self.names())

    def close(self) -> None:
        """Release what this manager made; a runner passed in belongs to its creator."""
        if self._owns_runner:
            self.runner.close()


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _own_seed(context: Any, cfg: PluginSettings | None) -> Any:
    """The hook's ``context`` with the plugin's own ``seed`` where its settings set one
    (a :class:`~recsdk.types.PluginContext` copy; the shared one is left as it is)."""
    if cfg is None or cfg.seed is None or not hasattr(context, "seed"):
        return context
    return replace(context, seed=cfg.seed)
