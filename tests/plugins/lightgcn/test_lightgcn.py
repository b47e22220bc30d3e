"""lightgcn: the propagation, planted structure, seeding, fold-in, state, parameters."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.lightgcn import LightGCN
from recsdk_plugins.lightgcn.model import TripleSampler, normalized_adjacency

from recsdk import RecSDK
from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory
from tests.core.shop import fill

torch = pytest.importorskip("torch")

WEIGHTS = {"view": 1.0, "purchase": 4.0}
DAY = 86400.0
#: Two taste groups: users "a*" choose among items 0-9, users "b*" among items 10-19;
#: item popularity falls with the item number inside each group.
N_USERS, N_ITEMS, PER_USER = 40, 20, 6
#: small, fast settings that still learn the planted groups
FAST = {"factors": 8, "layers": 2, "learning_rate": 0.05, "batch_size": 32,
        "max_epochs": 20, "eval_every": 5, "patience": 2, "regularization": 1e-4,
        "num_threads": 1}


def planted_events() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    p = np.linspace(2.0, 1.0, 10)
    rows = []
    for u in range(N_USERS):
        group = u % 2
        user = f"{'ab'[group]}{u}"
        for item in rng.choice(10, PER_USER, replace=False, p=p / p.sum()) + 10 * group:
            rows.append((user, f"i{item}", "view", float(rng.integers(0, 10)) * DAY))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp"])


def planted_dataset() -> InteractionDataset:
    return InteractionDataset.from_frame(planted_events(), event_weights=WEIGHTS)


def context(seed: int = 3) -> PluginContext:
    return PluginContext(settings=Settings(seed=seed, device="cpu", event_weights=WEIGHTS),
                         seed=seed, device_setting="cpu")


def fitted(dataset: InteractionDataset | None = None, seed: int = 3,
           **params: Any) -> LightGCN:
    plugin = LightGCN.from_config({**FAST, **params}, "lightgcn")
    ctx = context(seed)
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset or planted_dataset(), context=ctx)
    return plugin


@pytest.fixture(scope="module")
def model() -> tuple[LightGCN, InteractionDataset]:
    ds = planted_dataset()
    return fitted(ds), ds


def all_items(ds: InteractionDataset) -> CandidateSet:
    return CandidateSet(ds.item_ids, np.arange(ds.n_items))


def request(user: str | None, items: list[str], times: list[float] | None = None,
            types: list[str] | None = None) -> RecommendationRequest:
    history = UserHistory(items, types or ["view"] * len(items), times or [0.0] * len(items))
    return RecommendationRequest(user_id=user, k=5, history=history)


def group_share(ds: InteractionDataset, scores: np.ndarray, seen: set[str], group: int,
                k: int = 3) -> float:
    """Share of the top k unseen items that belong to ``group`` (0: i0-i9, 1: i10-i19)."""
    order = [i for i in np.argsort(-scores, kind="stable") if ds.item_ids[i] not in seen][:k]
    return float(np.mean([int(ds.item_ids[i][1:]) // 10 == group for i in order]))


def mean_group_share(ds: InteractionDataset, scores: np.ndarray) -> float:
    events = planted_events()
    return float(np.mean([group_share(ds, scores[u], set(events.item_id[events.user_id == user]),
                                      int(user[0] == "b"))
                          for u, user in enumerate(ds.user_ids)]))


def test_final_embeddings_are_the_mean_of_the_propagated_layers() -> None:
    ds = planted_dataset()
    plugin = fitted(ds, layers=3, max_epochs=2, validation_share=0.0)
    x = ds.matrix.toarray().astype(np.float64)
    n_users = x.shape[0]
    a = np.block([[np.zeros((n_users, n_users)), x], [x.T, np.zeros((x.shape[1],) * 2)]])
    d = a.sum(axis=1)
    a_hat = a / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(normalized_adjacency(ds.matrix).toarray(), a_hat, rtol=1e-6)
    e = np.vstack([plugin.weights_["user_embedding"].numpy(),
                   plugin.weights_["item_embedding"].numpy()]).astype(np.float64)
    layers = [e]
    for _ in range(3):
        layers.append(a_hat @ layers[-1])
    final = np.mean(layers, axis=0)
    np.testing.assert_allclose(plugin.user_embeddings_, final[:n_users], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(plugin.item_embeddings_, final[n_users:], rtol=1e-4, atol=1e-6)


def test_learns_the_planted_groups_better_than_popularity(model) -> None:
    plugin, ds = model
    scores = plugin.recsdk_score_users(user_ids=list(ds.user_ids), candidates=all_items(ds))
    popularity = np.tile(np.asarray(ds.matrix.sum(axis=0)).ravel(), (ds.n_users, 1))
    assert mean_group_share(ds, scores) >= 0.9
    assert mean_group_share(ds, scores) > mean_group_share(ds, popularity) + 0.3


def test_early_stopping_reports_epochs_and_the_refit_uses_the_best_count(model) -> None:
    plugin, _ = model
    report = plugin.report_
    assert report.history and report.best_score is not None and report.best_score > 0
    assert report.seconds_per_epoch > 0
    assert plugin.refit_report_.epochs == report.best_epoch
    kept = fitted(refit=False)
    assert kept.refit_report_ is None
    assert not np.array_equal(kept.item_embeddings_, plugin.item_embeddings_)


def test_one_seed_gives_the_same_scores_and_another_seed_others() -> None:
    ds = planted_dataset()
    users, candidates = list(ds.user_ids), all_items(ds)
    first = fitted(ds, seed=11).recsdk_score_users(user_ids=users, candidates=candidates)
    again = fitted(ds, seed=11).recsdk_score_users(user_ids=users, candidates=candidates)
    other = fitted(ds, seed=12).recsdk_score_users(user_ids=users, candidates=candidates)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_negatives_are_seeded_and_avoid_the_users_positives() -> None:
    matrix = planted_dataset().matrix
    users, positives, negatives = TripleSampler(matrix, 5).epoch()
    assert sorted(zip(users, positives, strict=True)) == sorted(zip(*matrix.nonzero(),
                                                                     strict=True))
    assert not np.asarray(matrix[users, negatives] > 0).any()
    again = TripleSampler(matrix, 5).epoch()
    assert all(np.array_equal(x, y) for x, y in zip((users, positives, negatives), again,
                                                      strict=True))


def test_fold_in_of_a_training_row_is_the_trained_embedding(model) -> None:
    plugin, ds = model
    for user in ("a0", "b1"):
        code = ds.user_index[user]
        np.testing.assert_allclose(plugin.fold_in(plugin.rows_.matrix[code], code),
                                   plugin.user_embeddings_[code], rtol=1e-4, atol=1e-6)


def test_new_events_change_the_list_and_strangers_are_folded_in(model) -> None:
    plugin, ds = model
    candidates = all_items(ds)
    events = planted_events()
    user = "a0"
    seen = list(events.item_id[events.user_id == user])
    stored = plugin.recsdk_score(request=request(user, seen), candidates=candidates)
    np.testing.assert_allclose(
        stored, plugin.recsdk_score_users(user_ids=[user], candidates=candidates)[0])
    late = ["i10", "i11", "i12", "i13"]
    moved = plugin.recsdk_score(
        request=request(user, seen + late, [0.0] * len(seen) + [20 * DAY] * 4,
                        ["view"] * len(seen) + ["purchase"] * 4), candidates=candidates)
    gone = set(seen + late)
    assert group_share(ds, moved, gone, 1) > group_share(ds, stored, gone, 1)
    stranger = plugin.recsdk_score(request=request("stranger", ["i14", "i15", "i16"]),
                                   candidates=candidates)
    assert group_share(ds, stranger, {"i14", "i15", "i16"}, 1) == 1.0
    assert plugin.recsdk_score(request=request("stranger", []), candidates=candidates) is None
    assert plugin.recsdk_score(request=request("x", ["unknown-item"]),
                               candidates=candidates) is None


def test_unknown_items_and_users_are_nan_and_similar_items_share_the_group(model) -> None:
    plugin, ds = model
    candidates = CandidateSet(np.array(["i1", "new", "i12"], dtype=object),
                              np.array([1, -1, 12]))
    got = plugin.recsdk_score(request=request("a0", ["i1"]), candidates=candidates)
    assert np.isfinite(got[[0, 2]]).all() and np.isnan(got[1])
    batch = plugin.recsdk_score_users(user_ids=["a0", "nobody"], candidates=candidates)
    assert np.isnan(batch[1]).all() and np.isnan(batch[0, 1]) and np.isfinite(batch[0, 0])
    assert plugin.recsdk_score_similar(item_id="new", candidates=candidates,
                                       catalog=None) is None
    sims = plugin.recsdk_score_similar(item_id="i3", candidates=all_items(ds), catalog=None)
    group = np.array([int(i[1:]) // 10 for i in ds.item_ids])
    others = ds.item_ids != "i3"
    assert sims[ds.item_index["i3"]] == pytest.approx(1.0, abs=1e-5)
    assert sims[(group == 0) & others].mean() > sims[group == 1].mean() + 0.5


@pytest.mark.parametrize("index", ["none", "exact", "hnsw"])
def test_state_round_trip_through_the_registry_gives_identical_scores(index, registry) -> None:
    ds = planted_dataset()
    plugin = fitted(ds, index=index)
    run = registry.begin_run("cfg", ["lightgcn"])
    state = plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:lightgcn"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = LightGCN.from_config({**FAST, "index": index}, "lightgcn")
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        ds.vocabulary_state()), artifacts=registry.reader(run, "plugin:lightgcn"))
    for key, value in plugin.weights_.items():
        assert torch.equal(loaded.weights_[key], value)
    candidates, users = all_items(ds), list(ds.user_ids)
    assert np.array_equal(plugin.recsdk_score_users(user_ids=users, candidates=candidates),
                          loaded.recsdk_score_users(user_ids=users, candidates=candidates))
    late = request("a0", ["i1", "i12"], [0.0, 30 * DAY])
    assert np.array_equal(plugin.recsdk_score(request=late, candidates=candidates),
                          loaded.recsdk_score(request=late, candidates=candidates))
    got = loaded.recsdk_retrieve_candidates(request=late, n=5)
    if index == "none":
        assert got is None
    else:
        assert got == plugin.recsdk_retrieve_candidates(request=late, n=5)
        assert len(got.ids) == 5


def test_a_trained_run_serves_the_same_lists_after_loading_in_a_new_sdk(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
              "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
              "plugins": {"lightgcn": {**FAST, "max_epochs": 5}, "popularity": {}},
              "models": {"artifact_dir": str(tmp_path / "artifacts"), "model_refresh_s": 0}}
    with RecSDK(config, environ={}) as sdk:
        fill(sdk)
        sdk.fit()
        before = sdk.plugins.get("lightgcn")
        lists = {u: sdk.recommend(u, k=5).item_ids for u in ("u1", "u6", "stranger")}
        with RecSDK(config, environ={}) as other:
            after = other.plugins.get("lightgcn")
            assert after is not before
            np.testing.assert_array_equal(after.item_embeddings_, before.item_embeddings_)
            assert {u: other.recommend(u, k=5).item_ids for u in lists} == lists


@pytest.mark.parametrize(("params", "name"), [
    ({"layers": -1}, "layers"), ({"layers": 9}, "layers"), ({"factors": 0}, "factors"),
    ({"regularization": -1.0}, "regularization"), ({"learning_rate": 0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"), ({"validation_share": 0.9}, "validation_share"),
    ({"index": "ivf"}, "index"), ({"n_layers": 2}, "n_layers")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.lightgcn: invalid .*'{name}'"):
        LightGCN.from_config(params, "lightgcn")


def test_without_torch_configure_names_the_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    plugin = LightGCN.from_config({}, "lightgcn")
    with pytest.raises(ConfigurationError,
                       match=r"plugins\.lightgcn needs PyTorch.*pip install 'recsdk\[torch\]'"):
        plugin.recsdk_configure(context=context())


def test_no_interaction_of_the_event_types_names_the_plugin() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.lightgcn: .*add_to_cart"):
        fitted(event_types=["add_to_cart"])
