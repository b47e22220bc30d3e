"""``--plugin``/``--param`` parsing shared by the command line and the benchmarks."""

from __future__ import annotations

import pytest

from recsdk.config import PluginSettings
from recsdk.evaluation.offline import PluginSpec
from recsdk.evaluation.specs import configured_specs, parse_plugin_specs, parse_value


def test_values_are_json_when_they_can_be():
    assert [parse_value(v) for v in ["10", "0.5", "true", "null", "[1,2]", "events"]] == [
        10, 0.5, True, None, [1, 2], "events"]


def test_one_plugin_takes_unprefixed_parameters():
    assert parse_plugin_specs(["popularity"], ["count=events", "window_days=30"]) == [
        PluginSpec("popularity", "popularity", {"count": "events", "window_days": 30})]


def test_labels_let_one_plugin_run_with_several_parameter_sets():
    specs = parse_plugin_specs(["popularity", "recent=popularity"],
                               ["recent.window_days=7"])
    assert specs == [PluginSpec("popularity", "popularity", {}),
                     PluginSpec("recent", "popularity", {"window_days": 7})]


@pytest.mark.parametrize(("plugins", "params", "message"), [
    ([], [], "no plugin given"),
    (["a", "b"], ["count=1"], "name the one it is for as LABEL.count=VALUE"),
    (["a"], ["b.count=1"], "no plugin labelled 'b'"),
    (["a"], ["count"], "expected KEY=VALUE"),
])
def test_bad_plugin_arguments_are_explained(plugins, params, message):
    with pytest.raises(ValueError, match=message):
        parse_plugin_specs(plugins, params)


def test_configured_specs_keep_only_plugins_that_score():
    settings = [PluginSettings("pop", "popularity", params={"count": "events"}),
                PluginSettings("filters", "filters")]
    assert configured_specs(settings) == [PluginSpec("pop", "popularity",
                                                     {"count": "events"})]
