"""Speed of the shop simulator (recsdk.simulate) and what its baseline policies earn.

1. Speed, on one core, for synthetic shops of growing size (``--events``; items are
   events / 100, users events / 40):

   * ``step only``: ``reset`` + ``step`` with one fixed list, no policy: the response
     model alone;
   * ``random``: ``run_policy`` with RandomPolicy, ``oracle=False`` (no truth computed);
   * ``epsilon-greedy + regret``: ``run_policy`` with EpsilonGreedyPolicy(0.1) and the
     true expected rewards logged for regret (``oracle=True``, the default), which costs
     one pass over every candidate per list.

   Figures are episodes and lists (steps) per second, the best of ``--repeat`` runs of
   ``--episodes`` episodes.

2. Baselines on the first shop, default SimulatorParams: per policy, the mean lifetime
   reward per user (with its standard error), clicks, purchases, visits, and the true
   expected reward of the first list shown (what a myopic judge would rank by), all
   over the same ``--baseline-episodes`` users (one seed).

Every random process is seeded (``--seed``).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/simulator_speed.py \
        [--events 20000 200000 1000000] [--episodes 1000] [--baseline-episodes 3000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

from recsdk.data.synthetic import generate_shop
from recsdk.simulate import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    MyopicPolicy,
    OraclePolicy,
    Policy,
    PopularityPolicy,
    RandomPolicy,
    ShopSimulator,
    run_policy,
)


def step_only(sim: ShopSimulator, n_episodes: int) -> tuple[int, float]:
    """Episodes of one fixed list shown again and again: (steps, seconds)."""
    slate = np.arange(sim.params.slate_size)
    sim.reseed(0)
    steps = 0
    start = time.perf_counter()
    for _ in range(n_episodes):
        sim.reset()
        while True:
            steps += 1
            if sim.step(slate).observation is None:
                break
    return steps, time.perf_counter() - start


def timed_run(sim: ShopSimulator, make_policy: Callable[[ShopSimulator], Policy],
              n_episodes: int, seed: int,
              oracle: bool) -> tuple[int, float]:
    policy = make_policy(sim)
    start = time.perf_counter()
    log = run_policy(sim, policy, n_episodes, seed=seed, oracle=oracle)
    return log.n_steps, time.perf_counter() - start


def speed(events: list[int], n_episodes: int, repeat: int, seed: int) -> None:
    print("| shop (events / users / items) | run | episodes/s | lists/s | lists per episode |")
    print("|---|---|---|---|---|")
    for n_events in events:
        shop = generate_shop(n_events, seed=seed)
        sim = ShopSimulator(shop, seed=seed)
        label = f"{n_events:,} / {sim.n_users:,} / {sim.n_items:,}"
        runs = {
            "step only": lambda s=sim: step_only(s, n_episodes),
            "random": lambda s=sim: timed_run(s, lambda _: RandomPolicy(), n_episodes, seed,
                                              False),
            "epsilon-greedy + regret": lambda s=sim: timed_run(
                s, lambda x: EpsilonGreedyPolicy(x, 0.1), n_episodes, seed, True),
        }
        for name, run in runs.items():
            best = min((run() for _ in range(repeat)), key=lambda r: r[1])
            steps, seconds = best
            print(f"| {label} | {name} | {n_episodes / seconds:,.0f} | {steps / seconds:,.0f} "
                  f"| {steps / n_episodes:.1f} |")


def baselines(n_events: int, n_episodes: int, seed: int) -> None:
    sim = ShopSimulator(generate_shop(n_events, seed=seed), seed=seed)
    policies = {
        "random": lambda: RandomPolicy(),
        "popularity": lambda: PopularityPolicy(sim),
        "myopic (learned click model)": lambda: MyopicPolicy(sim),
        "greedy (learned, per top leaf)": lambda: GreedyPolicy(sim),
        "epsilon-greedy 0.1": lambda: EpsilonGreedyPolicy(sim, 0.1),
        "oracle (true immediate reward)": lambda: OraclePolicy(sim),
        "oracle, at most 3 per leaf": lambda: OraclePolicy(sim, max_per_leaf=3),
    }
    print(f"\nBaselines: {n_events:,}-event shop (seed {seed}), {n_episodes:,} users each, "
          "default SimulatorParams\n")
    print("| policy | lifetime reward | ± s.e. | clicks | purchases | visits | lists "
          "| first list E[reward] |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make in policies.items():
        log = run_policy(sim, make(), n_episodes, seed=seed)
        first = log.expected_reward[(log.visit == 0) & (log.step == 0)].mean()
        se = log.episode_reward.std(ddof=1) / np.sqrt(n_episodes)
        print(f"| {name} | {log.episode_reward.mean():.1f} | {se:.1f} "
              f"| {log.episode_clicks.mean():.2f} | {log.episode_purchases.mean():.2f} "
              f"| {log.episode_visits.mean():.2f} | {log.episode_steps.mean():.1f} "
              f"| {first:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--baseline-episodes", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    speed(args.events, args.episodes, args.repeat, args.seed)
    baselines(args.events[0], args.baseline_episodes, args.seed)


if __name__ == "__main__":
    main()
