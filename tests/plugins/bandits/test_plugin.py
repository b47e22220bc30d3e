"""The bandit plugins end to end through RecSDK: serve with propensities, log the
impressions, learn from feedback, share state between instances, save it with the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from recsdk_plugins.bandits.reranker import BanditReranker
from recsdk_plugins.bandits.thompson import ThompsonBandit
from sqlalchemy import text

from recsdk import RecSDK
from recsdk.config import load_settings
from recsdk.errors import ConfigurationError, PluginError
from recsdk.types import Feedback, PluginContext, Ranking, RecommendationRequest
from tests.core.shop import fill
from tests.postgres import fresh_postgres_database

K = 5


def config(url: str, kind: str, redis_url: str | None = None, **params: Any
           ) -> dict[str, Any]:
    bandit = {"sync_s": 0.0, "n_draws": 64, "pool": 12, **params}
    if kind == "linucb":
        bandit.setdefault("epsilon", 0.3)
    return {"database_url": url, "redis_url": redis_url, "seed": 3,
            "cache": {"result_ttl_s": 60},
            "plugins": {"popularity": {}, "interest": {}, "filters": {}, kind: bandit}}


def open_sdk(made: list[RecSDK], cfg: dict[str, Any]) -> RecSDK:
    sdk = RecSDK(cfg, environ={})
    made.append(sdk)
    return sdk


def bandit(sdk: RecSDK, kind: str) -> BanditReranker:
    plugin = sdk.plugins.get(kind)
    assert isinstance(plugin, BanditReranker)
    return plugin


def serve(sdk: RecSDK, user: str = "u1") -> Any:
    result = sdk.recommend(user, k=K)
    sdk.served.join()
    sdk.request_log.flush()
    return result


@pytest.mark.parametrize("kind", ["linucb", "thompson"])
def test_serve_log_propensities_learn_from_feedback(sdks, tmp_path, kind) -> None:
    sdk = open_sdk(sdks, config(f"sqlite:///{tmp_path / 'shop.db'}", kind))
    fill(sdk)
    sdk.fit()
    plugin = bandit(sdk, kind)
    before = plugin.shared.stats()

    result = serve(sdk)

    props = [i.propensity for i in result.items]
    assert len(result.items) == K
    assert all(p is not None and 0 < p <= 1 for p in props)
    assert min(props) < 1  # it explores
    with sdk.store.engine.connect() as conn:
        logged = conn.execute(text(
            "SELECT item_id, propensity FROM impressions WHERE request_id = :r "
            "ORDER BY position"), {"r": result.request_id}).all()
    assert [(i.item_id, pytest.approx(i.propensity)) for i in result.items] == \
        [(i, p) for i, p in logged]
    pulled = plugin.shared.stats()
    assert pulled.pulls == pytest.approx(before.pulls + sum(1 / p for p in range(1, K + 1)))

    sdk.log_feedback([{"request_id": result.request_id, "item_id": result.items[0].item_id,
                       "type": "purchase"},
                      {"request_id": result.request_id, "item_id": result.items[1].item_id,
                       "type": "view"}])  # not a reward type: ignored

    learned = plugin.shared.stats()
    assert learned.reward == pytest.approx(5.0)  # the default purchase reward
    assert np.abs(learned.rx - before.rx).sum() > 0
    assert plugin.stats_["rewards"] == 1 and plugin.stats_["pulls"] == K

    again = serve(sdk)  # never a cached answer: each list is a fresh draw with its pull
    assert again.request_id != result.request_id
    assert plugin.stats_["pulls"] == 2 * K


def test_unknown_requests_and_unshown_items_are_counted_and_dropped(sdks, tmp_path) -> None:
    sdk = open_sdk(sdks, config(f"sqlite:///{tmp_path / 'shop.db'}", "thompson"))
    fill(sdk)
    sdk.fit()
    plugin = bandit(sdk, "thompson")
    result = serve(sdk)
    shown = set(result.item_ids)
    unshown = next(f"i{i}" for i in range(20) if f"i{i}" not in shown)
    now = datetime.now(UTC)
    before = plugin.shared.stats().reward

    sdk.plugins.call_each("recsdk_log_feedback", feedback=[
        Feedback("no-such-request", "i1", "click", now),
        Feedback(result.request_id, unshown, "click", now),
        Feedback(result.request_id, result.item_ids[0], "click", now),
    ])

    assert plugin.stats_["dropped_unknown_request"] == 1
    assert plugin.stats_["dropped_not_shown"] == 1
    assert plugin.stats_["rewards"] == 1
    assert plugin.shared.stats().reward == before + 1.0


def shared_setup(kind: str, backend: str, tmp_path, redis_url: str) -> Iterator[
        dict[str, Any]]:
    if backend == "postgres":
        with fresh_postgres_database("recsdk_bandits") as url:
            yield config(url, kind)
    elif backend == "redis":
        yield config(f"sqlite:///{tmp_path / 'shop.db'}", kind, redis_url=redis_url)
    else:
        yield config(f"sqlite:///{tmp_path / 'shop.db'}", kind)


@pytest.mark.parametrize("backend", ["redis", "sqlite",
                                     pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_instances_share_pulls_rewards_and_statistics(sdks, tmp_path, redis_url,
                                                          backend) -> None:
    for cfg in shared_setup("linucb", backend, tmp_path, redis_url):
        first = open_sdk(sdks, cfg)
        fill(first)
        first.fit()
        second = open_sdk(sdks, cfg)  # another serving process: loads the active run
        a, b = bandit(first, "linucb"), bandit(second, "linucb")
        expected = "RedisBackend" if backend == "redis" else "DatabaseBackend"
        assert type(a.backend).__name__ == expected

        result = serve(first)
        # the reward reaches the other process, which reads the pull first wrote
        second.log_feedback([{"request_id": result.request_id,
                              "item_id": result.item_ids[0], "type": "click"}])
        assert b.stats_["rewards"] == 1
        for plugin in (a, b):
            plugin.shared.sync()
        assert a.shared.stats().reward == b.shared.stats().reward == 1.0
        np.testing.assert_allclose(a.shared.stats().to_vector(),
                                   b.shared.stats().to_vector())
        assert a.shared.stats().pulls > 0


def test_state_is_saved_with_the_run_and_seeds_a_fresh_store(sdks, tmp_path,
                                                             redis_url) -> None:
    cfg = config(f"sqlite:///{tmp_path / 'shop.db'}", "thompson", redis_url=redis_url)
    sdk = open_sdk(sdks, cfg)
    fill(sdk)
    sdk.fit()
    result = serve(sdk)
    sdk.log_feedback([{"request_id": result.request_id, "item_id": result.item_ids[0],
                       "type": "click"}])
    run = sdk.fit().run_id  # the new run saves what the bandit learned so far
    learned = bandit(sdk, "thompson").shared.stats().to_vector()
    plugin = bandit(sdk, "thompson")
    plugin.backend.clear(plugin.namespace)  # a new Redis: the shared state is gone

    restarted = open_sdk(sdks, cfg)

    assert restarted.model_run == run
    np.testing.assert_allclose(bandit(restarted, "thompson").shared.stats().to_vector(),
                               learned)
    third = open_sdk(sdks, cfg)  # the state was started: it is not added again
    np.testing.assert_allclose(bandit(third, "thompson").shared.stats().to_vector(),
                               learned)


def test_same_seed_and_request_give_the_same_list() -> None:
    def rerank(seed: int, request_id: str = "r-1") -> Ranking:
        plugin = ThompsonBandit(backend="memory", sync_s=0.0, n_draws=32)
        plugin.recsdk_configure(PluginContext(settings=load_settings({}, environ={}),
                                              seed=seed))
        ranking = Ranking([f"i{i}" for i in range(15)], [15.0 - i for i in range(15)])
        request = RecommendationRequest(user_id="u1", k=K, request_id=request_id)
        out = plugin.recsdk_rerank(request, ranking)
        assert out is not None
        return out

    a, b = rerank(1), rerank(1)
    assert (a.item_ids, a.propensities) == (b.item_ids, b.propensities)
    others = [rerank(2), rerank(1, "r-2")]
    assert all((a.item_ids, a.propensities) != (o.item_ids, o.propensities)
               for o in others)


@pytest.mark.parametrize(("params", "message"), [
    ({"rewards": {"click": 0.0}}, "non-zero reward"),
    ({"pool": 0}, "pool"),
    ({"epsilon": 2.0}, "epsilon"),
    ({"epsilon_decay_pulls": -5}, "epsilon_decay_pulls"),
    ({"backend": "mongo"}, "backend"),
    ({"typo": 1}, "typo"),
])
def test_bad_parameters_are_refused_with_the_name(sdks, tmp_path, params, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_sdk(sdks, config(f"sqlite:///{tmp_path / 'shop.db'}", "linucb", **params))


def test_backend_redis_without_a_redis_url_is_refused(sdks, tmp_path) -> None:
    with pytest.raises(PluginError, match="backend = 'redis' needs redis_url"):
        open_sdk(sdks, config(f"sqlite:///{tmp_path / 'shop.db'}", "thompson",
                              backend="redis"))


def test_a_run_saved_with_other_context_features_is_refused() -> None:
    plugin = ThompsonBandit(backend="memory", sync_s=0.0)
    plugin.recsdk_configure(PluginContext(settings=load_settings({}, environ={})))
    state = {"features": np.asarray(["bias", "something_else"]),
             "popularity": np.zeros(3), "statistics": np.zeros(8)}
    with pytest.raises(ValueError, match=r"context features .* differ .* retrain"):
        plugin.recsdk_load_state(state, None)


def test_a_list_longer_than_the_pool_is_still_full() -> None:
    plugin = ThompsonBandit(backend="memory", sync_s=0.0, pool=3, n_draws=8)
    plugin.recsdk_configure(PluginContext(settings=load_settings({}, environ={})))
    ranking = Ranking([f"i{i}" for i in range(20)], [20.0 - i for i in range(20)])
    out = plugin.recsdk_rerank(RecommendationRequest(user_id="u", k=8), ranking)
    assert out is not None and len(out) == 8 and len(set(out.item_ids)) == 8
    assert set(out.item_ids) <= {f"i{i}" for i in range(8)}  # the best k of the ranking
    assert out.propensities is not None and all(0 < p <= 1 for p in out.propensities)


def test_another_process_sees_a_reward_within_the_sync_interval(sdks, tmp_path) -> None:
    cfg = config(f"sqlite:///{tmp_path / 'shop.db'}", "linucb", sync_s=0.1)
    first = open_sdk(sdks, cfg)
    fill(first)
    first.fit()
    second = open_sdk(sdks, cfg)
    result = serve(first)
    second.log_feedback([{"request_id": result.request_id, "item_id": result.item_ids[0],
                          "type": "add_to_cart"}])
    seen = bandit(first, "linucb").shared
    deadline = time.monotonic() + 5.0
    while seen.stats().reward == 0.0 and time.monotonic() < deadline:  # no manual sync
        time.sleep(0.05)
    assert seen.stats().reward == 2.0  # the default add_to_cart reward
