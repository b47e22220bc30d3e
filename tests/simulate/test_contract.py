"""The simulator follows its contract: types, shapes, seeding and clear errors."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.simulate import (
    Observation,
    OraclePolicy,
    Outcome,
    RandomPolicy,
    RunLog,
    ShopSimulator,
    SimulatorParams,
    run_policy,
)


def test_observation_and_outcome_follow_the_contract(sim: ShopSimulator) -> None:
    obs = sim.reset()
    assert isinstance(obs, Observation)
    assert (obs.visit, obs.step) == (0, 0) and 0 <= obs.user < sim.n_users
    assert obs.interest.shape == (sim.n_leaves,)
    assert obs.interest.sum() == pytest.approx(1.0) or obs.interest.sum() == 0
    assert np.array_equal(obs.candidates, np.arange(sim.n_items))
    assert not obs.history.flags.writeable
    assert len(sim.item_ids) == sim.n_items and len(sim.user_ids) == sim.n_users
    assert sim.item_price.shape == sim.item_leaf.shape == (sim.n_items,)
    assert sim.item_popularity.sum() == pytest.approx(1.0)
    outcome = sim.step(np.arange(10))
    assert isinstance(outcome, Outcome)
    assert outcome.clicks.shape == outcome.purchases.shape == (10,)
    assert outcome.clicks.dtype == outcome.purchases.dtype == bool
    assert not (outcome.purchases & ~outcome.clicks).any()
    price = sim.item_price[:10]
    assert outcome.reward == pytest.approx(outcome.clicks.sum()
                                           + price[outcome.purchases].sum())
    if outcome.churned:
        assert outcome.observation is None and outcome.visit_over
    else:
        nxt = outcome.observation
        assert (nxt.visit, nxt.step) == ((1, 0) if outcome.visit_over else (0, 1))
        clicked = np.arange(10)[outcome.clicks]
        assert np.array_equal(nxt.history[len(obs.history):], clicked)


def test_a_seed_gives_the_same_run(shop: SyntheticShop) -> None:
    a = run_policy(ShopSimulator(shop, seed=5), RandomPolicy(), 30, seed=7)
    b = run_policy(ShopSimulator(shop, seed=9), RandomPolicy(), 30, seed=7)
    c = run_policy(ShopSimulator(shop, seed=5), RandomPolicy(), 30, seed=8)
    for name in ("user", "slate", "clicks", "purchases", "reward", "expected_reward"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.episode_user, c.episode_user)


def test_run_log_shapes_and_totals(sim: ShopSimulator) -> None:
    log = run_policy(sim, OraclePolicy(sim), 25, seed=1)
    k = sim.params.slate_size
    assert log.n_episodes == 25 and log.slate.shape == log.propensities.shape == (log.n_steps, k)
    assert log.clicks.shape == log.purchases.shape == (log.n_steps, k)
    for name in ("episode", "user", "visit", "step", "reward", "expected_reward",
                 "oracle_expected_reward"):
        assert getattr(log, name).shape == (log.n_steps,)
    totals = np.bincount(log.episode, weights=log.reward, minlength=25)
    assert np.allclose(totals, log.episode_reward)
    assert np.array_equal(np.bincount(log.episode, minlength=25), log.episode_steps)
    assert np.array_equal(log.episode_purchases,
                          np.bincount(log.episode, weights=log.purchases.sum(axis=1)))
    visits = np.array([log.visit[log.episode == e].max() + 1 for e in range(25)])
    assert np.array_equal(visits, log.episode_visits)
    assert (log.episode_visits <= sim.params.horizon_visits).all()
    assert (log.step < sim.params.lists_per_visit).all()
    assert np.allclose(log.regret, 0.0)  # the oracle shows the best list
    assert (log.propensities == 1.0).all()


def test_a_purchase_can_be_worth_a_constant(shop: SyntheticShop) -> None:
    sim = ShopSimulator(shop, SimulatorParams(purchase_value=3.0, click_value=0.5), seed=2)
    log = run_policy(sim, OraclePolicy(sim), 40, seed=2)
    expected = 0.5 * log.clicks.sum(axis=1) + 3.0 * log.purchases.sum(axis=1)
    assert log.purchases.any() and np.allclose(log.reward, expected)


@pytest.mark.parametrize(("slate", "message"), [
    (np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 8]), "distinct; repeated: \\[8\\]"),
    (np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10**6]), "must lie in \\[0, 300\\), got \\[1000000\\]"),
    (np.array([-1, 1, 2, 3, 4, 5, 6, 7, 8, 9]), "must lie in"),
    (np.arange(9), "slate_size=10 item indices, got shape \\(9,\\)"),
    (np.arange(10).reshape(2, 5), "got shape \\(2, 5\\)"),
    (np.arange(10, dtype=float), "integer item indices"),
])
def test_bad_slates_are_refused(sim: ShopSimulator, slate: np.ndarray, message: str) -> None:
    obs = sim.reset(3)
    with pytest.raises(ValueError, match=message):
        sim.step(slate)
    with pytest.raises(ValueError, match=message):
        sim.expected_reward(obs, slate)


def test_slates_must_come_from_the_candidates(sim: ShopSimulator) -> None:
    sim.set_candidates(np.arange(20, 60))
    obs = sim.reset(0)
    assert np.array_equal(obs.candidates, np.arange(20, 60))
    with pytest.raises(ValueError, match="not among the candidates: \\[0, 1\\]"):
        sim.step(np.r_[0, 1, np.arange(20, 28)])
    slate, _ = RandomPolicy().select(obs, 10, np.random.default_rng(0))
    assert np.isin(slate, obs.candidates).all()
    sim.step(slate)
    with pytest.raises(ValueError, match="at least slate_size=10 distinct items, got 3"):
        sim.set_candidates([1, 2, 2, 3])
    sim.set_candidates(None)
    assert len(sim.reset().candidates) == sim.n_items


def test_misuse_is_refused(shop: SyntheticShop, sim: ShopSimulator) -> None:
    with pytest.raises(RuntimeError, match="call reset"):
        sim.step(np.arange(10))
    with pytest.raises(ValueError, match="user must be an index in \\[0, 500\\), got 500"):
        sim.reset(500)
    obs = sim.reset(1)
    sim.step(np.arange(10))
    if sim.observation is not None:
        with pytest.raises(ValueError, match="only known for the current observation"):
            sim.click_probabilities(obs, np.arange(3))
    with pytest.raises(ValueError, match="slate_size must be a positive integer"):
        SimulatorParams(slate_size=0)
    with pytest.raises(ValueError, match="satiety_decay must lie in \\[0, 1\\]"):
        SimulatorParams(satiety_decay=1.5)
    with pytest.raises(ValueError, match='purchase_value must be "price" or a number'):
        SimulatorParams(purchase_value="cost")
    with pytest.raises(ValueError, match="slate_size 400 exceeds the 300 items"):
        ShopSimulator(shop, SimulatorParams(slate_size=400))
    with pytest.raises(TypeError, match="needs a SyntheticShop"):
        ShopSimulator(shop.events)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_episodes must be a positive integer"):
        run_policy(sim, RandomPolicy(), 0, seed=0)


def test_a_streamed_shop_gives_the_same_truth() -> None:
    streamed = ShopSimulator(generate_shop(8_000, seed=4, materialize=False)).truth
    held = ShopSimulator(generate_shop(8_000, seed=4)).truth
    assert len(held.history) > 0
    assert np.array_equal(streamed.history, held.history)
    assert np.array_equal(streamed.history_ptr, held.history_ptr)
    assert np.allclose(streamed.popularity, held.popularity)


def test_a_policy_with_bad_propensities_is_named(sim: ShopSimulator) -> None:
    class Broken(RandomPolicy):
        def select(self, obs: Observation, k: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            return super().select(obs, k, rng)[0], np.ones(k - 1)

    with pytest.raises(ValueError, match=re.escape(
            "Broken.select returned propensities of shape (9,), expected (10,)")):
        run_policy(sim, Broken(), 1, seed=0)


def test_a_run_log_saves_loads_and_lists_impressions(sim: ShopSimulator,
                                                     tmp_path: Path) -> None:
    log = run_policy(sim, RandomPolicy(), 5, seed=3)
    log.save(tmp_path / "run.npz")
    again = RunLog.load(tmp_path / "run.npz")
    for f in fields(RunLog):
        assert np.array_equal(getattr(again, f.name), getattr(log, f.name), equal_nan=True)
    frame = log.impressions()
    assert len(frame) == log.n_steps * sim.params.slate_size
    assert frame["click"].sum() == log.clicks.sum()
    row = frame.iloc[sim.params.slate_size + 2]  # second list, third position
    assert (row["request"], row["position"], row["item"]) == (1, 3, log.slate[1, 2])
    np.savez(tmp_path / "other.npz", reward=np.zeros(3))
    with pytest.raises(ValueError, match="is not a RunLog: missing"):
        RunLog.load(tmp_path / "other.npz")
