"""Running a policy in the simulator for many episodes, logging every list it showed.

The log keeps what off-policy evaluation needs (slates, propensities, clicks, purchases,
rewards) and what regret needs (the true expected reward of the shown list and of the
best list for the immediate reward, both at the moment it was shown).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from recsdk.simulate.policies import Policy, top_k_positions
from recsdk.simulate.simulator import ShopSimulator


@dataclass(frozen=True)
class RunLog:
    """Arrays per step (one shown list) and per episode (one user's life).

    Per step: ``episode``, ``user``, ``visit``, ``step`` (list within the visit),
    ``slate`` and ``propensities`` (steps x slate_size), ``clicks`` and ``purchases``
    (bool, steps x slate_size), ``reward``, ``expected_reward`` (true, of the shown list)
    and ``oracle_expected_reward`` (true, of the best list for the immediate reward).
    Per episode: ``episode_user``, ``episode_reward``, ``episode_clicks``,
    ``episode_purchases``, ``episode_visits``, ``episode_steps`` and ``episode_churned``
    (the user left for good before the horizon).
    """

    episode: np.ndarray
    user: np.ndarray
    visit: np.ndarray
    step: np.ndarray
    slate: np.ndarray
    propensities: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray
    reward: np.ndarray
    expected_reward: np.ndarray
    oracle_expected_reward: np.ndarray
    episode_user: np.ndarray
    episode_reward: np.ndarray
    episode_clicks: np.ndarray
    episode_purchases: np.ndarray
    episode_visits: np.ndarray
    episode_steps: np.ndarray
    episode_churned: np.ndarray

    @property
    def n_steps(self) -> int:
        return len(self.reward)

    @property
    def n_episodes(self) -> int:
        return len(self.episode_reward)

    @property
    def regret(self) -> np.ndarray:
        """Per step, the true immediate expected reward lost to the best list."""
        return self.oracle_expected_reward - self.expected_reward

    def impressions(self) -> pd.DataFrame:
        """One row per shown item: ``request`` (the step's row number), ``episode``,
        ``user``, ``visit``, ``step``, ``position`` (1-based), ``item``, ``propensity``,
        ``click``, ``purchase``: the layout off-policy estimators read."""
        n, k = self.slate.shape
        return pd.DataFrame({
            "request": np.repeat(np.arange(n), k), "episode": np.repeat(self.episode, k),
            "user": np.repeat(self.user, k), "visit": np.repeat(self.visit, k),
            "step": np.repeat(self.step, k), "position": np.tile(np.arange(1, k + 1), n),
            "item": self.slate.ravel(), "propensity": self.propensities.ravel(),
            "click": self.clicks.ravel(), "purchase": self.purchases.ravel(),
        })

    def save(self, path: str | Path) -> None:
        """Write every array to a ``.npz`` file (no pickle)."""
        np.savez_compressed(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: str | Path) -> RunLog:
        """Read a log written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            missing = {f.name for f in fields(cls)} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not a RunLog: missing {sorted(missing)}")
            return cls(**{f.name: data[f.name] for f in fields(cls)})


def run_policy(sim: ShopSimulator, policy: Policy, n_episodes: int, seed: int = 0,
               oracle: bool = True) -> RunLog:
    """Run ``policy`` for ``n_episodes`` episodes, calling ``policy.update`` after every list.

    The simulator is reseeded with ``seed`` (so two policies run with one seed meet the
    same users in the same order) and the policy draws from its own generator seeded by
    ``seed``. ``oracle=False`` skips the true expected rewards (NaN in the log), which
    cost one pass over the candidates per step.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int | np.integer) \
            or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    sim.reseed(seed)
    rng = np.random.default_rng([seed, 2])
    k = sim.params.slate_size
    exam = sim.params.examination()
    rows: dict[str, list] = {name: [] for name in (
        "episode", "user", "visit", "step", "slate", "propensities", "clicks", "purchases",
        "reward", "expected_reward", "oracle_expected_reward")}
    per_episode: dict[str, list] = {name: [] for name in (
        "user", "reward", "clicks", "purchases", "visits", "steps", "churned")}
    for episode in range(n_episodes):
        obs = sim.reset()
        total = clicks = purchases = steps = 0
        while obs is not None:
            slate, propensities = policy.select(obs, k, rng)
            slate = np.asarray(slate)
            propensities = np.asarray(propensities, dtype=float)
            if propensities.shape != (k,):
                raise ValueError(f"{type(policy).__name__}.select returned propensities of "
                                 f"shape {propensities.shape}, expected ({k},)")
            if oracle:
                rewards = sim.item_rewards(obs, obs.candidates)
                best = float(exam @ rewards[top_k_positions(rewards, k)])
                shown = sim.expected_reward(obs, slate)
            else:
                best = shown = np.nan
            outcome = sim.step(slate)
            policy.update(obs, slate, outcome)
            for name, value in (("episode", episode), ("user", obs.user),
                                ("visit", obs.visit), ("step", obs.step), ("slate", slate),
                                ("propensities", propensities), ("clicks", outcome.clicks),
                                ("purchases", outcome.purchases), ("reward", outcome.reward),
                                ("expected_reward", shown), ("oracle_expected_reward", best)):
                rows[name].append(value)
            total += outcome.reward
            clicks += int(outcome.clicks.sum())
            purchases += int(outcome.purchases.sum())
            steps += 1
            last_obs, obs = obs, outcome.observation
        per_episode["user"].append(last_obs.user)
        per_episode["reward"].append(total)
        per_episode["clicks"].append(clicks)
        per_episode["purchases"].append(purchases)
        per_episode["visits"].append(last_obs.visit + 1)
        per_episode["steps"].append(steps)
        per_episode["churned"].append(not outcome.horizon_reached)
    return RunLog(
        episode=np.asarray(rows["episode"], np.int64), user=np.asarray(rows["user"], np.int64),
        visit=np.asarray(rows["visit"], np.int64), step=np.asarray(rows["step"], np.int64),
        slate=np.asarray(rows["slate"], np.int64).reshape(-1, k),
        propensities=np.asarray(rows["propensities"], float).reshape(-1, k),
        clicks=np.asarray(rows["clicks"], bool).reshape(-1, k),
        purchases=np.asarray(rows["purchases"], bool).reshape(-1, k),
        reward=np.asarray(rows["reward"], float),
        expected_reward=np.asarray(rows["expected_reward"], float),
        oracle_expected_reward=np.asarray(rows["oracle_expected_reward"], float),
        episode_user=np.asarray(per_episode["user"], np.int64),
        episode_reward=np.asarray(per_episode["reward"], float),
        episode_clicks=np.asarray(per_episode["clicks"], np.int64),
        episode_purchases=np.asarray(per_episode["purchases"], np.int64),
        episode_visits=np.asarray(per_episode["visits"], np.int64),
        episode_steps=np.asarray(per_episode["steps"], np.int64),
        episode_churned=np.asarray(per_episode["churned"], bool))
