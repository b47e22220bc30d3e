"""Placements are configured names; anything else is refused with the known ones listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsdk.config import BUILTIN_PLACEMENTS, load_settings
from recsdk.errors import ConfigurationError, ValidationFailed
from tests.core.shop import fill

REPO = Path(__file__).resolve().parents[2]
POP = {"popularity": {}}


def test_built_in_and_configured_placements_are_known():
    settings = load_settings({"placements": {"product_page": {"k": 6}, "cart": {}}},
                             environ={})
    assert settings.known_placements == ("cart", "default", "home", "product_page", "similar")
    for name in settings.known_placements:
        settings.check_placement(name)
    assert set(BUILTIN_PLACEMENTS) <= set(load_settings(environ={}).known_placements)


def test_the_demo_configuration_knows_its_placement():
    settings = load_settings(REPO / "config" / "demo.toml", environ={})
    settings.check_placement("product_page")


@pytest.mark.parametrize("name", ["checkout", "", "Default", "default ", "x" * 65])
def test_an_unknown_placement_is_refused_naming_the_known_ones(name: str):
    settings = load_settings({"placements": {"cart": {}}}, environ={})
    with pytest.raises(ValidationFailed) as caught:
        settings.check_placement(name)
    (message,) = caught.value.messages["placement"]
    assert f"Unknown placement {name!r}" in message
    assert "known placements: cart, default, home, similar" in message
    assert "[placements.NAME]" in message


@pytest.mark.parametrize("name", ["", "p" * 65])
def test_a_configured_placement_name_must_fit_the_api(name: str):
    with pytest.raises(ConfigurationError, match="placements"):
        load_settings({"placements": {name: {"k": 3}}}, environ={})


def test_recommend_refuses_an_unknown_placement(make_sdk):
    sdk = make_sdk({"plugins": POP, "placements": {"cart": {"k": 2}}})
    fill(sdk)
    sdk.fit()
    assert len(sdk.recommend("u1", placement="cart").items) == 2
    try:
        sdk.recommend("u1", placement="checkout")
    except ValidationFailed as exc:
        assert "known placements: cart, default, home, similar" in str(exc)
    else:
        raise AssertionError("an unknown placement was served")
    sdk.request_log.flush()
    assert sdk.store.count_served()["requests"] == 1


def test_similar_items_refuses_an_unknown_placement(make_sdk):
    sdk = make_sdk({"plugins": POP})
    fill(sdk)
    sdk.fit()
    assert sdk.similar_items("i1", 3).placement == "similar"
    try:
        sdk.similar_items("i1", 3, placement="no-such-shelf")
    except ValidationFailed as exc:
        assert "Unknown placement 'no-such-shelf'" in str(exc)
    else:
        raise AssertionError("an unknown placement was served")
