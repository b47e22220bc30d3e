"""One pipeline per variant, over one run's trained plugin instances.

A run enables every plugin any pipeline needs (the top-level ``[plugins]`` and every
variant's), trains and loads each once, and serves each pipeline through a view that
shows only its own plugins, with its own weights and fallback. The default pipeline is
a view too: a plugin only a variant names must not leak into everyone's lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, cast

from recsdk.config import PluginSettings, Settings
from recsdk.errors import ConfigurationError
from recsdk.experiments.assignment import Assignment
from recsdk.experiments.config import ExperimentSettings, VariantSettings
from recsdk.pipeline import Pipeline
from recsdk.plugin_manager import HookResult, PluginManager


def enabled_plugins(settings: Settings) -> tuple[PluginSettings, ...]:
    """Every plugin a run must enable: the top-level ones, then those only variants
    name (a name counts once; the settings guarantee that its entries agree)."""
    out = {p.name: p for p in settings.plugins}
    for e in settings.experiments:
        for v in e.variants:
            for p in v.plugins or ():
                out.setdefault(p.name, p)
    return tuple(out.values())


class PluginView:
    """Some plugins of a :class:`PluginManager`, with their own settings (weights).

    It offers what :class:`Pipeline` uses of a manager: ``settings``, ``telemetry``,
    ``implementers`` and ``call_each``; calls reach the manager's trained instances.
    """

    def __init__(self, manager: PluginManager, plugins: Iterable[PluginSettings]) -> None:
        self.manager = manager
        self.settings: dict[str, PluginSettings] = {}
        for p in plugins:
            if p.name not in manager.settings:
                raise ConfigurationError(
                    f"plugin {p.name!r} is not enabled in this run; enable "
                    "recsdk.experiments.pipelines.enabled_plugins(settings)")
            self.settings[p.name] = p
        self.telemetry = manager.telemetry

    def names(self) -> list[str]:
        return [n for n in self.manager.names() if n in self.settings]

    def implementers(self, hook: str) -> list[str]:
        return [n for n in self.manager.implementers(hook) if n in self.settings]

    def call_each(self, hook: str, *, only: Iterable[str] | None = None,
                  **kwargs: Any) -> list[HookResult]:
        names = list(self.settings) if only is None else [n for n in only
                                                          if n in self.settings]
        return self.manager.call_each(hook, only=names, **kwargs)


def variant_settings(settings: Settings, variant: VariantSettings) -> Settings:
    """The settings a variant's pipeline reads: its plugins and fallback; placement
    weight overrides of plugins the variant configures itself are dropped, so the
    variant's own weights are what it serves."""
    if variant.plugins is None and variant.fallback is None:
        return settings
    own = {p.name for p in variant.plugins or ()}
    placements = {
        name: {**table, "weights": {k: w for k, w in table.get("weights", {}).items()
                                    if k not in own}}
        for name, table in settings.placements.items()
    }
    pipeline = dict(settings.pipeline)
    if variant.fallback is not None:
        pipeline["fallback"] = variant.fallback
    return dataclasses.replace(
        settings, plugins=variant.plugins if variant.plugins is not None else settings.plugins,
        pipeline=pipeline, placements=placements)


class VariantPipelines:
    """The default pipeline and one per variant, over one run's plugin manager."""

    def __init__(self, manager: PluginManager, settings: Settings) -> None:
        self.default = self._pipeline(manager, settings)
        self._by: dict[tuple[str, str], Pipeline] = {}
        for e in settings.experiments:
            for v in e.variants:
                own = variant_settings(settings, v)
                self._by[(e.name, v.name)] = (self.default if own is settings
                                              else self._pipeline(manager, own))

    @staticmethod
    def _pipeline(manager: PluginManager, settings: Settings) -> Pipeline:
        view = PluginView(manager, settings.plugins)
        return Pipeline(cast(PluginManager, view), settings)  # duck-typed: see PluginView

    def get(self, assignment: Assignment | None) -> Pipeline:
        """The pipeline an assignment is served by; no experiment or the holdout: the
        default one."""
        if assignment is None or assignment.holdout:
            return self.default
        return self._by[(assignment.experiment, assignment.variant)]

    def of(self, experiment: ExperimentSettings, variant: str) -> Pipeline:
        return self._by[(experiment.name, variant)]
