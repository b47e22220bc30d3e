"""``recsdk models`` and ``recsdk worker``: runs listed, rolled back, pruned, retrained."""

from __future__ import annotations

import json

from recsdk import RecSDK
from tests.cli.conftest import Invoke, Shop, assert_user_error


def _train(invoke: Invoke, shop: Shop) -> str:
    result = invoke("train", "--json", database_url=shop.url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["run_id"]


def test_models_list_shows_runs_and_the_active_one(invoke: Invoke, shop: Shop) -> None:
    assert "no model runs yet" in invoke("models", "list", database_url=shop.url).stdout
    first, second = _train(invoke, shop), _train(invoke, shop)
    listed = json.loads(invoke("models", "list", "--json", database_url=shop.url).stdout)
    assert [r["id"] for r in listed] == [second, first]
    assert [r["active"] for r in listed] == [True, False]
    assert all(r["status"] == "ready" and r["stats"]["users"] > 0 for r in listed)
    table = invoke("models", "list", database_url=shop.url).stdout.splitlines()
    assert table[1].startswith(f"* {second}")


def test_models_activate_rolls_back(invoke: Invoke, shop: Shop) -> None:
    first, _ = _train(invoke, shop), _train(invoke, shop)
    result = invoke("models", "activate", first[:10], database_url=shop.url)
    assert result.exit_code == 0, result.output
    assert f"activated run {first}" in result.stdout
    with RecSDK({"database_url": shop.url}, environ={}) as sdk:
        assert sdk.model_run == first
        assert sdk.recommend("u01", k=3).model_run == first
    assert_user_error(invoke("models", "activate", "feedbeef", database_url=shop.url),
                      "no model run 'feedbeef'")


def test_models_prune_and_train_keep_only_recent_runs(invoke: Invoke, shop: Shop) -> None:
    env = {"RECSDK_CONFIG": ""}
    runs = [_train(invoke, shop) for _ in range(3)]
    result = invoke("models", "prune", "--keep", "1", database_url=shop.url, env=env)
    assert result.exit_code == 0, result.output
    assert "deleted 2 run(s)" in result.stdout
    listed = json.loads(invoke("models", "list", "--json", database_url=shop.url).stdout)
    assert [r["id"] for r in listed] == [runs[-1]]


def test_worker_once_trains_and_activates(invoke: Invoke, shop: Shop) -> None:
    result = invoke("worker", "--once", database_url=shop.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("trained run ")
    run_id = result.stdout.split()[2]
    with RecSDK({"database_url": shop.url}, environ={}) as sdk:
        assert sdk.model_run == run_id
