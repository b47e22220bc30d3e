"""What every next-item plugin built on ``recsdk_plugins.sequential`` must do, written
once and run on each plugin's own fixtures.

A plugin's test module defines the fixtures ``plugin_cls`` (the class), ``fast`` (the
small parameters its tests train with), ``dataset`` (item chains, see
:data:`CHAINS`), ``seed_params`` (parameters of the determinism test) and ``other_arch``
(a configured architecture that a saved model must override), then imports the tests
and the fixtures built from those (``fit``: ``fit(dataset, seed=5, **params)`` with
``fast`` under ``params``; ``model``: ``fit(dataset)``) with ``from
tests.plugins.sequential_contract import *`` (``__all__``), which pytest collects there;
``registry`` comes from tests/plugins/conftest.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from recsdk_plugins.sequential import SequentialPlugin

from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.registry import ModelRegistry
from recsdk.types import CandidateSet, PluginContext, RecommendationRequest, UserHistory

WEIGHTS = {"view": 1.0, "return": -4.0}
#: 4 chains of 5 items: c0 -> c1 -> ... -> c4; "hot" starts most sequences (popular)
CHAINS = [[f"c{c}i{j}" for j in range(5)] for c in range(4)]
SUCCESSOR = {chain[j]: chain[j + 1] for chain in CHAINS for j in range(4)}

Fit = Callable[..., SequentialPlugin]

__all__ = [
    "fit",
    "model",
    "test_a_history_longer_than_the_window_is_cut_to_its_newest_items",
    "test_learns_the_chains_beyond_popularity",
    "test_missing_torch_names_the_extra",
    "test_negative_event_types_stay_out_of_the_sequences",
    "test_no_usable_events_names_the_plugin",
    "test_same_seed_same_model_other_seed_other_model",
    "test_state_round_trip_through_the_registry_gives_identical_scores",
    "test_the_next_list_follows_the_last_click",
    "test_unseen_users_unknown_items_and_empty_histories",
]


def context(seed: int = 5) -> PluginContext:
    return PluginContext(settings=Settings(seed=seed, device="cpu", event_weights=WEIGHTS),
                         seed=seed, device_setting="cpu")


def fitted(cls: type[SequentialPlugin], params: dict[str, Any], dataset: InteractionDataset,
           seed: int = 5) -> SequentialPlugin:
    plugin = cls.from_config(params, cls.NAME)
    ctx = context(seed)
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset, context=ctx)
    return plugin


@pytest.fixture(scope="module")
def fit(plugin_cls: type[SequentialPlugin], fast: dict[str, Any]) -> Fit:
    """``fit(dataset, seed=5, **params)``: the plugin trained with ``fast`` and ``params``."""
    def train(dataset: InteractionDataset, seed: int = 5, **params: Any) -> SequentialPlugin:
        return fitted(plugin_cls, {**fast, **params}, dataset, seed)
    return train


@pytest.fixture(scope="module")
def model(fit: Fit, dataset: InteractionDataset) -> SequentialPlugin:
    return fit(dataset)


def all_items(ds: InteractionDataset) -> CandidateSet:
    return CandidateSet(ds.item_ids, np.arange(ds.n_items))


def top(scores: np.ndarray, ds: InteractionDataset, exclude: tuple[str, ...] = ()) -> str:
    s = np.where(np.isin(ds.item_ids, exclude), -np.inf, np.nan_to_num(scores, nan=-np.inf))
    return str(ds.item_ids[int(np.argmax(s))])


def request(user: str | None, items: list[str], times: list[float] | None = None,
            ) -> RecommendationRequest:
    history = UserHistory(items, ["view"] * len(items), times or [])
    return RecommendationRequest(user, k=5, history=history)


def test_learns_the_chains_beyond_popularity(model: SequentialPlugin,
                                             dataset: InteractionDataset) -> None:
    candidates = all_items(dataset)
    pop = dataset.matrix.sum(axis=0).A1
    assert dataset.item_ids[np.argmax(pop)] == "hot"
    right = 0
    for item, nxt in SUCCESSOR.items():
        similar = model.recsdk_score_similar(item_id=item, candidates=candidates, catalog=None)
        after = model.recsdk_score(request=request("stranger", ["hot", item]),
                                   candidates=candidates)
        right += top(similar, dataset, (item,)) == nxt
        right += top(after, dataset, ("hot", item)) == nxt
    # popularity would answer "hot" (or one most-viewed chain item) for every item
    assert right >= 0.9 * 2 * len(SUCCESSOR)


def test_the_next_list_follows_the_last_click(model: SequentialPlugin,
                                              dataset: InteractionDataset) -> None:
    candidates = all_items(dataset)
    user = "u0"
    end = float(dataset.interactions["timestamp"].max())
    before = model.recsdk_score(request=request(user, []), candidates=candidates)
    batch = model.recsdk_score_users(user_ids=[user], candidates=candidates)[0]
    np.testing.assert_allclose(before, batch, rtol=1e-5)
    for item in ("c2i1", "c3i2"):
        after = model.recsdk_score(request=request(user, [item], [end + 60.0]),
                                   candidates=candidates)
        assert top(after, dataset, (item, "hot")) == SUCCESSOR[item]
        assert after[dataset.item_index[SUCCESSOR[item]]] > before[
            dataset.item_index[SUCCESSOR[item]]]
    # an event no newer than the training data is already in the training sequence
    old = model.recsdk_score(request=request(user, ["c2i1"], [0.0]), candidates=candidates)
    np.testing.assert_array_equal(old, before)


def test_a_history_longer_than_the_window_is_cut_to_its_newest_items(
        model: SequentialPlugin, dataset: InteractionDataset, fast: dict[str, Any]) -> None:
    candidates = all_items(dataset)
    window = fast["max_len"]
    long = [i for chain in CHAINS for i in chain] + ["c1i0", "c1i1", "c1i2"]
    assert len(long) > window
    seq = model.request_sequence("stranger", UserHistory(long, ["view"] * len(long)))
    assert len(seq) == window
    assert [dataset.item_ids[c] for c in seq] == long[-window:]
    full = model.recsdk_score(request=request("stranger", long), candidates=candidates)
    tail = model.recsdk_score(request=request("stranger", long[-window:]),
                              candidates=candidates)
    np.testing.assert_array_equal(full, tail)
    assert top(full, dataset, tuple(long[-3:])) == "c1i3"


def test_unseen_users_unknown_items_and_empty_histories(model: SequentialPlugin,
                                                        dataset: InteractionDataset) -> None:
    candidates = CandidateSet(np.array(["c0i2", "brand-new"], dtype=object),
                              np.array([dataset.item_index["c0i2"], -1]))
    got = model.recsdk_score(request=request("stranger", ["c0i1"]), candidates=candidates)
    assert np.isfinite(got[0]) and np.isnan(got[1])
    assert model.recsdk_score(request=request("stranger", []), candidates=candidates) is None
    assert model.recsdk_score(request=request("stranger", ["never-seen"]),
                              candidates=candidates) is None
    scores = model.recsdk_score_users(user_ids=["u1", "stranger"], candidates=candidates)
    assert np.isfinite(scores[0, 0]) and np.isnan(scores[0, 1]) and np.isnan(scores[1]).all()
    assert model.recsdk_score_similar(item_id="brand-new", candidates=candidates,
                                      catalog=None) is None


def test_negative_event_types_stay_out_of_the_sequences(
        model: SequentialPlugin, dataset: InteractionDataset, fast: dict[str, Any]) -> None:
    inter = dataset.interactions
    returned = inter.loc[inter["type"] == "return", "user"].unique()
    assert len(returned) > 0
    for code in returned[:5]:
        user = dataset.user_ids[code]
        views = inter[(inter["user"] == code) & (inter["type"] == "view")]
        np.testing.assert_array_equal(model.training_sequence(user),
                                      views["item"].to_numpy()[-fast["max_len"]:])


def test_same_seed_same_model_other_seed_other_model(
        dataset: InteractionDataset, fit: Fit, seed_params: dict[str, Any]) -> None:
    users = list(dataset.user_ids)
    a, b, c = (fit(dataset, seed, **seed_params).recsdk_score_users(
        user_ids=users, candidates=all_items(dataset)) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_state_round_trip_through_the_registry_gives_identical_scores(
        model: SequentialPlugin, dataset: InteractionDataset, registry: ModelRegistry,
        plugin_cls: type[SequentialPlugin], fast: dict[str, Any],
        other_arch: dict[str, Any]) -> None:
    name = plugin_cls.NAME
    run = registry.begin_run("cfg", [name])
    state = model.recsdk_save_state(artifacts=registry.writer(run, f"plugin:{name}"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = plugin_cls.from_config({**fast, **other_arch}, name)  # the saved shape wins
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        dataset.vocabulary_state()), artifacts=registry.reader(run, f"plugin:{name}"))
    assert loaded.arch_ == model.arch_
    candidates = all_items(dataset)
    users = [*list(dataset.user_ids), "stranger"]
    np.testing.assert_array_equal(model.recsdk_score_users(user_ids=users, candidates=candidates),
                                  loaded.recsdk_score_users(user_ids=users,
                                                            candidates=candidates))
    late = request("u3", ["c1i1", "c1i2"], [1e9, 1e9 + 1])
    np.testing.assert_array_equal(model.recsdk_score(request=late, candidates=candidates),
                                  loaded.recsdk_score(request=late, candidates=candidates))
    np.testing.assert_array_equal(
        model.recsdk_score_similar(item_id="c0i0", candidates=candidates, catalog=None),
        loaded.recsdk_score_similar(item_id="c0i0", candidates=candidates, catalog=None))


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                       plugin_cls: type[SequentialPlugin]) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    plugin = plugin_cls.from_config({}, plugin_cls.NAME)
    with pytest.raises(ConfigurationError, match=rf"plugins\.{plugin_cls.NAME} .*recsdk\[torch\]"):
        plugin.recsdk_configure(context=context())


def test_no_usable_events_names_the_plugin(dataset: InteractionDataset, fit: Fit,
                                           plugin_cls: type[SequentialPlugin]) -> None:
    with pytest.raises(ConfigurationError, match=rf"plugins\.{plugin_cls.NAME}: no interaction"):
        fit(dataset, event_types=["purchase"])
