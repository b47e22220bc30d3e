"""The ``two_tower`` plugin on a small synthetic shop (planted category preferences).

One model is trained per module (a few seconds on one CPU thread) on the shop minus one
product, which then "arrives" in the catalogue: the tests check that it learns more
than popularity, serves new items from content and new users from history, and
round-trips through the real artifact store.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from recsdk_plugins.two_tower import TwoTower

from recsdk.catalog import Catalog
from recsdk.config import Settings
from recsdk.data.synthetic import generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.errors import ConfigurationError
from recsdk.features.activity import unix_seconds
from recsdk.plugin_manager import BUILTIN_PLUGINS
from recsdk.types import (
    CandidateSet,
    PluginContext,
    RecommendationRequest,
    UserHistory,
)

WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 3.0, "purchase": 5.0, "rating": 0.0,
           "review": 0.0, "return": -5.0}
#: small and fast, still enough to learn the planted preferences
FAST: dict[str, Any] = {"dim": 16, "hidden": 32, "max_epochs": 16, "eval_every": 4,
                        "patience": 2, "batch_size": 128, "learning_rate": 0.01,
                        "history_window": 8, "history_dropout": 0.3,
                        "text_encoder": "tfidf", "num_threads": 1, "refit": False}
SEED = 5


def context(catalog: Catalog | None = None, seed: int = SEED) -> PluginContext:
    settings = Settings(seed=seed, device="cpu", event_weights=WEIGHTS)
    return PluginContext(settings=settings, seed=seed, device_setting="cpu", catalog=catalog)


def fit(dataset: InteractionDataset, seed: int = SEED, **params: Any) -> TwoTower:
    plugin = TwoTower.from_config({**FAST, **params}, "two_tower")
    ctx = context(dataset.catalog, seed)
    plugin.recsdk_configure(context=ctx)
    plugin.recsdk_fit(dataset=dataset, context=ctx)
    return plugin


def request(user: str | None, items: list[str], catalog: Catalog,
            timestamps: list[float] | None = None) -> RecommendationRequest:
    history = UserHistory(items, ["purchase"] * len(items), timestamps or [])
    return RecommendationRequest(user_id=user, k=10, history=history, catalog=catalog)


@pytest.fixture(scope="module")
def shop() -> dict[str, Any]:
    """The shop, the held-back product, a train/test split and the fitted model."""
    pytest.importorskip("torch")
    data = generate_shop(5000, seed=2)
    full = Catalog.from_frames(data.items, data.categories)
    events = data.events.astype({"user_id": str, "item_id": str, "type": str})
    events["timestamp"] = unix_seconds(events["timestamp"])
    events = events[["user_id", "item_id", "type", "timestamp"]]
    counts = events["item_id"].value_counts()
    new_item = str(counts.index[len(counts) // 3])  # a product with some demand
    kept = events[events["item_id"] != new_item]
    rng = np.random.default_rng(0)
    pairs = kept[["user_id", "item_id"]].drop_duplicates()
    test_mask = rng.random(len(pairs)) < 0.2
    test = pairs[test_mask]
    train = kept.merge(pairs[~test_mask], on=["user_id", "item_id"])
    old = Catalog.from_frames(data.items[data.items["id"] != new_item], data.categories)
    dataset = InteractionDataset.from_frame(train, old, WEIGHTS)
    return {"data": data, "full": full, "old": old, "dataset": dataset, "test": test,
            "train": train, "new_item": new_item, "plugin": fit(dataset)}


def candidates_of(ids: list[str], dataset: InteractionDataset) -> CandidateSet:
    return CandidateSet(np.asarray(ids, dtype=object), dataset.item_codes(ids))


def all_items(dataset: InteractionDataset) -> CandidateSet:
    return CandidateSet(dataset.item_ids, np.arange(dataset.n_items))


def ndcg10(scores: np.ndarray, dataset: InteractionDataset, test: pd.DataFrame,
           users: list[str]) -> float:
    seen = dataset.matrix[dataset.user_codes(users)]
    out = []
    for row, user in enumerate(users):
        s = np.where(np.isfinite(scores[row]), scores[row], -np.inf)
        s[seen[row].indices] = -np.inf
        top = np.argsort(-s, kind="stable")[:10]
        truth = set(dataset.item_codes(test.loc[test["user_id"] == user, "item_id"]))
        gains = [1 / np.log2(r + 2) for r, c in enumerate(top) if c in truth]
        ideal = sum(1 / np.log2(r + 2) for r in range(min(len(truth), 10)))
        out.append(sum(gains) / ideal)
    return float(np.mean(out))


def test_registered_as_a_builtin_plugin():
    assert BUILTIN_PLUGINS["two_tower"] == "recsdk_plugins.two_tower:TwoTower"


def test_learns_better_than_popularity(shop):
    dataset, test, plugin = shop["dataset"], shop["test"], shop["plugin"]
    users = sorted(set(test["user_id"]) & set(dataset.user_ids))
    scores = plugin.recsdk_score_users(user_ids=users, candidates=all_items(dataset))
    popularity = np.asarray(dataset.matrix.astype(bool).sum(axis=0)).ravel().astype(float)
    learned = ndcg10(scores, dataset, test, users)
    popular = ndcg10(np.tile(popularity, (len(users), 1)), dataset, test, users)
    assert learned > popular * 1.3, (learned, popular)
    assert plugin.report_ is not None and plugin.report_.seconds_per_epoch > 0


def test_same_seed_same_model_other_seed_another(shop):
    dataset = shop["dataset"]
    again = fit(dataset, max_epochs=2, validation_share=0.0)
    same = fit(dataset, max_epochs=2, validation_share=0.0)
    other = fit(dataset, seed=SEED + 1, max_epochs=2, validation_share=0.0)
    assert np.array_equal(again.item_vectors_, same.item_vectors_)
    assert np.array_equal(again.user_vectors_, same.user_vectors_)
    assert not np.allclose(again.item_vectors_, other.item_vectors_)


def test_the_weight_average_is_served_only_when_ema_decay_is_set(shop):
    dataset = shop["dataset"]
    assert TwoTower.from_config({}, "two_tower").params["ema_decay"] == 0.99
    averaged = fit(dataset, max_epochs=2, validation_share=0.0)
    plain = fit(dataset, max_epochs=2, validation_share=0.0, ema_decay=0.0)
    assert not np.allclose(averaged.item_vectors_, plain.item_vectors_)
    # the served network is the frozen average, not the trained one
    assert all(not w.requires_grad for w in averaged.net_.parameters())
    assert all(w.requires_grad for w in plain.net_.parameters())


def test_a_product_added_after_training_is_scored_from_its_content(shop):
    dataset, plugin, full = shop["dataset"], shop["plugin"], shop["full"]
    new_item = shop["new_item"]
    assert new_item not in dataset.item_index
    leaf = full.category_of(new_item)
    same_leaf = [str(i) for i in full.ids if full.category_of(str(i)) == leaf
                 and str(i) != new_item and str(i) in dataset.item_index]
    # a user (never seen) who bought the other products of its leaf
    req = request(None, same_leaf, full)
    ids = [str(i) for i in full.ids]
    scores = plugin.recsdk_score(request=req, candidates=candidates_of(ids, dataset))
    position = ids.index(new_item)
    assert np.isfinite(scores[position])
    department = leaf.split("/")[0]
    elsewhere = np.array([str(full.category_of(i)).split("/")[0] != department
                          for i in ids])
    # above nine in ten products of other departments
    assert (scores[elsewhere] < scores[position]).mean() > 0.9
    similar = plugin.recsdk_score_similar(item_id=new_item,
                                          candidates=candidates_of(ids, dataset),
                                          catalog=full)
    in_leaf = np.array([full.category_of(i) == leaf and i != new_item for i in ids])
    assert np.nanmean(similar[in_leaf]) > np.nanmean(similar[elsewhere])
    # an id the catalogue does not know either: NaN, not an error
    unknown = plugin.recsdk_score(request=req, candidates=candidates_of(["nope"], dataset))
    assert np.isnan(unknown).all()


def test_catalogue_items_never_trained_on_are_embedded_from_content(shop):
    """Items in the vocabulary with no training interaction (held-out items of an item
    cold-start protocol) use no id embedding and are scored."""
    data, train = shop["data"], shop["train"]
    held = set(map(str, data.items["id"].iloc[::10]))
    rest = train[~train["item_id"].isin(held)]
    dataset = InteractionDataset.from_frame(rest, shop["full"], WEIGHTS)
    plugin = fit(dataset, max_epochs=4, validation_share=0.0)
    codes = dataset.item_codes(sorted(held))
    assert not plugin.has_id_[codes].any()
    users = list(dataset.user_ids[:20])
    scores = plugin.recsdk_score_users(user_ids=users, candidates=all_items(dataset))
    assert np.isfinite(scores[:, codes]).all()


def test_an_unseen_user_is_served_from_history(shop):
    dataset, plugin, full = shop["dataset"], shop["plugin"], shop["full"]
    leaf_of = np.array([str(full.category_of(str(i))) for i in dataset.item_ids])
    wins, percentiles = [], []
    for leaf in sorted(set(leaf_of)):
        leaf_items = [str(i) for i in dataset.item_ids[leaf_of == leaf]]
        if len(leaf_items) < 4:
            continue
        scores = plugin.recsdk_score(request=request("somebody-new", leaf_items[:2], full),
                                     candidates=all_items(dataset))
        assert scores is not None and np.isfinite(scores).all()
        # preferences are planted per leaf: the leaf's other products should outscore
        # the rest of the catalogue
        same = np.isin(dataset.item_ids, leaf_items[2:])
        others = leaf_of != leaf
        wins.append(scores[same].mean() > scores[others].mean())
        percentiles.append((scores[others][None, :] < scores[same][:, None]).mean())
    assert len(wins) > 20
    assert np.mean(wins) > 0.8 and np.mean(percentiles) > 0.7, (np.mean(wins),
                                                               np.mean(percentiles))
    assert plugin.recsdk_score(request=request("somebody-new", [], full),
                               candidates=all_items(dataset)) is None


def test_new_events_of_a_known_user_change_the_vector(shop):
    dataset, plugin, full = shop["dataset"], shop["plugin"], shop["full"]
    user = str(dataset.user_ids[0])
    stored = plugin.recsdk_score(request=request(user, [], full), candidates=all_items(dataset))
    assert np.allclose(stored, plugin.recsdk_score_users(
        user_ids=[user], candidates=all_items(dataset))[0])
    later = plugin.data_end_ + 60.0
    item = str(dataset.item_ids[-1])
    moved = plugin.recsdk_score(request=request(user, [item], full, [later]),
                                candidates=all_items(dataset))
    assert not np.allclose(stored, moved)


def test_a_history_longer_than_the_window_is_cut_to_its_newest_items(shop):
    dataset, plugin, full = shop["dataset"], shop["plugin"], shop["full"]
    window = FAST["history_window"]
    items = [str(i) for i in dataset.item_ids[: 4 * window]]
    long = plugin.recsdk_score(request=request(None, items, full),
                               candidates=all_items(dataset))
    newest = plugin.recsdk_score(request=request(None, items[-window:], full),
                                 candidates=all_items(dataset))
    assert np.allclose(long, newest)


def test_state_round_trip_through_the_registry_gives_identical_scores(shop, registry):
    dataset, full = shop["dataset"], shop["full"]
    plugin = fit(dataset, max_epochs=3, validation_share=0.0, index="hnsw")
    run = registry.begin_run("cfg", ["two_tower"])
    state = plugin.recsdk_save_state(artifacts=registry.writer(run, "plugin:two_tower"))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    loaded = TwoTower.from_config({**FAST, "max_epochs": 3, "validation_share": 0.0,
                                   "index": "hnsw"}, "two_tower")
    loaded.recsdk_configure(context=context())
    loaded.recsdk_load_state(state=state, dataset=InteractionDataset.from_vocabulary(
        dataset.vocabulary_state()), artifacts=registry.reader(run, "plugin:two_tower"))
    users = list(dataset.user_ids)
    candidates = all_items(dataset)
    assert np.array_equal(plugin.recsdk_score_users(user_ids=users, candidates=candidates),
                          loaded.recsdk_score_users(user_ids=users, candidates=candidates))
    ids = [str(i) for i in full.ids]
    for req in (request(None, ids[:5], full), request(users[1], [shop["new_item"]], full,
                                                      [plugin.data_end_ + 1.0])):
        assert np.array_equal(
            plugin.recsdk_score(request=req, candidates=candidates_of(ids, dataset)),
            loaded.recsdk_score(request=req, candidates=candidates_of(ids, dataset)))
        got = loaded.recsdk_retrieve_candidates(request=req, n=20)
        assert got is not None and len(got.ids) == 20
        assert got == plugin.recsdk_retrieve_candidates(request=req, n=20)


@pytest.mark.parametrize(("params", "named"), [
    ({"temperature": 0}, "temperature"), ({"dim": 0}, "dim"),
    ({"id_dropout": 1.0}, "id_dropout"), ({"text_encoder": "bert"}, "text_encoder"),
    ({"history_window": 0}, "history_window"), ({"batch_size": 1}, "batch_size"),
    ({"towers": 3}, "towers"), ({"hnsw_ef_growth": -0.5}, "hnsw_ef_growth"),
    ({"hnsw_ef_growth": 2}, "hnsw_ef_growth"), ({"hnsw_ef_growth": "fast"}, "hnsw_ef_growth"),
    ({"ema_decay": 1.0}, "ema_decay"), ({"ema_decay": -0.1}, "ema_decay"),
])
def test_bad_parameters_are_refused_by_name(params, named):
    with pytest.raises(ConfigurationError, match=named):
        TwoTower.from_config(params, "two_tower")


def test_without_torch_configure_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    plugin = TwoTower.from_config({}, "two_tower")
    with pytest.raises(ConfigurationError, match=r"recsdk\[torch\]"):
        plugin.recsdk_configure(context=context())
