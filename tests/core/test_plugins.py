"""Plugin discovery, configuration and startup validation."""

from __future__ import annotations

import pytest

from recsdk import Plugin, hookimpl
from recsdk.config import PluginSettings, Settings
from recsdk.errors import ConfigurationError, PluginError
from recsdk.plugin_manager import PluginManager, discover_plugins
from recsdk.types import PluginContext


class Misspelled(Plugin):
    @hookimpl
    def recsdk_scroe(self, candidates):  # the typo must stop startup
        return None


class WrongArgument(Plugin):
    @hookimpl
    def recsdk_score(self, candidates, shoe_size):
        return None


class SeedRecorder(Plugin):
    """Keeps the seed each of its context hooks was handed."""

    def __init__(self, **params):
        super().__init__(**params)
        self.seeds = []

    @hookimpl
    def recsdk_configure(self, context):
        self.seeds.append(context.seed)

    @hookimpl
    def recsdk_fit(self, dataset, context):
        self.seeds.append(context.seed)


def test_builtins_are_discovered():
    available = discover_plugins()
    for name in ("popularity", "category_popularity", "trending", "filters"):
        assert name in available
        assert available[name].version


def test_unknown_plugin_lists_available(make_sdk):
    with pytest.raises(ConfigurationError) as err:
        make_sdk({"plugins": {"popularty": {}}})
    assert "popularty" in str(err.value)
    assert "popularity" in str(err.value) and "trending" in str(err.value)


def test_bad_parameter_names_allowed_ones(make_sdk):
    with pytest.raises(ConfigurationError) as err:
        make_sdk({"plugins": {"trending": {"half_life": 3}}})
    assert "half_life" in str(err.value)
    assert "half_life_hours" in str(err.value)
    with pytest.raises(ConfigurationError, match="half_life_hours"):
        make_sdk({"plugins": {"trending": {"half_life_hours": -1}}})


def test_misspelled_hook_fails_at_startup(make_sdk):
    with pytest.raises(PluginError, match="recsdk_scroe"):
        make_sdk({"plugins": {"popularity": {}, "typo": {}}}, plugins={"typo": Misspelled})


def test_implementation_with_unknown_argument_fails(make_sdk):
    with pytest.raises(PluginError, match="shoe_size"):
        make_sdk({"plugins": {"popularity": {}, "odd": {}}}, plugins={"odd": WrongArgument})


def test_same_plugin_twice_under_aliases(make_sdk):
    sdk = make_sdk({"plugins": {
        "popularity": {},
        "recent_popularity": {"plugin": "popularity", "window_days": 7, "weight": 0.5},
    }})
    assert set(sdk.plugins.names()) == {"popularity", "recent_popularity", "filters"}
    assert sdk.plugins.get("recent_popularity").params["window_days"] == 7
    assert "recsdk_score" in sdk.plugins.hooks_of("recent_popularity")


def test_fallback_must_be_enabled(make_sdk):
    with pytest.raises(ConfigurationError, match="fallback"):
        make_sdk({"plugins": {"trending": {}}})


def test_manager_rejects_double_registration():
    pm = PluginManager()
    cfg = PluginSettings("popularity", "popularity")
    pm.enable([cfg])
    with pytest.raises(ConfigurationError, match="enabled twice"):
        pm.enable([cfg])
    pm.close()


def test_a_plugins_own_seed_replaces_the_runs_in_its_hooks_only():
    pm = PluginManager(extra_plugins={"recorder": SeedRecorder})
    pm.enable([PluginSettings("first", "recorder", seed=7),
               PluginSettings("second", "recorder")])
    context = PluginContext(settings=Settings(seed=42), seed=42)
    pm.call_each("recsdk_configure", isolate=False, context=context)
    pm.call_each("recsdk_fit", isolate=False, dataset=None, context=context)
    assert pm.get("first").seeds == [7, 7]
    assert pm.get("second").seeds == [42, 42]
    assert context.seed == 42  # the shared context is not changed
    pm.close()
