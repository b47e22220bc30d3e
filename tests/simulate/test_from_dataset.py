"""A simulator calibrated from logged data, without the planted truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsdk.catalog import Catalog
from recsdk.data.synthetic import SyntheticShop
from recsdk.dataset import InteractionDataset
from recsdk.simulate import (
    OraclePolicy,
    RandomPolicy,
    ShopSimulator,
    SimulatorParams,
    run_policy,
)


@pytest.fixture(scope="module")
def dataset(shop: SyntheticShop) -> InteractionDataset:
    catalog = Catalog.from_frames(shop.items, shop.categories)
    return InteractionDataset.from_frame(shop.events, catalog=catalog)


def test_calibrated_simulator_runs_and_follows_the_contract(
        dataset: InteractionDataset) -> None:
    sim = ShopSimulator.from_dataset(dataset, seed=1)
    assert (sim.n_users, sim.n_items) == (dataset.n_users, dataset.n_items)
    assert list(sim.item_ids) == list(dataset.item_ids)
    assert sim.n_leaves == dataset.catalog.frame["category_id"].nunique()
    assert np.allclose(sim.item_price, dataset.catalog.price[
        dataset.catalog.positions(sim.item_ids)])
    assert sim.item_popularity.sum() == pytest.approx(1.0)
    prefs = sim.truth.preferences
    totals = np.asarray(prefs.sum(axis=1)).ravel()
    assert np.allclose(totals[totals > 0], 1.0)
    assert ((sim.truth.appeal > 0) & (sim.truth.appeal <= 1)).all()
    oracle = run_policy(sim, OraclePolicy(sim), 60, seed=2)
    random = run_policy(sim, RandomPolicy(), 60, seed=2)
    assert oracle.episode_reward.mean() > random.episode_reward.mean()
    again = run_policy(ShopSimulator.from_dataset(dataset, seed=1), RandomPolicy(), 60, seed=2)
    assert np.array_equal(again.clicks, random.clicks)


def test_estimated_preferences_find_the_planted_ones(shop: SyntheticShop,
                                                     dataset: InteractionDataset) -> None:
    planted = ShopSimulator(shop).truth
    estimated = ShopSimulator.from_dataset(dataset).truth
    assert list(planted.leaf_ids) == list(estimated.leaf_ids)
    order = pd.Index(estimated.user_ids).get_indexer(planted.user_ids)
    events = np.r_[np.bincount(dataset.interactions["user"], minlength=dataset.n_users), 0]
    active = events[order] >= 60  # order -1 (a user without events) reads the 0 appended
    top_planted = planted.preferences.toarray()[active].argmax(axis=1)
    top_estimated = estimated.preferences.toarray()[order[active]].argmax(axis=1)
    assert active.sum() > 50 and (top_planted == top_estimated).mean() > 0.75
    # appeal from counts follows the planted Zipf weights within leaves
    item_order = pd.Index(estimated.item_ids).get_indexer(planted.item_ids)
    corr = np.corrcoef(np.log(planted.appeal), np.log(estimated.appeal[item_order]))[0, 1]
    assert corr > 0.5


def test_history_comes_from_clicks_oldest_first(dataset: InteractionDataset) -> None:
    sim = ShopSimulator.from_dataset(dataset)
    inter = dataset.interactions
    user = int(inter["user"].value_counts().index[0])
    obs = sim.reset(user)
    mine = inter[(inter["user"] == user) & (inter["type"] == "click")].sort_values("timestamp")
    assert np.array_equal(obs.history, mine["item"].to_numpy())
    counts = np.bincount(sim.item_leaf[obs.history], minlength=sim.n_leaves)
    assert np.allclose(obs.interest, counts / counts.sum())


def test_a_dataset_without_catalogue_or_event_types_still_calibrates() -> None:
    events = pd.DataFrame({"user_id": ["a", "a", "b", "c", "c", "c"],
                           "item_id": ["x", "y", "x", "y", "z", "w"]})
    dataset = InteractionDataset.from_frame(events)
    sim = ShopSimulator.from_dataset(dataset, SimulatorParams(slate_size=2))
    assert sim.n_leaves == 1 and (sim.item_price == 1.0).all()
    obs = sim.reset(0)
    assert list(obs.history) == [list(sim.item_ids).index("x"), list(sim.item_ids).index("y")]
    sim.step(np.array([0, 1]))


def test_bad_datasets_are_refused(shop: SyntheticShop) -> None:
    with pytest.raises(TypeError, match="needs an InteractionDataset, got DataFrame"):
        ShopSimulator.from_dataset(shop.events)  # type: ignore[arg-type]
    empty = InteractionDataset.from_frame(pd.DataFrame({"user_id": [], "item_id": []}))
    with pytest.raises(ValueError, match="needs users and items, got 0 users and 0 items"):
        ShopSimulator.from_dataset(empty)
