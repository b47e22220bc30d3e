"""A typed wrapper around pluggy: discovery, configuration and isolated hook calls.

Nothing else in recsdk touches ``pm.hook.*``. Each implementation is called on its
own so that one plugin that raises or overruns its time budget is skipped, logged and
counted while the others still answer (pluggy's own call would stop at the first error).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from recsdk import hookspecs
from recsdk.config import PluginSettings
from recsdk.errors import ConfigurationError, PluginError
from recsdk.telemetry import Telemetry

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "recsdk"

#: Built-in plugins, found even when recsdk runs from a checkout that is not installed.
BUILTIN_PLUGINS: dict[str, str] = {
    "popularity": "recsdk_plugins.popularity:GlobalPopularity",
    "category_popularity": "recsdk_plugins.popularity:CategoryPopularity",
    "trending": "recsdk_plugins.popularity:TrendingPopularity",
    "filters": "recsdk_plugins.filters:AvailabilityFilters",
    "interest": "recsdk_plugins.interest:UserInterest",
    "content": "recsdk_plugins.content:ContentBased",
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
        max_workers: int = 16,
    ) -> None:
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
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="recsdk")

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

        With ``timeout_ms`` each call runs on the worker pool and is abandoned (and
        counted) once its budget, or the plugin's own ``timeout_ms``, is spent. With
        ``isolate=False`` an exception propagates, naming the plugin (used for fit).
        """
        caller = getattr(self._pm.hook, hook)
        wanted = set(only) if only is not None else None
        results: list[HookResult] = []
        pending = []
        for impl in reversed(caller.get_hookimpls()):  # pluggy's call order
            if wanted is not None and impl.plugin_name not in wanted:
                continue
            args = [kwargs[name] for name in impl.argnames]
            cfg = self.settings.get(impl.plugin_name)
            budget = cfg.timeout_ms if cfg and cfg.timeout_ms is not None else timeout_ms
            if budget is None or not isolate:
                results.append(self._call_inline(hook, impl, args, isolate))
            else:
                start = time.perf_counter()
                future = self._executor.submit(impl.function, *args)
                pending.append((impl.plugin_name, future, start, budget))
                results.append(None)  # type: ignore[arg-type]
        slots = [i for i, r in enumerate(results) if r is None]
        for slot, (name, future, start, budget) in zip(slots, pending, strict=True):
            remaining = budget / 1000 - (time.perf_counter() - start)
            try:
                value = future.result(timeout=max(remaining, 0.0))
                results[slot] = HookResult(name, value, None, _ms_since(start))
            except FutureTimeout:
                future.cancel()
                results[slot] = self._failed(hook, name, f"timed out after {budget:.0f} ms",
                                             "timeout", start)
            except Exception as exc:
                results[slot] = self._failed(hook, name, f"{type(exc).__name__}: {exc}",
                                             "error", start, exc)
        return results

    def _call_inline(self, hook: str, impl: Any, args: list[Any], isolate: bool) -> HookResult:
        start = time.perf_counter()
        try:
            value = impl.function(*args)
        except Exception as exc:
            if not isolate:
                raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook}: {exc}") from exc
            return self._failed(hook, impl.plugin_name, f"{type(exc).__name__}: {exc}",
                                "error", start, exc)
        return HookResult(impl.plugin_name, value, None, _ms_since(start))

    def _failed(
        self, hook: str, plugin: str, message: str, kind: str, start: float,
        exc: BaseException | None = None,
    ) -> HookResult:
        log.warning("plugin %s failed in %s (%s): %s", plugin, hook, kind, message,
                    exc_info=exc)
        self.telemetry.plugin_failures.labels(plugin=plugin, hook=hook, kind=kind).inc()
        return HookResult(plugin, None, message, _ms_since(start))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
