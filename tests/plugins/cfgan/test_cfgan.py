"""cfgan: the masks, planted structure, seeding, serving from history, state, parameters."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from recsdk_plugins.cfgan import CFGAN

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
FAST = {"generator_layers": [16], "discriminator_layers": [16], "batch_size": 8,
        "generator_learning_rate": 0.01, "discriminator_learning_rate": 0.01,
        "max_epochs": 100, "eval_every": 5, "patience": 4, "num_threads": 1}


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


def fitted(dataset: InteractionDataset | None = None, seed: int = 3, **params: Any) -> CFGAN:
    plugin = CFGAN.from_config({**FAST, **params}, "cfgan")
    ctx = context(seed)
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset or planted_dataset(), context=ctx)
    return plugin


@pytest.fixture(scope="module")
def model() -> tuple[CFGAN, InteractionDataset]:
    ds = planted_dataset()
    return fitted(ds), ds


def same_weights(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Two plugins' generators hold equal weights (same count, keys and tensors)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True))


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


def test_masks_draw_only_unseen_items_at_the_asked_share() -> None:
    from recsdk_plugins.cfgan.model import negative_mask, purchase_vectors

    rows = sp.csr_matrix(np.array([[0.0, 4.0, 1.0, 0.0], [2.0, 0.0, 0.0, 0.0],
                                   [0.0, 0.0, 0.0, 0.0]]))
    vectors = purchase_vectors(rows)
    np.testing.assert_allclose(vectors.toarray(), [[0, 1, 0.25, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    real = torch.zeros(200, 500)
    real[:, :100] = 1.0
    mask = negative_mask(real, 0.3, torch.Generator().manual_seed(1))
    assert not mask[:, :100].any()
    assert mask[:, 100:].mean().item() == pytest.approx(0.3, abs=0.01)
    again = negative_mask(real, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(mask, again)
    assert not negative_mask(real, 0.0, torch.Generator().manual_seed(1)).any()


def test_learns_the_planted_groups_better_than_popularity(model) -> None:
    plugin, ds = model
    scores = plugin.recsdk_score_users(user_ids=list(ds.user_ids), candidates=all_items(ds))
    popularity = np.tile(np.asarray(ds.matrix.sum(axis=0)).ravel(), (ds.n_users, 1))
    assert mean_group_share(ds, scores) >= 0.9
    assert mean_group_share(ds, scores) > mean_group_share(ds, popularity) + 0.3


def test_the_report_holds_epochs_validation_and_time_and_the_refit_uses_the_best_count(
        model) -> None:
    plugin, _ = model
    report = plugin.report_
    assert report.name == "cfgan" and report.device == "cpu"
    assert [e for e, _ in report.history] == list(range(5, report.epochs + 1, 5))
    assert report.best_score == max(s for _, s in report.history) > 0
    assert report.best_epoch in [e for e, _ in report.history]
    assert len(report.epoch_seconds) == report.epochs and report.seconds_per_epoch > 0
    assert report.as_dict()["seconds_per_epoch"] == report.seconds_per_epoch
    assert plugin.refit_report_.epochs == report.best_epoch
    assert plugin.refit_report_.history == []
    kept = fitted(refit=False)
    assert kept.refit_report_ is None
    without = fitted(validation_share=0.0, max_epochs=3)
    assert without.report_.epochs == 3 and without.report_.history == []
    assert without.refit_report_ is None


def test_progress_shows_a_bar_per_training_run(capsys: pytest.CaptureFixture[str]) -> None:
    fitted(progress=True, max_epochs=2, validation_share=0.0)
    assert "cfgan" in capsys.readouterr().err
    fitted(max_epochs=2, validation_share=0.0)
    assert "cfgan" not in capsys.readouterr().err


def test_one_seed_gives_the_same_scores_and_another_seed_others() -> None:
    ds = planted_dataset()
    users, candidates = list(ds.user_ids), all_items(ds)
    quick = {"max_epochs": 6, "refit": False}
    first = fitted(ds, seed=11, **quick).recsdk_score_users(user_ids=users, candidates=candidates)
    again = fitted(ds, seed=11, **quick).recsdk_score_users(user_ids=users, candidates=candidates)
    other = fitted(ds, seed=12, **quick).recsdk_score_users(user_ids=users, candidates=candidates)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_an_ensemble_averages_generators_trained_under_consecutive_seeds() -> None:
    ds = planted_dataset()
    users, candidates = list(ds.user_ids), all_items(ds)
    quick = {"max_epochs": 6}
    pair = fitted(ds, seed=11, ensemble=2, **quick)
    first, second = fitted(ds, seed=11, **quick), fitted(ds, seed=12, **quick)
    assert same_weights(pair.weights_, first.weights_ + second.weights_)
    assert [r.epochs for r, _ in pair.member_reports_] == [first.report_.epochs,
                                                          second.report_.epochs]
    np.testing.assert_allclose(
        pair.recsdk_score_users(user_ids=users, candidates=candidates),
        (first.recsdk_score_users(user_ids=users, candidates=candidates)
         + second.recsdk_score_users(user_ids=users, candidates=candidates)) / 2)
    req = request("a0", ["i1", "i12"])
    np.testing.assert_allclose(
        pair.recsdk_score(request=req, candidates=candidates),
        (first.recsdk_score(request=req, candidates=candidates)
         + second.recsdk_score(request=req, candidates=candidates)) / 2)


def test_new_events_change_the_list_and_strangers_are_served_from_their_history(
        model) -> None:
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


def test_unknown_items_and_users_are_nan(model) -> None:
    plugin, _ = model
    candidates = CandidateSet(np.array(["i1", "new", "i12"], dtype=object),
                              np.array([1, -1, 12]))
    got = plugin.recsdk_score(request=request("a0", ["i1"]), candidates=candidates)
    assert np.isfinite(got[[0, 2]]).all() and np.isnan(got[1])
    batch = plugin.recsdk_score_users(user_ids=["a0", "nobody"], candidates=candidates)
    assert np.isnan(batch[1]).all() and np.isnan(batch[0, 1]) and np.isfinite(batch[0, 0])


@pytest.mark.parametrize("ensemble", [1, 2])
def test_state_round_trip_through_the_registry_gives_identical_scores(registry,
                                                                      ensemble: int) -> None:
    ds = planted_dataset()
    plugin = fitted(ds, max_epochs=10, ensemble=ensemble)
    run = registry.begin_run("cfg", ["cfgan"])
    state = plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:cfgan"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    assert int(state["ensemble"]) == ensemble
    if ensemble == 1:  # as a run saved before ``ensemble`` existed: no count
        state = {k: v for k, v in state.items() if k != "ensemble"}
    loaded = CFGAN.from_config(FAST, "cfgan")
    loaded.recsdk_configure(context=context())
    vocabulary = InteractionDataset.from_vocabulary(ds.vocabulary_state())
    loaded.recsdk_load_state(state=state, dataset=vocabulary,
                             artifacts=registry.reader(run, "plugin:cfgan"))
    assert same_weights(loaded.weights_, plugin.weights_)
    candidates, users = all_items(ds), list(ds.user_ids)
    assert np.array_equal(plugin.recsdk_score_users(user_ids=users, candidates=candidates),
                          loaded.recsdk_score_users(user_ids=users, candidates=candidates))
    for req in (request("a0", ["i1", "i12"], [0.0, 30 * DAY]), request("stranger", ["i3"])):
        assert np.array_equal(plugin.recsdk_score(request=req, candidates=candidates),
                              loaded.recsdk_score(request=req, candidates=candidates))


def test_weights_that_do_not_fit_the_stored_layers_are_refused(registry) -> None:
    ds = planted_dataset()
    plugin = fitted(ds, max_epochs=2, validation_share=0.0)
    run = registry.begin_run("cfg", ["cfgan"])
    state = dict(plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:cfgan")))
    state["generator_layers"] = np.array([32], dtype=np.int64)
    loaded = CFGAN.from_config(FAST, "cfgan")
    with pytest.raises(ConfigurationError, match=r"plugins\.cfgan: the stored generator weights"):
        loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
            ds.vocabulary_state()), artifacts=registry.reader(run, "plugin:cfgan"))


def test_a_trained_run_serves_the_same_lists_after_loading_in_a_new_sdk(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
              "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
              "plugins": {"cfgan": {**FAST, "max_epochs": 5}, "popularity": {}},
              "models": {"artifact_dir": str(tmp_path / "artifacts"), "model_refresh_s": 0}}
    with RecSDK(config, environ={}) as sdk:
        fill(sdk)
        sdk.fit()
        before = sdk.plugins.get("cfgan")
        lists = {u: sdk.recommend(u, k=5).item_ids for u in ("u1", "u6", "stranger")}
        with RecSDK(config, environ={}) as other:
            after = other.plugins.get("cfgan")
            assert after is not before
            assert same_weights(after.weights_, before.weights_)
            assert {u: other.recommend(u, k=5).item_ids for u in lists} == lists


def test_instances_with_their_own_seeds_train_their_own_generators(tmp_path: Path) -> None:
    """``seed`` in a plugin's table: the same model twice under two seeds (an ensemble);
    an instance seeded like the run trains what the run's seed trains."""
    quick = {**FAST, "max_epochs": 5}
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}", "seed": 5,
              "pipeline": {"timeout_ms": 10_000},
              "plugins": {"cfgan": quick, "cfgan_same": {"plugin": "cfgan", "seed": 5, **quick},
                          "cfgan_other": {"plugin": "cfgan", "seed": 6, **quick},
                          "popularity": {}}}
    with RecSDK(config, environ={}) as sdk:
        fill(sdk)
        sdk.fit()
        run, same, other = (sdk.plugins.get(n).weights_
                            for n in ("cfgan", "cfgan_same", "cfgan_other"))
    assert same_weights(run, same)
    assert not same_weights(run, other)


@pytest.mark.parametrize(("params", "name"), [
    ({"generator_layers": []}, "generator_layers"),
    ({"generator_layers": [0]}, "generator_layers"),
    ({"discriminator_layers": "wide"}, "discriminator_layers"),
    ({"zr_share": 1.5}, "zr_share"), ({"pm_share": -0.1}, "pm_share"),
    ({"zr_weight": -1.0}, "zr_weight"), ({"generator_learning_rate": 0}, "generator_learning_rate"),
    ({"discriminator_learning_rate": 2.0}, "discriminator_learning_rate"),
    ({"batch_size": 0}, "batch_size"), ({"discriminator_steps": 0}, "discriminator_steps"),
    ({"ensemble": 0}, "ensemble"), ({"ensemble": 33}, "ensemble"),
    ({"validation_share": 0.9}, "validation_share"), ({"hidden": 100}, "hidden")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.cfgan: invalid .*'{name}'"):
        CFGAN.from_config(params, "cfgan")


def test_without_torch_configure_names_the_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    plugin = CFGAN.from_config({}, "cfgan")
    with pytest.raises(ConfigurationError,
                       match=r"plugins\.cfgan needs PyTorch.*pip install 'recsdk\[torch\]'"):
        plugin.recsdk_configure(context=context())


def test_no_interaction_of_the_event_types_names_the_plugin() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.cfgan: .*add_to_cart"):
        fitted(event_types=["add_to_cart"])
