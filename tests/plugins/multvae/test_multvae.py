"""multvae: the loss, annealing, planted structure, seeding, fold-in, state, parameters."""

from __future__ import annotations

import builtins
import configparser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.deep_training import update_average
from recsdk_plugins.multvae import MultVAE

from recsdk import RecSDK
from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.plugin_manager import BUILTIN_PLUGINS
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory
from tests.core.shop import fill

torch = pytest.importorskip("torch")

from recsdk_plugins.multvae.model import (  # noqa: E402 (needs torch)
    Architecture,
    MultVAEModel,
    annealed_beta,
)

WEIGHTS = {"view": 1.0, "purchase": 4.0}
DAY = 86400.0
#: Two taste groups: users "a*" choose among items 0-9, users "b*" among items 10-19;
#: item popularity falls with the item number inside each group.
N_USERS, N_ITEMS, PER_USER = 40, 20, 6
#: small, fast settings that still learn the planted groups
FAST = {"hidden": [32], "latent": 8, "learning_rate": 0.01, "batch_size": 8,
        "max_epochs": 40, "eval_every": 5, "patience": 2, "anneal_steps": 100,
        "ema_decay": 0.9, "num_threads": 1}


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
           **params: Any) -> MultVAE:
    plugin = MultVAE.from_config({**FAST, **params}, "multvae")
    ctx = context(seed)
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset or planted_dataset(), context=ctx)
    return plugin


@pytest.fixture(scope="module")
def model() -> tuple[MultVAE, InteractionDataset]:
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


# ---- the model ---------------------------------------------------------------------


def test_beta_grows_linearly_to_the_cap() -> None:
    assert annealed_beta(0, 0.2, 100) == 0.0
    assert annealed_beta(50, 0.2, 100) == pytest.approx(0.1)
    assert annealed_beta(100, 0.2, 100) == pytest.approx(0.2)
    assert annealed_beta(10_000, 0.2, 100) == pytest.approx(0.2)
    assert annealed_beta(0, 0.3, 0) == pytest.approx(0.3)


def test_loss_is_the_multinomial_log_loss_plus_beta_times_the_gaussian_kl() -> None:
    torch.manual_seed(0)
    net = MultVAEModel(Architecture(n_items=7, hidden=(5,), latent=3, dropout=0.5)).eval()
    x = torch.tensor([[1.0, 0, 2, 0, 0, 1, 0], [0, 1.0, 0, 0, 4, 0, 0]])
    logits, mu, logvar = net(x)
    h = net.encoder(x / x.norm(dim=1, keepdim=True))
    torch.testing.assert_close(mu, h[:, :3])
    torch.testing.assert_close(logits, net.decoder(mu))  # eval: z = mu, no dropout
    nll = -(x * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    var = logvar.exp()
    kl = 0.5 * (var + mu ** 2 - 1 - logvar).sum(dim=1).mean()
    torch.testing.assert_close(net.loss(x, 0.0), nll)
    torch.testing.assert_close(net.loss(x, 0.25), nll + 0.25 * kl)


def test_training_samples_the_latent_and_drops_input_while_scoring_does_not() -> None:
    torch.manual_seed(0)
    net = MultVAEModel(Architecture(n_items=30, hidden=(16,), latent=4, dropout=0.5))
    x = (torch.rand(6, 30) > 0.5).float()
    net.train()
    assert not torch.equal(net(x)[0], net(x)[0])
    net.eval()
    assert torch.equal(net(x)[0], net(x)[0])
    shapes = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    # the paper's shape, scaled: I -> 16 -> 2 x 4 (mu, log-variance); 4 -> 16 -> I
    assert shapes == [(16, 30), (8, 16), (16, 4), (30, 16)]


def test_the_average_moves_towards_the_trained_weights_by_one_minus_decay() -> None:
    torch.manual_seed(0)
    arch = Architecture(n_items=9, hidden=(4,), latent=2, dropout=0.5)
    average, trained = MultVAEModel(arch), MultVAEModel(arch)
    before = {k: v.clone() for k, v in average.state_dict().items()}
    update_average(average, trained, 0.9)
    for key, value in average.state_dict().items():
        torch.testing.assert_close(value, 0.9 * before[key] + 0.1 * trained.state_dict()[key])
    update_average(average, trained, 0.0)
    for key, value in average.state_dict().items():
        torch.testing.assert_close(value, trained.state_dict()[key])


# ---- training ----------------------------------------------------------------------


def test_the_kept_network_is_the_average_only_when_ema_decay_is_set(model) -> None:
    plugin, ds = model
    plain = fitted(ds, ema_decay=0.0)
    assert MultVAE.from_config({}, "multvae").params["ema_decay"] == 0.99
    assert not all(torch.equal(plain.weights_[k], v) for k, v in plugin.weights_.items())
    # both learn the planted groups; the averaged weights are served, not the last ones
    scores = plain.recsdk_score_users(user_ids=list(ds.user_ids), candidates=all_items(ds))
    assert mean_group_share(ds, scores) >= 0.9
    assert all(not v.requires_grad for v in plugin.net_.parameters())



def test_learns_the_planted_groups_better_than_popularity(model) -> None:
    plugin, ds = model
    scores = plugin.recsdk_score_users(user_ids=list(ds.user_ids), candidates=all_items(ds))
    popularity = np.tile(np.asarray(ds.matrix.sum(axis=0)).ravel(), (ds.n_users, 1))
    assert mean_group_share(ds, scores) >= 0.9
    assert mean_group_share(ds, scores) > mean_group_share(ds, popularity) + 0.3


def test_early_stopping_reports_epochs_and_the_refit_uses_the_best_count(model) -> None:
    plugin, _ = model
    report = plugin.report_
    assert report.name == "multvae" and report.device == "cpu"
    assert report.history and report.best_score is not None and report.best_score > 0
    assert report.best_score == max(score for _, score in report.history)
    assert report.seconds_per_epoch > 0 and len(report.epoch_seconds) == report.epochs
    assert plugin.refit_report_.epochs == report.best_epoch
    assert plugin.refit_report_.history == []
    kept = fitted(refit=False)
    assert kept.refit_report_ is None
    assert not all(torch.equal(kept.weights_[k], v) for k, v in plugin.weights_.items())


def test_patience_stops_training_before_max_epochs() -> None:
    plugin = fitted(max_epochs=400, eval_every=1, patience=1, refit=False)
    report = plugin.report_
    assert report.stopped_early and report.epochs < 400
    assert report.epochs == report.history[-1][0]


def test_one_seed_gives_the_same_scores_and_another_seed_others() -> None:
    ds = planted_dataset()
    users, candidates = list(ds.user_ids), all_items(ds)
    first = fitted(ds, seed=11).recsdk_score_users(user_ids=users, candidates=candidates)
    again = fitted(ds, seed=11).recsdk_score_users(user_ids=users, candidates=candidates)
    other = fitted(ds, seed=12).recsdk_score_users(user_ids=users, candidates=candidates)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


# ---- serving -----------------------------------------------------------------------


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
    # a user the model never saw, with a known user's history, gets that user's scores
    np.testing.assert_allclose(
        plugin.recsdk_score(request=request("stranger", seen), candidates=candidates), stored)
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
    assert sims[(group == 0) & others].mean() > sims[group == 1].mean() + 0.2


def test_items_without_a_training_interaction_score_nan() -> None:
    events = planted_events()
    extra = pd.DataFrame([("a0", "cart-only", "purchase", 0.0)], columns=events.columns)
    ds = InteractionDataset.from_frame(pd.concat([events, extra]), event_weights=WEIGHTS)
    plugin = fitted(ds, event_types=["view"], max_epochs=2, validation_share=0.0)
    scores = plugin.recsdk_score_users(user_ids=["a0", "b1"], candidates=all_items(ds))
    untrained = ds.item_index["cart-only"]
    assert np.isnan(scores[:, untrained]).all()
    assert np.isfinite(np.delete(scores, untrained, axis=1)).all()
    assert plugin.recsdk_score_similar(item_id="cart-only", candidates=all_items(ds),
                                       catalog=None) is None


# ---- state -------------------------------------------------------------------------


def test_state_round_trip_through_the_registry_gives_identical_scores(model, registry) -> None:
    plugin, ds = model
    run = registry.begin_run("cfg", ["multvae"])
    state = plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:multvae"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = MultVAE.from_config(FAST, "multvae")
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        ds.vocabulary_state()), artifacts=registry.reader(run, "plugin:multvae"))
    assert loaded.weights_.keys() == plugin.weights_.keys()
    for key, value in plugin.weights_.items():
        assert torch.equal(loaded.weights_[key], value)
    candidates, users = all_items(ds), list(ds.user_ids)
    assert np.array_equal(plugin.recsdk_score_users(user_ids=users, candidates=candidates),
                          loaded.recsdk_score_users(user_ids=users, candidates=candidates),
                          equal_nan=True)
    late = request("a0", ["i1", "i12"], [0.0, 30 * DAY])
    assert np.array_equal(plugin.recsdk_score(request=late, candidates=candidates),
                          loaded.recsdk_score(request=late, candidates=candidates))
    sims = {"item_id": "i3", "candidates": candidates, "catalog": None}
    assert np.array_equal(plugin.recsdk_score_similar(**sims),
                          loaded.recsdk_score_similar(**sims))


def test_weights_that_do_not_fit_the_stored_architecture_are_refused(model, registry) -> None:
    plugin, ds = model
    run = registry.begin_run("cfg", ["multvae"])
    state = dict(plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:multvae")))
    state["architecture"] = Architecture(ds.n_items, (16,), 8, 0.5).as_array()
    loaded = MultVAE.from_config(FAST, "multvae")
    with pytest.raises(ConfigurationError, match=r"plugins\.multvae: the stored weights"):
        loaded.recsdk_load_state(state=state, dataset=ds,
                                 artifacts=registry.reader(run, "plugin:multvae"))


def test_a_trained_run_serves_the_same_lists_after_loading_in_a_new_sdk(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path / 'shop.db'}",
              "pipeline": {"timeout_ms": 10_000},  # no timeouts on a loaded CI machine
              "plugins": {"multvae": {**FAST, "max_epochs": 5}, "popularity": {}},
              "models": {"artifact_dir": str(tmp_path / "artifacts"), "model_refresh_s": 0}}
    with RecSDK(config, environ={}) as sdk:
        fill(sdk)
        sdk.fit()
        before = sdk.plugins.get("multvae")
        lists = {u: sdk.recommend(u, k=5).item_ids for u in ("u1", "u6", "stranger")}
        with RecSDK(config, environ={}) as other:
            after = other.plugins.get("multvae")
            assert after is not before
            for key, value in before.weights_.items():
                assert torch.equal(after.weights_[key], value)
            assert {u: other.recommend(u, k=5).item_ids for u in lists} == lists


# ---- configuration -----------------------------------------------------------------


def test_registered_as_a_builtin_plugin_and_an_entry_point() -> None:
    target = "recsdk_plugins.multvae:MultVAE"
    assert BUILTIN_PLUGINS["multvae"] == target
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[3] / "setup.cfg")
    entry_points = setup["options.entry_points"]["recsdk"].split("\n")
    assert f"multvae = {target}" in [line.strip() for line in entry_points]


@pytest.mark.parametrize(("params", "name"), [
    ({"hidden": []}, "hidden"), ({"hidden": [0]}, "hidden"), ({"hidden": "600"}, "hidden"),
    ({"latent": 0}, "latent"), ({"dropout": 1.0}, "dropout"), ({"dropout": -0.1}, "dropout"),
    ({"anneal_cap": 1.5}, "anneal_cap"), ({"anneal_steps": -1}, "anneal_steps"),
    ({"learning_rate": 0}, "learning_rate"), ({"weight_decay": -1.0}, "weight_decay"),
    ({"batch_size": 0}, "batch_size"), ({"validation_share": 0.9}, "validation_share"),
    ({"ema_decay": 1.0}, "ema_decay"), ({"ema_decay": -0.1}, "ema_decay"),
    ({"beta": 0.2}, "beta")])
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.multvae: invalid .*'{name}'"):
        MultVAE.from_config(params, "multvae")


def test_without_torch_configure_names_the_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    plugin = MultVAE.from_config({}, "multvae")
    with pytest.raises(ConfigurationError,
                       match=r"plugins\.multvae needs PyTorch.*pip install 'recsdk\[torch\]'"):
        plugin.recsdk_configure(context=context())


def test_no_interaction_of_the_event_types_names_the_plugin() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.multvae: .*add_to_cart"):
        fitted(event_types=["add_to_cart"])
