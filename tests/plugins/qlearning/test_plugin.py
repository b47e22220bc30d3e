"""qlearning as a plugin: trained against the simulator, reranking, state, seeds, errors."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from recsdk_plugins.qlearning import QLearning
from recsdk_plugins.qlearning.features import N_ACTIONS, N_STATES

from recsdk import RecSDK
from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS, Settings
from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.registry import ModelRegistry
from recsdk.types import PluginContext, Ranking, RecommendationRequest, UserHistory

#: small and fast: a few hundred simulated users
FAST = {"episodes": 150, "pool": 40}


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(3_000, seed=2, n_users=60, n_items=72, tree=(2, 2, 3))


@pytest.fixture(scope="module")
def dataset(shop: SyntheticShop) -> InteractionDataset:
    catalog = Catalog.from_frames(shop.items, shop.categories)
    events = shop.events.astype({"user_id": str, "item_id": str, "type": str})
    return InteractionDataset.from_frame(events, catalog=catalog,
                                         event_weights=DEFAULT_EVENT_WEIGHTS)


def context(seed: int = 3) -> PluginContext:
    return PluginContext(settings=Settings(seed=seed, device="cpu"), seed=seed,
                         device_setting="cpu")


def fitted(dataset: InteractionDataset, seed: int = 3, **params: Any) -> QLearning:
    plugin = QLearning.from_config({**FAST, **params}, "qlearning")
    plugin.recsdk_configure(context=context(seed))
    plugin.recsdk_fit(dataset=dataset, context=context(seed))
    return plugin


@pytest.fixture(scope="module")
def tabular(dataset: InteractionDataset) -> QLearning:
    return fitted(dataset)


def request_for(shop: SyntheticShop, user: str, k: int = 5,
                session: str | None = "s-now") -> RecommendationRequest:
    events = shop.events[shop.events.user_id.astype(str) == user]
    history = UserHistory([str(i) for i in events.item_id], [str(t) for t in events.type],
                          [0.0] * len(events), session_ids=["s-old"] * len(events))
    return RecommendationRequest(user_id=user, k=k, history=history, session_id=session)


def upstream(dataset: InteractionDataset, n: int = 30) -> Ranking:
    counts = np.asarray(dataset.matrix.sum(axis=0)).ravel()
    order = np.argsort(-counts, kind="stable")[:n]
    return Ranking([str(dataset.item_ids[i]) for i in order], counts[order].tolist())


def test_training_fills_the_table_and_reports(tabular: QLearning) -> None:
    table = tabular.learner_.table
    assert table.q.shape == (N_STATES, N_ACTIONS)
    assert (table.mass > 0).sum() > N_ACTIONS and np.isfinite(table.q).all()
    assert table.q.max() > 0
    report = tabular.report_
    assert report.epochs == 20 and len(report.history) == 20 and report.seconds_per_epoch > 0


def test_rerank_reorders_the_pool_and_keeps_unknown_items_in_place(
        tabular: QLearning, shop: SyntheticShop, dataset: InteractionDataset) -> None:
    ranking = upstream(dataset)
    ranking = Ranking([*ranking.item_ids[:3], "brand-new", *ranking.item_ids[3:]],
                      [*ranking.scores[:3], ranking.scores[3], *ranking.scores[3:]])
    user = str(shop.users.id.iloc[0])
    out = tabular.recsdk_rerank(request=request_for(shop, user), ranking=ranking)
    assert out is not None and sorted(out.item_ids) == sorted(ranking.item_ids)
    assert out.item_ids[3] == "brand-new"
    assert out.scores == ranking.scores
    assert out.item_ids != ranking.item_ids          # Q decided the order
    # the interest plugin's affinities are the state's interests when present
    favourite = str(shop.items.category_id[shop.items.id.astype(str) == out.item_ids[-1]]
                    .iloc[0])
    req = request_for(shop, user)
    req.features["interest"] = {"category_affinity": {favourite: 1.0}}
    moved = tabular.recsdk_rerank(request=req, ranking=ranking)
    assert moved is not None and moved.item_ids != out.item_ids
    assert tabular.recsdk_rerank(request=req, ranking=Ranking(["x", "y"], [2.0, 1.0])) is None


def test_state_round_trip_through_the_registry_gives_identical_lists(
        tabular: QLearning, shop: SyntheticShop, dataset: InteractionDataset,
        registry: ModelRegistry) -> None:
    run = registry.begin_run("cfg", ["qlearning"])
    state = tabular.recsdk_save_state(artifacts=registry.writer(run, "plugin:qlearning"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = QLearning.from_config(FAST, "qlearning")
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, artifacts=registry.reader(run, "plugin:qlearning"))
    np.testing.assert_array_equal(loaded.learner_.table.q, tabular.learner_.table.q)
    ranking = upstream(dataset)
    for user in shop.users.id.astype(str)[:10]:
        request = request_for(shop, user)
        assert loaded.recsdk_rerank(request=request, ranking=ranking) == \
            tabular.recsdk_rerank(request=request, ranking=ranking)
    dqn = QLearning.from_config({**FAST, "model": "dqn"}, "qlearning")
    with pytest.raises(ConfigurationError, match="no Q network"):
        dqn.recsdk_load_state(state=state, artifacts=registry.reader(run, "plugin:qlearning"))


def test_one_seed_gives_the_same_table_and_another_seed_another(
        tabular: QLearning, dataset: InteractionDataset) -> None:
    again = fitted(dataset, seed=3)
    np.testing.assert_array_equal(again.learner_.table.q, tabular.learner_.table.q)
    other = fitted(dataset, seed=4)
    assert not np.array_equal(other.learner_.table.q, tabular.learner_.table.q)


def test_end_to_end_through_recsdk(tmp_path: Path, shop: SyntheticShop) -> None:
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}", "seed": 5,
              "pipeline": {"timeout_ms": 10_000},
              "plugins": {"popularity": {}, "interest": {}, "qlearning": FAST},
              "models": {"artifact_dir": str(tmp_path / "artifacts"), "model_refresh_s": 0}}
    users = [str(u) for u in shop.users.id[:8]]
    with RecSDK(config, environ={}) as sdk:
        shop.write_to(sdk)
        sdk.fit()
        first = {u: sdk.recommend(u, k=5, log_request=False) for u in users}
        assert all(len(r.item_ids) == 5 and not r.degraded for r in first.values())
        plugin = sdk.plugins.get("qlearning")
        assert plugin.learner_.table.mass.sum() > 0
        with RecSDK({**config, "plugins": {"popularity": {}, "interest": {}}},
                    environ={}) as plain:
            plain_lists = {u: plain.recommend(u, k=5, log_request=False).item_ids
                           for u in users}
        assert any(first[u].item_ids != plain_lists[u] for u in users)
        with RecSDK(config, environ={}) as other:
            assert other.plugins.get("qlearning") is not plugin
            assert {u: other.recommend(u, k=5, log_request=False).item_ids
                    for u in users} == {u: r.item_ids for u, r in first.items()}


@pytest.mark.parametrize(("params", "name"), [
    ({"model": "sarsa"}, "model"), ({"gamma": 1.0}, "gamma"), ({"episodes": 0}, "episodes"),
    ({"epsilon_start": 0.1, "epsilon_end": 0.5}, "epsilon_end"), ({"pool": 0}, "pool"),
    ({"blend": 1.5}, "blend"), ({"learning_rate": 0.0}, "learning_rate"),
    ({"shrinkage": -1.0}, "shrinkage"), ({"n_episodes": 5}, "n_episodes")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.qlearning: invalid .*'{name}'"):
        QLearning.from_config(params, "qlearning")


@pytest.mark.parametrize(("simulator", "name"), [
    ({"slate_size": 0}, "slate_size"), ({"position_bias": -1.0}, "position_bias"),
    ({"no_such_knob": 1}, "no_such_knob")])
def test_bad_simulator_parameters_stop_configure(simulator: dict[str, Any], name: str) -> None:
    plugin = QLearning.from_config({"simulator": simulator}, "qlearning")
    with pytest.raises(ConfigurationError,
                       match=rf"plugins\.qlearning: invalid simulator parameters.*{name}"):
        plugin.recsdk_configure(context=context())


def test_without_torch_only_the_dqn_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    QLearning.from_config({}, "qlearning").recsdk_configure(context=context())
    plugin = QLearning.from_config({"model": "dqn"}, "qlearning")
    with pytest.raises(ConfigurationError,
                       match=r"plugins\.qlearning needs PyTorch.*pip install 'recsdk\[torch\]'"):
        plugin.recsdk_configure(context=context())


def test_the_dqn_trains_saves_and_loads_identically(
        shop: SyntheticShop, dataset: InteractionDataset, registry: ModelRegistry) -> None:
    torch = pytest.importorskip("torch")
    params = {"model": "dqn", "episodes": 40, "batch_size": 16, "num_threads": 1}
    plugin = fitted(dataset, **params)
    assert plugin.learner_.losses and np.isfinite(plugin.learner_.losses).all()
    again = fitted(dataset, **params)
    for key, value in plugin.learner_.state_dict().items():
        assert torch.equal(again.learner_.state_dict()[key], value)
    run = registry.begin_run("cfg", ["qlearning"])
    state = plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:qlearning"))
    loaded = QLearning.from_config({**FAST, **params}, "qlearning")
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, artifacts=registry.reader(run, "plugin:qlearning"))
    ranking = upstream(dataset)
    for user in shop.users.id.astype(str)[:5]:
        request = request_for(shop, user)
        out = plugin.recsdk_rerank(request=request, ranking=ranking)
        assert out is not None and sorted(out.item_ids) == sorted(ranking.item_ids)
        assert loaded.recsdk_rerank(request=request, ranking=ranking) == out


def test_the_request_state_reads_sessions_engagement_and_interests(tabular: QLearning) -> None:
    enc = tabular.encoder_
    items = [str(i) for i in enc.item_ids[:4]] + ["unknown"]
    state = enc.request_state(items, ["click", "view", "purchase", "click", "click"],
                              ["a", "a", "b", "now", "now"], "now", None)
    assert (state.visit, state.visit_clicks) == (2, 1)        # sessions a, b before now
    np.testing.assert_array_equal(state.seen, [0, 2, 3])      # engaged, known items
    leaves = enc.item_leaf[[0, 2, 3]]
    expected = np.bincount(leaves, minlength=enc.n_leaves) / 3
    np.testing.assert_allclose(state.interest, expected)      # the engaged leaves' shares
    profile = {str(enc.leaf_ids[5]): 2.0, "not-a-leaf": 1.0, str(enc.leaf_ids[1]): 2.0}
    cold = enc.request_state([], [], [], None, profile)
    assert (cold.visit, cold.visit_clicks, len(cold.seen)) == (0, 0, 0)
    assert cold.interest[5] == cold.interest[1] == 0.5 and cold.interest.sum() == 1.0
