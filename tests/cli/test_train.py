"""``recsdk train``: fits what is stored, reports it, refuses bad configurations."""

from __future__ import annotations

import json
from pathlib import Path

from recsdk import RecSDK
from recsdk.cli.train import format_bytes
from tests.cli.conftest import Invoke, Shop, assert_user_error


def test_train_reports_what_it_fitted_on(invoke: Invoke, shop: Shop) -> None:
    result = invoke("train", "--json", database_url=shop.url)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["users"] == len({e["user_id"] for e in shop.events})
    assert report["items"] == len({i["id"] for i in shop.items}
                                  | {e["item_id"] for e in shop.events})
    assert report["interactions"] == len(shop.events)
    assert set(report["plugins"]) == {"popularity", "filters"}  # filters: who bought what
    assert report["plugins"]["popularity"] > 0
    assert report["seconds"] >= 0
    with RecSDK({"database_url": shop.url}, environ={}) as sdk:  # the run was stored
        assert sdk.trained and sdk.model_run == report["run_id"]


def test_train_prints_a_readable_summary(invoke: Invoke, shop: Shop) -> None:
    result = invoke("train", database_url=shop.url)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"{len(shop.events)} interactions" in lines[0]
    for plugin in ("popularity", "filters"):
        assert any(line.split()[0] == plugin and line.endswith("B") for line in lines[2:])


def test_train_with_a_toml_file_uses_its_plugins(invoke: Invoke, shop: Shop,
                                                 tmp_path: Path) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text('[plugins.popularity]\ncount = "events"\n\n'
                      "[plugins.trending]\nhalf_life_hours = 12\nweight = 0.5\n")

    result = invoke("--config", str(config), "train", "--json", database_url=shop.url)

    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["plugins"]) == {"popularity", "trending", "filters"}


def test_train_without_events_says_what_to_do(invoke: Invoke, sqlite_url: str) -> None:
    assert_user_error(invoke("train", database_url=sqlite_url), "no events", "recsdk import")


def test_an_unknown_plugin_is_named_with_the_available_ones(invoke: Invoke, shop: Shop) -> None:
    result = invoke("train", database_url=shop.url,
                    env={"RECSDK_PLUGINS": "popularity,nosuch"})

    assert_user_error(result, "unknown plugin 'nosuch'", "available:", "trending")


def test_a_bad_plugin_parameter_lists_the_allowed_ones(invoke: Invoke, shop: Shop,
                                                       tmp_path: Path) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text('[plugins.popularity]\ncount = "clicks"\n')

    result = invoke("--config", str(config), "train", database_url=shop.url)

    assert_user_error(result, "plugins.popularity", "count", "allowed parameters: count, "
                      "window_days")


def test_a_toml_syntax_error_is_reported(invoke: Invoke, shop: Shop, tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[pipeline\nk = 3\n")

    result = invoke("--config", str(config), "train", database_url=shop.url)

    assert_user_error(result, str(config), "is not valid TOML")


def test_an_unknown_setting_is_named(invoke: Invoke, shop: Shop, tmp_path: Path) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text("[pipeline]\nkk = 3\n")

    result = invoke("--config", str(config), "train", database_url=shop.url)

    assert_user_error(result, "invalid settings", "pipeline.kk")


def test_the_config_file_can_come_from_the_environment(invoke: Invoke, shop: Shop,
                                                       tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"

    result = invoke("train", database_url=shop.url, env={"RECSDK_CONFIG": str(missing)})

    assert_user_error(result, str(missing), "does not exist")


def test_format_bytes_picks_a_readable_unit() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 1024**2) == "3.0 MiB"


def test_a_plugin_set_without_the_fallback_is_refused(invoke: Invoke, shop: Shop) -> None:
    result = invoke("train", database_url=shop.url, env={"RECSDK_PLUGINS": "trending"})

    assert_user_error(result, "pipeline.fallback names 'popularity'", "enabled: trending")
