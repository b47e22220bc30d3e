"""``recsdk recommend`` and ``recsdk similar`` against a trained SQLite shop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from recsdk import Plugin, hookimpl
from recsdk import plugin_manager as plugin_manager_module
from recsdk.plugin_manager import AvailablePlugin, discover_plugins
from recsdk.storage.database import make_engine
from recsdk.storage.models import RecommendationRequest
from tests.cli.conftest import Invoke, Shop, assert_user_error

K = 5


def expected_popular(shop: Shop, exclude: set[str] = frozenset(), k: int = K) -> list[str]:
    """Available items by distinct users, ties by id: what popularity plus filters serve."""
    counts = shop.distinct_users()
    ranked = sorted(shop.available() - exclude, key=lambda i: (-counts[i], i))
    return ranked[:k]


def served_requests(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(RecommendationRequest)).scalar()
    finally:
        engine.dispose()


def buyer(shop: Shop) -> str:
    """A user who bought something the popularity ranking would otherwise show."""
    top = set(expected_popular(shop))
    return next(e["user_id"] for e in shop.events
                if e["type"] == "purchase" and e["item_id"] in top)


# ---- recommend -------------------------------------------------------------------------


def test_recommend_serves_popular_items_minus_what_the_user_bought(
    invoke: Invoke, trained_shop: Shop,
) -> None:
    user = buyer(trained_shop)

    result = invoke("recommend", user, "-k", str(K), "--json", database_url=trained_shop.url)

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [i["item_id"] for i in data["items"]] == expected_popular(
        trained_shop, trained_shop.purchased_by(user))
    assert [i["position"] for i in data["items"]] == list(range(1, K + 1))
    assert data["plugins"] == ["popularity"]
    assert data["degraded"] is False and data["request_id"]
    titles = {i["id"]: i["title"] or None for i in trained_shop.items}
    assert all(i["title"] == titles[i["item_id"]] for i in data["items"])
    assert result.stderr == ""


def test_recommend_prints_a_table_with_titles(invoke: Invoke, trained_shop: Shop) -> None:
    user = buyer(trained_shop)

    result = invoke("recommend", user, "-k", str(K), database_url=trained_shop.url)

    assert result.exit_code == 0, result.output
    header, columns, *rows = result.stdout.splitlines()
    assert "degraded no" in header and "plugins popularity" in header
    assert columns.split() == ["#", "item", "score", "source", "title"]
    expected = expected_popular(trained_shop, trained_shop.purchased_by(user))
    titles = {i["id"]: i["title"] for i in trained_shop.items}
    assert len(rows) == K
    for position, (row, item) in enumerate(zip(rows, expected, strict=True), start=1):
        assert row.split()[:2] == [str(position), item]
        assert row.split()[3] == "popularity"  # the plugin that placed it
        assert row.endswith(titles[item]) if titles[item] else len(row.split()) == 4


def test_an_unknown_user_gets_the_popularity_fallback(invoke: Invoke,
                                                      trained_shop: Shop) -> None:
    result = invoke("recommend", "never-seen", "-k", str(K), "--json",
                    database_url=trained_shop.url)

    assert result.exit_code == 0, result.output
    assert [i["item_id"] for i in json.loads(result.stdout)["items"]] == (
        expected_popular(trained_shop))
    assert "'never-seen' has no recorded activity" in result.stderr


def test_recommend_does_not_log_served_requests(invoke: Invoke, trained_shop: Shop) -> None:
    before = served_requests(trained_shop.url)

    assert invoke("recommend", "u01", database_url=trained_shop.url).exit_code == 0

    assert served_requests(trained_shop.url) == before


def test_a_placement_brings_its_own_k(invoke: Invoke, trained_shop: Shop,
                                      tmp_path: Path) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text("[pipeline]\nk = 7\n\n[placements.cart]\nk = 2\n")

    def served(*args: str) -> int:
        result = invoke("--config", str(config), "recommend", "never-seen", *args, "--json",
                        database_url=trained_shop.url)
        assert result.exit_code == 0, result.output
        return len(json.loads(result.stdout)["items"])

    assert served() == 7
    assert served("--placement", "cart") == 2
    assert served("--placement", "cart", "-k", "4") == 4


def test_a_session_id_is_accepted(invoke: Invoke, trained_shop: Shop) -> None:
    result = invoke("recommend", "u01", "--session", "s-1", "--json",
                    database_url=trained_shop.url)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["placement"] == "default"


@pytest.mark.parametrize("k", ["0", "-3", "1001", "ten"])
def test_a_bad_k_is_a_usage_error(invoke: Invoke, trained_shop: Shop, k: str) -> None:
    for command in ("recommend", "similar"):
        result = invoke(command, "u01", "-k", k, database_url=trained_shop.url)
        assert_user_error(result, "Invalid value for '-k'", exit_code=2)


def test_recommend_before_train_says_to_train(invoke: Invoke, shop: Shop) -> None:
    result = invoke("recommend", "u01", database_url=shop.url)

    assert_user_error(result, "no trained model", "recsdk train")


def test_recommend_with_an_unknown_plugin_fails_clearly(invoke: Invoke,
                                                        trained_shop: Shop) -> None:
    result = invoke("recommend", "u01", database_url=trained_shop.url,
                    env={"RECSDK_PLUGINS": "popularity,nosuch"})

    assert_user_error(result, "unknown plugin 'nosuch'", "available:")


class _BrokenScorer(Plugin):
    @hookimpl
    def recsdk_score(self) -> None:
        raise RuntimeError("model file corrupt")


def test_a_failing_plugin_shows_as_degraded_with_its_failure(
    invoke: Invoke, trained_shop: Shop, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def discover_with_a_broken_scorer() -> dict[str, AvailablePlugin]:
        found = discover_plugins()
        found["broken"] = AvailablePlugin("broken", "tests:_BrokenScorer", None, None,
                                          lambda: _BrokenScorer)
        return found

    monkeypatch.setattr(plugin_manager_module, "discover_plugins",
                        discover_with_a_broken_scorer)
    env = {"RECSDK_PLUGINS": "popularity,broken"}

    result = invoke("recommend", "never-seen", "-k", str(K), database_url=trained_shop.url,
                    env=env)

    assert result.exit_code == 0, result.output
    header, failure, _columns, *rows = result.stdout.splitlines()
    assert "degraded yes" in header
    assert failure == "  failure: broken.score: RuntimeError: model file corrupt"
    assert [row.split()[1] for row in rows] == expected_popular(trained_shop)


# ---- similar ---------------------------------------------------------------------------


def test_similar_excludes_the_item_and_fills_with_popular_ones(
    invoke: Invoke, trained_shop: Shop,
) -> None:
    item = expected_popular(trained_shop, k=1)[0]

    result = invoke("similar", item, "-k", str(K), "--json", database_url=trained_shop.url)

    assert result.exit_code == 0, result.output
    served = [i["item_id"] for i in json.loads(result.stdout)["items"]]
    assert served == expected_popular(trained_shop, {item})


def test_similar_items_share_the_category_with_category_popularity(
    invoke: Invoke, shop: Shop,
) -> None:
    env = {"RECSDK_PLUGINS": "popularity,category_popularity"}
    assert invoke("train", database_url=shop.url, env=env).exit_code == 0
    item = "i01"
    category = shop.category_of(item)
    same = {i["id"] for i in shop.items if i["category_id"] == category}

    result = invoke("similar", item, "-k", str(K), "--json", database_url=shop.url, env=env)

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    counts = shop.distinct_users()
    expected = sorted((same & shop.available()) - {item}, key=lambda i: (-counts[i], i))[:K]
    assert [i["item_id"] for i in data["items"]] == expected
    assert data["plugins"] == ["category_popularity"]


def test_similar_to_an_unknown_item_warns(invoke: Invoke, trained_shop: Shop) -> None:
    result = invoke("similar", "no-such-sku", "-k", "3", database_url=trained_shop.url)

    assert result.exit_code == 0, result.output
    assert "'no-such-sku' is not in the catalogue" in result.stderr
    assert [row.split()[1] for row in result.stdout.splitlines()[2:]] == (
        expected_popular(trained_shop, k=3))


def test_similar_before_train_says_to_train(invoke: Invoke, shop: Shop) -> None:
    assert_user_error(invoke("similar", "i01", database_url=shop.url),
                      "no trained model", "recsdk train")
