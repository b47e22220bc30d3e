"""``recsdk plugins``: installed and enabled plugins, their settings and hooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recsdk import Plugin, __version__, hookimpl
from recsdk import plugin_manager as plugin_manager_module
from recsdk.cli.plugins import declared_hooks
from recsdk.plugin_manager import AvailablePlugin, discover_plugins
from tests.cli.conftest import Invoke, assert_user_error


def listing(invoke: Invoke, url: str, *args: str, **kwargs: Any) -> dict[str, dict[str, Any]]:
    result = invoke(*args, "plugins", "--json", database_url=url, **kwargs)
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_the_default_configuration_enables_popularity_and_filters(
    invoke: Invoke, sqlite_url: str,
) -> None:
    rows = listing(invoke, sqlite_url)

    assert [n for n, r in rows.items() if r["enabled"]] == ["popularity", "filters"]
    assert set(rows) == set(discover_plugins())
    for name, row in rows.items():
        installed = discover_plugins()[name]
        assert row["entry_point"] == name
        assert row["target"] == installed.target
        assert (row["distribution"], row["version"]) == ("recsdk", __version__)
    assert "recsdk_score" in rows["popularity"]["hooks"]
    assert rows["filters"]["hooks"] == ["recsdk_fit", "recsdk_load_state", "recsdk_rerank",
                                        "recsdk_save_state"]
    assert rows["trending"]["enabled"] is False and rows["trending"]["weight"] is None


def test_hooks_read_from_the_class_match_those_pluggy_registers(
    invoke: Invoke, sqlite_url: str,
) -> None:
    idle = listing(invoke, sqlite_url)
    enabled = listing(invoke, sqlite_url,
                      env={"RECSDK_PLUGINS": "popularity,trending,category_popularity"})

    for name in ("trending", "category_popularity"):
        assert idle[name]["enabled"] is False and enabled[name]["enabled"] is True
        assert idle[name]["hooks"] == enabled[name]["hooks"]
        assert idle[name]["hooks"]  # the comparison is not between two empty lists


def test_configured_weight_timeout_and_params_are_shown(
    invoke: Invoke, sqlite_url: str, tmp_path: Path,
) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text('[plugins.popularity]\ncount = "events"\nweight = 0.5\ntimeout_ms = 80\n'
                      '\n[plugins.recent]\nplugin = "popularity"\nwindow_days = 7\n')

    rows = listing(invoke, sqlite_url, "--config", str(config))

    popularity, recent = rows["popularity"], rows["recent"]
    assert (popularity["weight"], popularity["timeout_ms"]) == (0.5, 80.0)
    assert popularity["params"] == {"count": "events", "window_days": None}
    assert recent["entry_point"] == "popularity" and recent["weight"] == 1.0
    assert recent["params"] == {"count": "users", "window_days": 7.0}
    assert recent["target"] == popularity["target"]


def test_the_text_listing_shows_each_plugin(invoke: Invoke, sqlite_url: str) -> None:
    result = invoke("plugins", database_url=sqlite_url)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "popularity  (enabled, weight 1)" in out
    assert "trending  (installed, not enabled)" in out
    assert f"  entry point   filters = {discover_plugins()['filters'].target}" in out
    assert f"  distribution  recsdk {__version__}" in out
    assert ("  hooks         recsdk_fit, recsdk_load_state, recsdk_rerank, recsdk_save_state"
            in out)


def test_an_unknown_plugin_lists_the_available_ones(invoke: Invoke, sqlite_url: str) -> None:
    result = invoke("plugins", database_url=sqlite_url,
                    env={"RECSDK_PLUGINS": "popularity,populartiy"})

    assert_user_error(result, "unknown plugin 'populartiy'", *sorted(discover_plugins()))


def test_a_bad_parameter_lists_the_allowed_ones(invoke: Invoke, sqlite_url: str,
                                                tmp_path: Path) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text("[plugins.trending]\nhalf_life_hours = -1\nextra = 1\n")

    result = invoke("--config", str(config), "plugins", database_url=sqlite_url)

    assert_user_error(result, "plugins.trending", "half_life_hours", "extra",
                      "allowed parameters: half_life_hours")


def test_a_non_numeric_weight_is_refused(invoke: Invoke, sqlite_url: str,
                                         tmp_path: Path) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text('[plugins.popularity]\nweight = "heavy"\n')

    result = invoke("--config", str(config), "plugins", database_url=sqlite_url)

    assert_user_error(result, "plugins.popularity", "weight")


def test_third_party_installs_are_listed_even_when_broken(
    invoke: Invoke, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def discover_with_third_party_installs() -> dict[str, AvailablePlugin]:
        found = discover_plugins()

        def broken() -> type:
            raise ModuleNotFoundError("No module named 'torch_geometric'")

        found["gnn"] = AvailablePlugin("gnn", "shop_gnn:GraphModel", "shop-gnn", "2.1", broken)
        found["recent"] = AvailablePlugin("recent", "shop_recent:Recent", "shop-recent", "1.0",
                                          lambda: _Recent)
        return found

    monkeypatch.setattr(plugin_manager_module, "discover_plugins",
                        discover_with_third_party_installs)

    rows = listing(invoke, sqlite_url)

    assert rows["gnn"]["error"] == ("cannot be loaded: ModuleNotFoundError: "
                                    "No module named 'torch_geometric'")
    assert (rows["gnn"]["distribution"], rows["gnn"]["version"]) == ("shop-gnn", "2.1")
    assert rows["recent"]["version"] == "9.9"  # the class's own version wins
    assert rows["recent"]["hooks"] == ["recsdk_fit", "recsdk_score"]
    assert rows["popularity"]["enabled"] is True  # the others are still listed


class _Recent(Plugin):
    version = "9.9"

    @hookimpl(specname="recsdk_score")
    def score_by_recency(self) -> None:
        """An implementation registered under another name than the hook's."""

    @hookimpl
    def recsdk_fit(self) -> None:
        """Trains nothing."""

    def recsdk_rerank(self) -> None:
        """Not marked, so not a hook."""


def test_declared_hooks_follow_the_markers_and_specname() -> None:
    assert declared_hooks(_Recent) == ["recsdk_fit", "recsdk_score"]
    assert declared_hooks(object) == []
