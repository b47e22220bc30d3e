"""``qlearning`` against a myopic policy and popularity in the shop simulator.

The plugin trains as it does in ``recsdk train``: on a simulator calibrated from the
synthetic shop's logged events (``ShopSimulator.from_dataset``, seeded with the run's
seed). It is then judged, frozen (it does not learn while judged), next to
``MyopicPolicy`` (highest predicted click, a click model from the logs refined online
from feedback) and ``PopularityPolicy``, in two simulators: the one built from the
shop's planted truth (``ShopSimulator(shop)``, "planted": a world the policy was not
trained in, the headline figure) and the calibrated one it trained in, with other
users and responses ("calibrated": how much of the gain survives the move shows what
the calibration gap costs). The figure is the long-term reward per
simulated user (clicks plus purchases at their price over every visit until the user
churns), averaged over ``--users`` users per seed.

Protocol: the model (tabular or DQN) is chosen on ``--validation-seeds`` seeds
(1000, 1001, ...) that are never used for the figures; then for each of ``--seeds``
evaluation seeds (0, 1, ...) the chosen model is trained with that seed and all three
policies meet the same users (``run_policy`` with that seed). Per seed the three means
are paired, so the test is a one-sided paired t-test across seeds
(``scipy.stats.ttest_rel``, H1: qlearning > myopic), with the Wilcoxon signed-rank test
as a check that does not assume normal differences.

    python benchmarks/qlearning_simulator.py            # the documented run
    python benchmarks/qlearning_simulator.py --seeds 3 --validation-seeds 1 --users 100
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from scipy import stats

from recsdk.catalog import Catalog
from recsdk.config import DEFAULT_EVENT_WEIGHTS, Settings
from recsdk.data.synthetic import SyntheticShop, generate_shop
from recsdk.dataset import InteractionDataset
from recsdk.simulate import MyopicPolicy, PopularityPolicy, ShopSimulator, run_policy
from recsdk.types import PluginContext

VALIDATION_BASE = 1000


def shop_dataset(shop: SyntheticShop) -> InteractionDataset:
    """The shop's logged events as recsdk's training data, with its catalogue."""
    catalog = Catalog.from_frames(shop.items, shop.categories)
    events = shop.events.astype({"user_id": str, "item_id": str, "type": str})
    return InteractionDataset.from_frame(events, catalog=catalog,
                                         event_weights=DEFAULT_EVENT_WEIGHTS)


def train(dataset: InteractionDataset, params: dict[str, Any], seed: int) -> tuple[Any, float]:
    """A fitted ``qlearning`` plugin and its training seconds."""
    from recsdk_plugins.qlearning import QLearning

    plugin = QLearning.from_config(params, "qlearning")
    context = PluginContext(settings=Settings(seed=seed, device="cpu"), seed=seed,
                            device_setting="cpu")
    plugin.recsdk_configure(context=context)
    start = time.perf_counter()
    plugin.recsdk_fit(dataset=dataset, context=context)
    return plugin, time.perf_counter() - start


def q_policy(plugin: Any, sim: ShopSimulator) -> Any:
    from recsdk_plugins.qlearning.policy import MatchedPolicy, QPolicy

    return MatchedPolicy(QPolicy(plugin.encoder_, plugin.learner_,
                                 pool=int(plugin.params["pool"])), sim)


def reward_per_user(sim: ShopSimulator, policy: Any, users: int, seed: int) -> float:
    return float(run_policy(sim, policy, users, seed=seed, oracle=False).episode_reward.mean())


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its 95% t interval."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--shop-seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--validation-seeds", type=int, default=2)
    parser.add_argument("--users", type=int, default=1000, help="simulated users per seed")
    parser.add_argument("--episodes", type=int, default=5000, help="tabular training users")
    parser.add_argument("--dqn-episodes", type=int, default=1000,
                        help="DQN training users (slower per user)")
    parser.add_argument("--models", default="tabular,dqn")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    shop = generate_shop(args.events, seed=args.shop_seed)
    dataset = shop_dataset(shop)
    judge = ShopSimulator(shop)
    print(f"shop: {args.events} events, {len(shop.users)} users, {len(shop.items)} items, "
          f"{judge.n_leaves} leaves; {args.users} simulated users per seed")
    # the candidates the validation seeds choose from
    grid = {"tabular gamma=0.9": {"model": "tabular", "episodes": args.episodes,
                                  "gamma": 0.9},
            "tabular gamma=0.5": {"model": "tabular", "episodes": args.episodes,
                                  "gamma": 0.5},
            # gamma 0: a learned immediate-reward (myopic) table, the ablation
            "tabular gamma=0": {"model": "tabular", "episodes": args.episodes, "gamma": 0.0},
            "dqn": {"model": "dqn", "episodes": args.dqn_episodes, "num_threads": 1}}
    models = {m: p for m, p in grid.items() if p["model"] in args.models.split(",")}

    validation: dict[str, list[float]] = {m: [] for m in models}
    for i in range(args.validation_seeds):
        seed = VALIDATION_BASE + i
        for name, params in models.items():
            plugin, seconds = train(dataset, params, seed)
            validation[name].append(reward_per_user(judge, q_policy(plugin, judge),
                                                    args.users, seed))
            print(f"validation seed {seed}: {name} {validation[name][-1]:.2f} per user "
                  f"(trained in {seconds:.1f} s)", flush=True)
    chosen = max(models, key=lambda m: np.mean(validation[m]))
    print("validation means: " + ", ".join(f"{m} {np.mean(v):.2f}"
                                           for m, v in validation.items())
          + f" -> {chosen}")

    judges = {"planted": judge, "calibrated": ShopSimulator.from_dataset(dataset)}
    rows = {j: {"qlearning": [], "myopic": [], "popularity": []} for j in judges}
    seconds: list[float] = []
    for seed in range(args.seeds):
        plugin, took = train(dataset, models[chosen], seed)
        seconds.append(took)
        for name, sim in judges.items():
            rows[name]["qlearning"].append(reward_per_user(sim, q_policy(plugin, sim),
                                                           args.users, seed))
            rows[name]["myopic"].append(reward_per_user(sim, MyopicPolicy(sim), args.users,
                                                        seed))
            rows[name]["popularity"].append(reward_per_user(sim, PopularityPolicy(sim),
                                                            args.users, seed))
            print(f"seed {seed} {name}: " + ", ".join(f"{k} {v[-1]:.2f}"
                                                    for k, v in rows[name].items())
                  + f" (trained in {took:.1f} s)", flush=True)
    for name in judges:
        report(name, rows[name], chosen, args.seeds)
    mean, half = mean_ci(np.array(seconds))
    print(f"\ntraining time ({chosen}, {models[chosen]['episodes']} simulated users, one "
          f"CPU thread): {mean:.1f} ± {half:.1f} s")


def report(judge: str, rows: dict[str, list[float]], chosen: str, seeds: int) -> None:
    """The table and the paired tests of one judging simulator."""
    q = np.array(rows["qlearning"])
    print(f"\njudged in the {judge} simulator\n")
    print(f"| policy | long-term reward per user (mean ± 95% CI over {seeds} seeds) |")
    print("|---|---|")
    for name, values in rows.items():
        mean, half = mean_ci(np.array(values))
        label = f"qlearning ({chosen})" if name == "qlearning" else name
        print(f"| {label} | {mean:.2f} ± {half:.2f} |")
    for other in ("myopic", "popularity"):
        base = np.array(rows[other])
        diff_mean, diff_half = mean_ci(q - base)
        t = stats.ttest_rel(q, base, alternative="greater")
        w = stats.wilcoxon(q, base, alternative="greater") if seeds >= 2 else None
        print(f"qlearning - {other}: {diff_mean:+.2f} ± {diff_half:.2f} per user "
              f"({100 * diff_mean / base.mean():+.1f}%), paired t-test p = {t.pvalue:.2g}"
              + (f", Wilcoxon signed-rank p = {w.pvalue:.2g}" if w is not None else "")
              + f"; qlearning better on {int((q > base).sum())} of {seeds} seeds")


if __name__ == "__main__":
    main()
