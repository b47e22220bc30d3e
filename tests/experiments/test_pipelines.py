"""Each variant is served by its own pipeline over the run's one set of plugins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsdk import Plugin, RecSDK, hookimpl
from recsdk.errors import ConfigurationError
from recsdk.experiments.assignment import Assignment
from recsdk.experiments.pipelines import (
    PluginView,
    VariantPipelines,
    enabled_plugins,
    variant_settings,
)
from recsdk.plugin_manager import PluginManager
from recsdk.types import RecommendationRequest
from tests.core.shop import fill, shop_rows


class Forward(Plugin):
    """Scores items by id order: i0 first."""

    @hookimpl
    def recsdk_score(self, candidates):
        return np.array([-int(i[1:]) for i in candidates.ids], dtype=float)


class Reverse(Plugin):
    """Scores items by reverse id order: the highest id first."""

    @hookimpl
    def recsdk_score(self, candidates):
        return np.array([int(i[1:]) for i in candidates.ids], dtype=float)


EXTRA = {"forward": Forward, "reverse": Reverse}
CONFIG: dict[str, Any] = {
    "plugins": {"forward": {}},
    "pipeline": {"fallback": "forward"},
    "experiments": {"flip": {"placements": ["home"], "holdout": 0.1, "variants": {
        "control": {"share": 0.5},
        "flipped": {"share": 0.5, "fallback": "reverse",
                    "plugins": {"reverse": {"weight": 3.0}}},
    }}},
}


@pytest.fixture
def sdk(tmp_path: Path) -> Iterator[RecSDK]:
    with RecSDK({**CONFIG, "database_url": f"sqlite:///{tmp_path / 'x.db'}"}, environ={},
                plugins=EXTRA, serve_models=False) as made:
        fill(made, shop_rows())
        yield made


@pytest.fixture
def manager(sdk: RecSDK) -> Iterator[PluginManager]:
    made = PluginManager(sdk.telemetry, EXTRA, runner=sdk.runner)
    made.enable(enabled_plugins(sdk.settings))
    made.call_each("recsdk_configure", isolate=False, context=sdk._context(sdk.catalog))
    yield made
    made.close()


def top(pipelines: VariantPipelines, sdk: RecSDK, assignment: Assignment | None,
        placement: str = "home") -> tuple[list[str], list[str]]:
    request = RecommendationRequest(user_id="nobody", k=3, placement=placement)
    result = pipelines.get(assignment).recommend(request, sdk._state, sdk.config_hash)
    return result.item_ids, result.plugins


def test_enabled_plugins_is_the_union() -> None:
    from recsdk.config import load_settings

    settings = load_settings(CONFIG, environ={})
    assert [p.name for p in enabled_plugins(settings)] == ["forward", "filters", "reverse"]


def test_each_arm_gets_its_own_pipeline(sdk: RecSDK, manager: PluginManager) -> None:
    pipelines = VariantPipelines(manager, sdk.settings)
    default = top(pipelines, sdk, None)
    assert default == (["i0", "i1", "i2"], ["forward"])  # reverse does not leak in
    assert top(pipelines, sdk, Assignment("flip", "control")) == default
    assert top(pipelines, sdk, Assignment("flip", "holdout", holdout=True)) == default
    flipped = top(pipelines, sdk, Assignment("flip", "flipped", forced=True))
    assert flipped == (["i19", "i18", "i17"], ["reverse"])
    assert pipelines.of(sdk.settings.experiments[0], "flipped").fallback == "reverse"


def test_a_view_needs_its_plugins_enabled(sdk: RecSDK) -> None:
    top_level_only = PluginManager(extra_plugins=EXTRA, max_workers=1)
    top_level_only.enable(sdk.settings.plugins)  # without the variants' plugins
    try:
        with pytest.raises(ConfigurationError, match="'reverse' is not enabled in this run"):
            VariantPipelines(top_level_only, sdk.settings)
    finally:
        top_level_only.close()
    assert sorted(sdk.plugins.settings) == ["filters", "forward", "reverse"]  # the SDK's
    view = PluginView(sdk.plugins, sdk.settings.plugins)
    assert sorted(view.names()) == ["filters", "forward"]
    assert view.call_each("recsdk_score", only=["reverse"], candidates=None) == []


def test_the_variant_weight_wins_over_a_placement_override() -> None:
    from recsdk.config import load_settings

    settings = load_settings({**CONFIG, "placements": {"shelf": {"weights": {
        "reverse": 0.0, "forward": 2.0}}}}, environ={})
    (experiment,) = settings.experiments
    own = variant_settings(settings, experiment.variant("flipped"))
    assert own.placements["shelf"]["weights"] == {"forward": 2.0}
    assert [p.name for p in own.plugins] == ["reverse", "filters"]
    assert own.pipeline["fallback"] == "reverse" and settings.pipeline["fallback"] == "forward"
    assert variant_settings(settings, experiment.variant("control")) is settings
