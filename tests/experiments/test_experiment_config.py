"""``[experiments.NAME]`` in the settings: good tables load, each bad one stops startup
with a message naming the experiment and what is wrong."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, datetime
from typing import Any

import pytest

from recsdk.config import load_settings
from recsdk.errors import ConfigurationError
from recsdk.experiments.config import HOLDOUT, ExperimentSettings
from recsdk.plugin_manager import discover_plugins

TOML = """
[plugins.popularity]
[plugins.interest]
weight = 2.0

[placements.product_page]
k = 8

[experiments.home_blend]
placements = ["home", "product_page"]
control = "baseline"
salt = "home-blend-2026"
unit = "user"
start = 2026-12-01T00:00:00Z
stop = 2027-01-01T00:00:00Z
holdout = 0.05
layer = "home"
layer_range = [0.0, 0.5]
targeting = { audience = "returning" }

[experiments.home_blend.variants.baseline]
share = 0.5

[experiments.home_blend.variants.trending]
share = 0.5
fallback = "popularity"
[experiments.home_blend.variants.trending.plugins.popularity]
weight = 1.0
[experiments.home_blend.variants.trending.plugins.trending]
weight = 0.5
half_life_hours = 72

[[experiments.home_blend.ramp]]
at = 2026-12-01T00:00:00Z
shares = { baseline = 0.1, trending = 0.1 }

[[experiments.home_blend.ramp]]
at = 2026-12-08T00:00:00Z
shares = { baseline = 0.5, trending = 0.5 }
"""


def base() -> dict[str, Any]:
    return tomllib.loads(TOML)


def load(cfg: dict[str, Any]) -> tuple[ExperimentSettings, ...]:
    return load_settings(cfg, environ={}).experiments


def test_a_complete_experiment_loads() -> None:
    (e,) = load(base())
    assert e.name == "home_blend" and e.placements == ("home", "product_page")
    assert e.variant_names == ("baseline", "trending") and e.control == "baseline"
    assert e.salt == "home-blend-2026" and e.unit == "user" and e.audience == "returning"
    assert e.holdout == 0.05 and e.layer == "home" and e.layer_range == (0.0, 0.5)
    assert e.start == datetime(2026, 12, 1, tzinfo=UTC)
    trending = e.variant("trending")
    assert {p.name: p.weight for p in trending.plugins} == {
        "popularity": 1.0, "trending": 0.5, "filters": 1.0}
    assert trending.plugins[1].params == {"half_life_hours": 72}
    assert e.variant("baseline").plugins is None  # the top-level pipeline
    assert e.shares_at(datetime(2026, 11, 30, tzinfo=UTC)) == {"baseline": 0, "trending": 0}
    assert e.shares_at(datetime(2026, 12, 3, tzinfo=UTC)) == {"baseline": .1, "trending": .1}
    assert e.shares_at(datetime(2026, 12, 9, tzinfo=UTC)) == {"baseline": .5, "trending": .5}
    assert [kind for _, kind, _ in e.timeline()] == ["start", "ramp", "ramp", "stop"]
    e.check_plugins(discover_plugins())


def test_defaults() -> None:
    (e,) = load({"experiments": {"x": {"placements": ["home"], "variants": {
        "a": {"share": 0.5}, "b": {"share": 0.5}}}}})
    assert (e.control, e.salt, e.unit, e.audience, e.holdout) == ("a", "x", "user", "all", 0)
    assert e.layer == "experiment:x" and e.layer_range == (0.0, 1.0) and e.ramp == ()
    assert e.shares_at(datetime(2000, 1, 1, tzinfo=UTC)) == {"a": 0.5, "b": 0.5}


def test_no_experiments_keeps_the_config_hash() -> None:
    plain = load_settings({}, environ={})
    assert plain.experiments == ()
    cfg = base()
    with_exp = load_settings(cfg, environ={})
    cfg2 = copy.deepcopy(cfg)
    cfg2["experiments"]["home_blend"]["holdout"] = 0.1  # who, not what: same hash
    assert load_settings(cfg2, environ={}).config_hash == with_exp.config_hash
    cfg3 = copy.deepcopy(cfg)
    cfg3["experiments"]["home_blend"]["variants"]["trending"]["plugins"]["trending"][
        "weight"] = 0.7
    assert load_settings(cfg3, environ={}).config_hash != with_exp.config_hash


def _bad(edit: Any, *needles: str) -> None:
    cfg = base()
    edit(cfg["experiments"]["home_blend"], cfg)
    with pytest.raises(ConfigurationError) as err:
        load(cfg)
    for needle in ("home_blend", *needles):
        assert needle in str(err.value), str(err.value)


def test_shares_must_add_up_to_one() -> None:
    def edit(e: dict[str, Any], _: Any) -> None:
        e["variants"]["trending"]["share"] = 0.4
        e["ramp"] = []
    _bad(edit, "add up to 0.9, not 1", "baseline=0.5", "trending=0.4")


def test_shares_within_tolerance_pass() -> None:
    cfg = {"experiments": {"x": {"placements": ["home"], "variants": {
        "a": {"share": 0.2}, "b": {"share": 0.3}, "c": {"share": 0.5 + 5e-10}}}}}
    assert load(cfg)[0].variant_names == ("a", "b", "c")


def test_unknown_plugin_is_named() -> None:
    cfg = base()
    cfg["experiments"]["home_blend"]["variants"]["trending"]["plugins"]["deep"] = {
        "plugin": "no_such_plugin"}
    (e,) = load(cfg)
    with pytest.raises(ConfigurationError,
                       match=r"experiments\.home_blend\.variants\.trending\.plugins\.deep: "
                             r"unknown plugin 'no_such_plugin'; available: .*popularity"):
        e.check_plugins(discover_plugins())


def test_a_variant_plugin_named_like_another_must_be_the_same() -> None:
    def edit(e: dict[str, Any], cfg: dict[str, Any]) -> None:
        cfg["plugins"]["trending"] = {"half_life_hours": 24}
    _bad(edit, "variants.trending.plugins.trending differs from plugins.trending",
         "trending_trending")


def test_unknown_placement() -> None:
    _bad(lambda e, _: e.update(placements=["home", "chekout"]),
         "unknown placements ['chekout']", "product_page")


def test_start_after_stop() -> None:
    _bad(lambda e, _: e.update(stop=datetime(2026, 11, 1, tzinfo=UTC)),
         "start 2026-12-01T00:00:00+00:00 is not before stop")


def test_control_not_a_variant() -> None:
    _bad(lambda e, _: e.update(control="base"), "control 'base' is not one of its variants",
         "baseline, trending")


def test_fallback_not_among_the_variant_plugins() -> None:
    def edit(e: dict[str, Any], _: Any) -> None:
        e["variants"]["trending"]["fallback"] = "interest"
    _bad(edit, "variants.trending: fallback 'interest' is not among its plugins")


def test_reserved_and_bad_names() -> None:
    def edit(e: dict[str, Any], _: Any) -> None:
        e["variants"][HOLDOUT] = e["variants"].pop("trending")
        e["ramp"] = []
    _bad(edit, "variants", "'holdout' (reserved)")
    cfg = {"experiments": {"bad name": {"placements": ["home"], "variants": {
        "a": {"share": 0.5}, "b": {"share": 0.5}}}}}
    with pytest.raises(ConfigurationError, match=r"experiments\.bad name: experiment names"):
        load(cfg)


def test_schema_errors_name_the_key() -> None:
    _bad(lambda e, _: e.update(unit="device"), "unit: Must be one of: user, session")
    _bad(lambda e, _: e.update(colour="red"), "colour: Unknown field")
    _bad(lambda e, _: e.update(targeting={"audience": "vip"}), "targeting.audience")
    _bad(lambda e, _: e.update(holdout=1.0), "holdout")
    _bad(lambda e, _: e["variants"].pop("trending"), "variants")


def test_ramp_rules() -> None:
    def shrink(e: dict[str, Any], _: Any) -> None:
        e["ramp"][1]["shares"] = {"baseline": 0.05, "trending": 0.5}
    _bad(shrink, "ramp[1]", "baseline's share falls from 0.1 to 0.05", "only ramp up")

    def above(e: dict[str, Any], _: Any) -> None:
        e["ramp"][1]["shares"] = {"baseline": 0.5, "trending": 0.6}
    _bad(above, "ramp[1]", "trending's share 0.6 is above its declared share 0.5")

    def partial(e: dict[str, Any], _: Any) -> None:
        e["ramp"][0]["shares"] = {"trending": 0.1}
    _bad(partial, "ramp[0]", "must give the share of every variant")

    def order(e: dict[str, Any], _: Any) -> None:
        e["ramp"].reverse()
    _bad(order, "ramp[1]", "is not after the step before it")


def _second(**extra: Any) -> dict[str, Any]:
    return {"placements": ["home"], "variants": {"a": {"share": 0.5}, "b": {"share": 0.5}},
            **extra}


def test_layer_overlap_names_both() -> None:
    cfg = base()
    cfg["experiments"]["other"] = _second(layer="home", layer_range=[0.4, 1.0])
    with pytest.raises(ConfigurationError,
                       match=r"experiments\.home_blend and experiments\.other overlap in "
                             r"layer 'home'.*\[0, 0\.5\] and \[0\.4, 1\]"):
        load(cfg)
    cfg["experiments"]["other"]["layer_range"] = [0.5, 1.0]
    assert [e.name for e in load(cfg)] == ["home_blend", "other"]


def test_shared_placement_in_different_layers_names_both() -> None:
    cfg = base()
    cfg["experiments"]["other"] = _second()
    with pytest.raises(ConfigurationError,
                       match=r"experiments\.home_blend and experiments\.other both cover "
                             r"placement\(s\) home in different layers"):
        load(cfg)


def test_layer_members_share_their_unit() -> None:
    cfg = base()
    cfg["experiments"]["other"] = _second(layer="home", layer_range=[0.5, 1], unit="session")
    with pytest.raises(ConfigurationError, match="share layer 'home' but not their unit"):
        load(cfg)


def test_empty_layer_range() -> None:
    _bad(lambda e, _: e.update(layer_range=[0.5, 0.5]), "layer_range [0.5, 0.5] is empty")


def test_the_documented_example_loads() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "experiments.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    (e,) = load(tomllib.loads(block.group(1)))
    assert e.name == "home_blend" and len(e.ramp) == 2
    e.check_plugins(discover_plugins())


def test_a_running_experiment_may_only_ramp_up_and_stop() -> None:
    from recsdk.experiments.config import check_change, record

    (e,) = load(base())
    stored = record(e)
    during = datetime(2026, 12, 3, tzinfo=UTC)
    before = datetime(2026, 11, 1, tzinfo=UTC)

    def changed(edit: Any) -> ExperimentSettings:
        cfg = base()
        edit(cfg["experiments"]["home_blend"])
        return load(cfg)[0]

    check_change(stored, e, during)  # unchanged
    later = changed(lambda t: t.update(stop=datetime(2027, 2, 1, tzinfo=UTC)))
    check_change(stored, later, during)
    more = changed(lambda t: t["ramp"].append(
        {"at": datetime(2026, 12, 20, tzinfo=UTC), "shares": {"baseline": .5, "trending": .5}}))
    check_change(stored, more, during)
    resalted = changed(lambda t: t.update(salt="other"))
    check_change(stored, resalted, before)  # not started yet: anything goes
    with pytest.raises(ConfigurationError,
                       match=r"experiments\.home_blend: salt changed while the experiment "
                             r"runs"):
        check_change(stored, resalted, during)
    with pytest.raises(ConfigurationError, match="holdout, layer_range changed"):
        check_change(stored, changed(lambda t: t.update(holdout=0.1, layer_range=[0, .4])),
                     during)

    def edit_past(t: dict[str, Any]) -> None:
        t["ramp"][0]["shares"] = {"baseline": 0.2, "trending": 0.2}
    with pytest.raises(ConfigurationError, match="ramp steps already in effect"):
        check_change(stored, changed(edit_past), during)
    check_change(stored, changed(edit_past), before)


def test_a_variant_inherits_the_top_level_filters() -> None:
    cfg = base()
    cfg["plugins"]["filters"] = {"exclude_consumed": False}
    (e,) = load(cfg)
    (filters,) = [p for p in e.variant("trending").plugins if p.name == "filters"]
    assert filters.params == {"exclude_consumed": False}


def test_costs_allocation_and_pre_period_load_with_defaults() -> None:
    (e,) = load(base())
    assert (e.costs.margin, e.costs.compute_per_1000_requests, e.costs.licences_per_day) == (
        1.0, 0.0, 0.0)
    assert e.allocation.method == "fixed" and e.pre_period_days == 14.0
    cfg = base()
    t = cfg["experiments"]["home_blend"]
    t.update(ramp=[], pre_period_days=28,
             costs={"margin": 0.3, "compute_per_1000_requests": 0.02, "licences_per_day": 5},
             allocation={"method": "thompson", "metric": "click_rate", "every_hours": 6,
                         "min_share": 0.1, "warmup_units": 50, "seed": 3})
    (e,) = load(cfg)
    assert e.costs.margin == 0.3 and e.costs.licences_per_day == 5
    assert e.allocation.method == "thompson" and e.allocation.metric == "click_rate"
    assert (e.allocation.every_hours, e.allocation.min_share, e.allocation.seed) == (6, .1, 3)
    assert e.pre_period_days == 28


def test_bad_costs_and_allocations_are_named() -> None:
    _bad(lambda e, _: e.update(costs={"margin": 1.5}), "costs.margin")
    _bad(lambda e, _: e.update(costs={"licences_per_day": -1}), "costs.licences_per_day")
    _bad(lambda e, _: e.update(costs={"rent": 1}), "costs.rent: Unknown field")
    _bad(lambda e, _: e.update(allocation={"method": "epsilon"}), "allocation.method")
    _bad(lambda e, _: e.update(allocation={"metric": "revenue"}), "allocation.metric")
    _bad(lambda e, _: e.update(allocation={"every_hours": 0}), "allocation.every_hours")
    _bad(lambda e, _: e.update(allocation={"method": "thompson"}),
         "'thompson' sets the shares itself; remove the ramp steps")

    def floor(e: dict[str, Any], _: Any) -> None:
        e.update(ramp=[], allocation={"method": "thompson", "min_share": 0.5})
    _bad(floor, "min_share 0.5 times 2 variants leaves nothing")


def test_the_allocation_is_frozen_once_running_and_old_records_read_as_fixed() -> None:
    from recsdk.experiments.config import check_change, record

    cfg = base()
    cfg["experiments"]["home_blend"]["ramp"] = []
    (e,) = load(cfg)
    stored = record(e)
    during = datetime(2026, 12, 3, tzinfo=UTC)
    old = {k: v for k, v in stored.items() if k != "allocation"}  # stored before allocations
    check_change(old, e, during)
    cfg["experiments"]["home_blend"]["allocation"] = {"method": "thompson"}
    with pytest.raises(ConfigurationError, match="allocation changed while the experiment"):
        check_change(stored, load(cfg)[0], during)
