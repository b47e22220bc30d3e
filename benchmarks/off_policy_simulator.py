"""Off-policy estimates against the truth in the shop simulator; prints Markdown tables.

An epsilon-greedy logging policy (``recsdk.simulate.EpsilonGreedyPolicy``, slot by slot,
learning online, exact item-position propensities) serves lists in the simulator. At
every logged list, before the user answers, each target policy is asked what it would
show, and the simulator gives the TRUE expected immediate reward of that list in that
state: the mean over a log is the target's value on the logged contexts, which is what
the estimators estimate. Each log is then cut into pieces of 1k, 10k, 100k lists and
IPS, SNIPS and DR (``recsdk.evaluation.off_policy``, DR with the cross-fitted
item-position reward model) estimate every target's value on each piece; bias, standard
deviation, RMSE and the coverage of the 95% normal intervals are over the pieces.

Each target's value ON-POLICY (run alone in the simulator, its own lists changing the
users' satiety, boredom and return) is printed beside it: the one-step estimators do
not estimate that, and the gap says how much the long-term dynamics move the value.

Targets: the logging policy itself; "greedy", the logging policy without its exploration
(its current click estimate's best list: the question "what if we stopped exploring?");
a frozen myopic click model (``MyopicPolicy``, never updated); popularity; uniformly
random lists; and the oracle of the immediate reward.
Every random process is seeded (``--seed``).

    PYTHONPATH=. python benchmarks/off_policy_simulator.py [--steps 100000] [--seeds 3]
        [--sizes 1000,10000,100000] [--epsilon 0.3]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from recsdk.data.synthetic import generate_shop
from recsdk.evaluation.off_policy import (
    doubly_robust,
    effective_sample_size,
    importance_weights,
    ips,
    snips,
)
from recsdk.evaluation.reward_model import cross_fit
from recsdk.simulate import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    MyopicPolicy,
    Observation,
    OraclePolicy,
    Outcome,
    PopularityPolicy,
    RandomPolicy,
    ShopSimulator,
    SimulatorParams,
    run_policy,
)

DETERMINISTIC = ("greedy", "myopic", "popularity", "oracle")
TARGETS = ("logging", *DETERMINISTIC, "random")
ESTIMATORS = ("ips", "snips", "dr")


class Frozen:
    """A policy that never learns: the target is one fixed policy."""

    def __init__(self, policy: object) -> None:
        self.policy = policy

    def select(self, obs: Observation, k: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.policy.select(obs, k, rng)  # type: ignore[attr-defined]

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        return None


def targets_of(sim: ShopSimulator) -> dict[str, Frozen]:
    return {"myopic": Frozen(MyopicPolicy(sim)), "popularity": Frozen(PopularityPolicy(sim)),
            "oracle": Frozen(OraclePolicy(sim)), "random": Frozen(RandomPolicy())}


@dataclass
class Log:
    """Per logged list: items, propensities and rewards per position; per target, its
    list (deterministic targets) and its true expected reward in the logged state."""

    slates: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    target_slates: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]


def simulate_log(sim: ShopSimulator, n_steps: int, epsilon: float, seed: int) -> Log:
    sim.reseed(seed)
    rng = np.random.default_rng([seed, 2])
    target_rng = np.random.default_rng([seed, 3])
    logging = EpsilonGreedyPolicy(sim, epsilon=epsilon)
    greedy = GreedyPolicy(sim)
    greedy.estimate = logging.estimate  # the logging policy's own estimate, unexplored
    targets: dict[str, object] = {"greedy": greedy, **targets_of(sim)}
    k = sim.params.slate_size
    exam = sim.params.examination()
    value = (sim.item_price if sim.params.purchase_value == "price"
             else np.full(sim.n_items, float(sim.params.purchase_value)))
    slates = np.empty((n_steps, k), np.int64)
    propensities = np.empty((n_steps, k))
    rewards = np.empty((n_steps, k))
    target_slates = {name: np.empty((n_steps, k), np.int64) for name in DETERMINISTIC}
    truth = {name: np.empty(n_steps) for name in TARGETS}
    step = 0
    obs: Observation | None = None
    while step < n_steps:
        if obs is None:
            obs = sim.reset()
        slate, p = logging.select(obs, k, rng)
        for name in DETERMINISTIC:
            shown = targets[name].select(obs, k, target_rng)[0]  # type: ignore[attr-defined]
            target_slates[name][step] = shown
            truth[name][step] = sim.expected_reward(obs, shown)
        truth["random"][step] = exam.sum() * sim.item_rewards(obs, obs.candidates).mean()
        truth["logging"][step] = sim.expected_reward(obs, slate)
        outcome = sim.step(slate)
        logging.update(obs, slate, outcome)
        slates[step], propensities[step] = slate, p
        rewards[step] = sim.params.click_value * outcome.clicks + outcome.purchases * value[slate]
        assert np.isclose(rewards[step].sum(), outcome.reward)
        step += 1
        obs = outcome.observation
    return Log(slates, propensities, rewards, target_slates, truth)


def on_policy_values(sim: ShopSimulator, steps: int, seed: int, epsilon: float
                     ) -> dict[str, float]:
    """Mean reward per list of each target run on its own (about ``steps`` lists)."""
    out = {}
    policies = {"logging": EpsilonGreedyPolicy(sim, epsilon=epsilon),
                "greedy": GreedyPolicy(sim), **targets_of(sim)}
    for name, policy in policies.items():
        episodes = max(1, steps // 8)
        run = run_policy(sim, policy, episodes, seed=seed, oracle=False)
        out[name] = float(run.reward.mean())
    return out


def estimate_piece(log: Log, rows: slice, n_items: int, seed: int
                   ) -> tuple[dict[str, dict[str, tuple[float, float, float]]],
                              dict[str, tuple[float, float]]]:
    """Every estimator's (value, ci_low, ci_high) for every target on one piece, and per
    target the share of impressions it could show and the effective sample size share."""
    slates, p, r = log.slates[rows], log.propensities[rows], log.rewards[rows]
    n, k = slates.shape
    requests = np.repeat(np.arange(n), k)
    positions = np.tile(np.arange(k), n)
    items, rewards, logging = slates.ravel(), r.ravel(), p.ravel()
    folds = cross_fit(requests, items, positions, rewards, n_items, k, seed=seed)
    q_logged = np.zeros(len(items))
    fold_of_row = np.zeros(len(items), np.int64)
    for f, (in_fold, model) in enumerate(folds):
        held = in_fold[requests]
        fold_of_row[held] = f
        q_logged[held] = model.predict(items[held], positions[held])
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    support: dict[str, tuple[float, float]] = {}
    for name in TARGETS:
        if name == "logging":
            target_p = logging
            target_items = items  # one draw of the logging policy's own distribution
        elif name == "random":
            target_p = np.full(len(items), 1.0 / n_items)
            target_items = None
        else:
            target_items = log.target_slates[name][rows].ravel()
            target_p = (target_items == items).astype(float)
        q_target = np.zeros(len(items))
        for f, (_, model) in enumerate(folds):
            held = fold_of_row == f
            if target_items is None:  # uniform over every item at each position
                q_target[held] = model.table.mean(axis=0)[positions[held]]
            else:
                q_target[held] = model.predict(target_items[held], positions[held])
        w = importance_weights(logging, target_p)
        support[name] = (float((target_p > 0).mean()), effective_sample_size(w) / len(w))
        args = (requests, positions, rewards, w)
        results = {"ips": ips(*args), "snips": snips(*args),
                   "dr": doubly_robust(*args, q_logged, q_target)}
        out[name] = {e: (v.value, v.ci_low, v.ci_high) for e, v in results.items()}
    return out, support


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="lists per logging run")
    parser.add_argument("--seeds", type=int, default=3, help="logging runs")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--epsilon", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--on-policy-steps", type=int, default=None,
                        help="lists per on-policy run (default: --steps, so that the "
                             "learning policies learn as long as the logging one did)")
    parser.add_argument("--purchase-value", default="5",
                        help="reward of a purchase: a number, or 'price' (heavy-tailed)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    shop = generate_shop(20_000, seed=args.seed, n_users=300, n_items=100)
    purchase = args.purchase_value if args.purchase_value == "price" else float(
        args.purchase_value)
    params = SimulatorParams(slate_size=5, purchase_value=purchase)
    sim = ShopSimulator(shop, params, seed=args.seed)
    errors: dict[tuple[int, str, str], list[tuple[float, float, float, float]]] = {}
    truths: dict[str, list[float]] = {name: [] for name in TARGETS}
    support: dict[str, list[tuple[float, float]]] = {name: [] for name in TARGETS}
    for s in range(args.seeds):
        seed = args.seed + 1000 * (s + 1)
        log = simulate_log(sim, args.steps, args.epsilon, seed)
        for name in TARGETS:
            truths[name].append(float(log.truth[name].mean()))
        for size in sizes:
            for piece in range(args.steps // size):
                rows = slice(piece * size, (piece + 1) * size)
                found, shares = estimate_piece(log, rows, sim.n_items, seed + piece)
                for name in TARGETS:
                    if size == sizes[-1]:
                        support[name].append(shares[name])
                    true = float(log.truth[name][rows].mean())
                    for e, (value, low, high) in found[name].items():
                        errors.setdefault((size, name, e), []).append(
                            (value - true, float(low <= true <= high), value, true))
    on_policy = on_policy_values(sim, args.on_policy_steps or args.steps, args.seed + 7,
                                 args.epsilon)
    print(f"shop: 100 items, 300 users, lists of {params.slate_size}; logging: "
          f"epsilon-greedy (epsilon {args.epsilon}), {args.seeds} run(s) of {args.steps} "
          f"lists; reward per list: clicks + {args.purchase_value} per purchase; "
          f"{time.perf_counter() - started:.0f} s\n")
    print("| target | value on the logged contexts | on-policy value | impressions it "
          "could show | effective sample size / impressions |")
    print("|---|---|---|---|---|")
    for name in TARGETS:
        matched, ess = np.mean(support[name], axis=0)
        print(f"| {name} | {np.mean(truths[name]):.4f} | {on_policy[name]:.4f} | "
              f"{matched:.1%} | {ess:.2%} |")
    print()
    print("| lists | target | estimator | pieces | bias | sd | RMSE | 95% CI coverage |")
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        for name in TARGETS:
            for e in ESTIMATORS:
                rows = np.array(errors[(size, name, e)])
                bias, sd = rows[:, 0].mean(), rows[:, 0].std(ddof=1) if len(rows) > 1 else 0
                rmse = float(np.sqrt((rows[:, 0] ** 2).mean()))
                print(f"| {size} | {name} | {e} | {len(rows)} | {bias:+.4f} | {sd:.4f} | "
                      f"{rmse:.4f} | {rows[:, 1].mean():.0%} |")


if __name__ == "__main__":
    main()
