"""The configurations shipped in config/ load and build every plugin they name: a
parameter renamed in a plugin must not leave a documented pipeline broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsdk.config import load_settings
from recsdk.plugin_manager import PluginManager

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "config").glob("*.toml"))


def test_the_repository_ships_configurations() -> None:
    assert {p.name for p in CONFIGS} >= {"ml100k-best.toml", "shop-best.toml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_shipped_configuration_enables_every_plugin_it_names(path: Path) -> None:
    settings = load_settings(path, environ={})
    manager = PluginManager()
    try:
        manager.enable(settings.plugins)
        assert set(manager.names()) == {p.name for p in settings.plugins}
    finally:
        manager.close()
