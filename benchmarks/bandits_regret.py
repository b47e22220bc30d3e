"""Contextual bandits in the shop simulator: cumulative regret over seeds, with a plot.

Policies: ``linucb`` and ``thompson`` (the plugins' own policy classes,
:mod:`recsdk_plugins.bandits.policy`, on the plugins' own context features,
:func:`recsdk_plugins.bandits.features.context_matrix`), the simulator's
epsilon-greedy, greedy and random baselines (:mod:`recsdk.simulate`), and
``linear_best``: a fixed policy of the bandits' own class standing in for its best
one (one fixed ``theta`` over the same features and pool, a ridge fit of the true
expected rewards over an oracle run with other users, :func:`fit_linear_best`).
Regret against the oracle is the bandits' learning regret plus the bias of a linear
model of 11 features, which ``linear_best`` pays too and no exploration removes; the
bandits' regret minus ``linear_best``'s is the kind of regret their bounds speak of (Li
et al. 2010; Agrawal and Goyal 2013), and is printed by quarter of the run.

**Regret.** At every shown list, the simulator's true expected immediate reward of the
best list for this user in this state (what :class:`recsdk.simulate.OraclePolicy`
shows: the ``slate_size`` items with the highest true expected reward, position bias
included) minus the true expected immediate reward of the list the policy showed
(``RunLog.regret``). The oracle is the best *fixed* policy: a fixed function of the
state that never learns, knowing the planted preferences, satiety and prices. Regret
is cumulated over the first ``T`` lists of a seed's run (``T`` the fewest lists any
run of that seed showed, so that every policy is compared on as many lists) and
averaged over seeds, with a 95% t-interval band. Expected rewards, not sampled ones,
so the curves carry no click noise. Sublinear growth shows as less regret in the
second half of the lists than in the first.

**How the bandits see the simulator.** Like the plugins, they choose the list from the
``pool`` best items of an upstream ranking; the upstream here is the simulator's
logged-data click model that :class:`recsdk.simulate.MyopicPolicy` starts from (the
user's observed leaf interest, smoothed, times the item's logged popularity within its
leaf). Context features from the observation: the interest shares of the item's leaf,
its parent and its top-level category (``obs.interest`` summed up the shop's tree),
price, the price match against the mean price of the user's clicked items, logged
popularity, the upstream score and rank, whether the user has a history, and how
recently the user clicked the item. A pull
weighs ``1 / position`` (the plugins' ``position_discount = 1``) and the reward of a
shown item is what the simulator pays for it (click value plus the price if bought).
The baselines (``informed=True``: the same logged-data prior) choose among all items.

    PYTHONPATH=.:.shim OMP_NUM_THREADS=1 python benchmarks/bandits_regret.py \\
        [--seeds 20] [--episodes 150] [--plot docs/img/bandits_regret.png]

(``.shim`` holds a link ``recsdk_plugins -> ../plugins`` when recsdk is not installed.)
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from recsdk_plugins.bandits import features
from recsdk_plugins.bandits.linucb import LinUCBParams
from recsdk_plugins.bandits.policy import LinearStats, LinearThompson, LinUCB
from scipy import stats as scistats

from recsdk.catalog import CategoryTree
from recsdk.data.synthetic import generate_shop
from recsdk.simulate import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    Observation,
    OraclePolicy,
    Outcome,
    RandomPolicy,
    ShopSimulator,
    SimulatorParams,
    run_policy,
)

POLICIES = ("linucb", "thompson", "linear_best", "epsilon_greedy", "greedy", "random")


@dataclass(frozen=True)
class FixedLinear:
    """A fixed policy of the bandits' own class: the ``k`` best candidates under one
    fixed ``theta`` (:func:`fit_linear_best`), never learning."""

    theta: np.ndarray

    def select(self, X: np.ndarray, k: int, stats: LinearStats,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(X))
        return np.argsort(-(X @ self.theta), kind="stable")[:k], np.ones(k)


@dataclass
class SimulatorBandit:
    """A plugin policy acting in the simulator: upstream pool, context, pulls, rewards."""

    sim: ShopSimulator
    policy: LinUCB | LinearThompson | FixedLinear
    tree: CategoryTree
    pool: int = 50
    position_discount: float = 1.0
    stats: LinearStats = field(default_factory=lambda: LinearStats.zeros(features.DIM))

    def __post_init__(self) -> None:
        sim = self.sim
        leaf_ids = [str(c) for c in sim.leaf_ids]
        parents = [self.tree.path(c)[max(-2, -len(self.tree.path(c)))] for c in leaf_ids]
        roots = [self.tree.path(c)[0] for c in leaf_ids]
        self.leaf = np.asarray(sim.item_leaf)
        self.parent_of_leaf = _codes(parents)
        self.root_of_leaf = _codes(roots)
        pop = np.asarray(sim.item_popularity, float)
        self.popularity = features.popularity_share(pop / pop[pop > 0].min())
        leaf_max = np.zeros(sim.n_leaves)
        np.maximum.at(leaf_max, self.leaf, pop)
        self.within_leaf = np.sqrt(pop / np.where(leaf_max > 0, leaf_max, 1.0)[self.leaf])
        self.price = np.asarray(sim.item_price, float)
        self.scale = features.price_scale(self.price)
        value = sim.params.purchase_value
        self.purchase_reward = self.price if value == "price" else np.full(sim.n_items,
                                                                           float(value))
        self._shown: np.ndarray | None = None

    def _contexts(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        interest = np.asarray(obs.interest, float)
        smooth = 1.0 / self.sim.n_leaves
        candidates = np.asarray(obs.candidates)
        upstream = ((interest[self.leaf[candidates]] + smooth) / (interest.max() + smooth)
                    * self.within_leaf[candidates])
        order = np.argsort(-upstream, kind="stable")[:self.pool]
        items = candidates[order]
        parent = np.bincount(self.parent_of_leaf, interest, self.parent_of_leaf.max() + 1)
        root = np.bincount(self.root_of_leaf, interest, self.root_of_leaf.max() + 1)
        leaf = self.leaf[items]
        history = np.asarray(obs.history, dtype=np.int64)
        X = features.context_matrix(
            leaf=interest[leaf], parent=parent[self.parent_of_leaf[leaf]],
            root=root[self.root_of_leaf[leaf]], price=self.price[items],
            price_scale=self.scale,
            user_price=float(self.price[history].mean()) if len(history) else None,
            popularity=self.popularity[items], upstream_scores=upstream[order],
            known_user=bool(interest.sum() > 0),
            recent=features.recency(history.tolist(), items.tolist()))
        return items, X

    def select(self, obs: Observation, k: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        items, X = self._contexts(obs)
        picked, propensities = self.policy.select(X, k, self.stats, rng)
        self._shown = X[picked]
        return items[picked], propensities

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        assert self._shown is not None
        positions = np.arange(1, len(slate) + 1, dtype=float)
        self.stats.add_pulls(self._shown, positions ** -self.position_discount)
        reward = (self.sim.params.click_value * outcome.clicks
                  + self.purchase_reward[slate] * outcome.purchases)
        self.stats.add_rewards(self._shown, reward.astype(float))


@dataclass
class _PoolRecorder:
    """Shows what the oracle shows, recording every pool's contexts and true rewards."""

    bandit: SimulatorBandit
    oracle: OraclePolicy
    X: list[np.ndarray] = field(default_factory=list)
    rewards: list[np.ndarray] = field(default_factory=list)

    def select(self, obs: Observation, k: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        items, X = self.bandit._contexts(obs)
        self.X.append(X)
        self.rewards.append(self.bandit.sim.item_rewards(obs, items))
        return self.oracle.select(obs, k, rng)

    def update(self, obs: Observation, slate: np.ndarray, outcome: Outcome) -> None:
        return None


def fit_linear_best(sim: ShopSimulator, tree: CategoryTree, args: argparse.Namespace,
                    seed: int) -> np.ndarray:
    """``theta`` of a fixed linear policy over the bandits' context features standing in
    for the best one: a ridge fit of every pool item's TRUE expected reward (at position
    1) on its context,
    over the states of an oracle run with other users (``seed + 100_000``). This is the
    comparator of LinUCB's and linear Thompson sampling's regret bounds (which bound
    regret against the best ``theta``, not against an oracle the features cannot
    express); what the oracle earns above it is the model's bias, which no amount of
    exploration removes."""
    recorder = _PoolRecorder(SimulatorBandit(sim, FixedLinear(np.zeros(features.DIM)),
                                             tree, pool=args.pool), OraclePolicy(sim))
    run_policy(sim, recorder, args.episodes, seed=seed + 100_000, oracle=False)
    X, r = np.concatenate(recorder.X), np.concatenate(recorder.rewards)
    return np.linalg.solve(X.T @ X + np.eye(features.DIM), X.T @ r)


def _codes(values: list[str]) -> np.ndarray:
    _, codes = np.unique(np.asarray(values), return_inverse=True)
    return codes.astype(np.int64)


def make_policy(name: str, sim: ShopSimulator, tree: CategoryTree, args: argparse.Namespace,
                seed: int) -> object:
    if name == "linucb":
        return SimulatorBandit(sim, LinUCB(alpha=args.alpha, epsilon=args.epsilon,
                                           n_draws=args.n_draws,
                                           epsilon_decay_pulls=args.epsilon_decay_pulls),
                               tree, pool=args.pool)
    if name == "thompson":
        return SimulatorBandit(sim, LinearThompson(v=args.v, n_draws=args.n_draws), tree,
                               pool=args.pool)
    if name == "linear_best":
        return SimulatorBandit(sim, FixedLinear(fit_linear_best(sim, tree, args, seed)),
                               tree, pool=args.pool)
    if name == "epsilon_greedy":
        return EpsilonGreedyPolicy(sim, epsilon=args.baseline_epsilon, informed=True)
    if name == "greedy":
        return GreedyPolicy(sim, informed=True)
    return RandomPolicy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (tuning used 100+)")
    parser.add_argument("--only", nargs="*", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--episodes", type=int, default=150, help="users per seed")
    parser.add_argument("--shop-events", type=int, default=20_000)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--epsilon-decay-pulls", type=float,
                        default=LinUCBParams().fields["epsilon_decay_pulls"].load_default)
    parser.add_argument("--v", type=float, default=0.5)
    parser.add_argument("--baseline-epsilon", type=float, default=0.1)
    parser.add_argument("--pool", type=int, default=50)
    parser.add_argument("--n-draws", type=int, default=32,
                        help="Monte Carlo draws for the propensities (not used by regret)")
    parser.add_argument("--plot", type=Path, default=Path("docs/img/bandits_regret.png"))
    args = parser.parse_args()

    policies = [p for p in POLICIES if p in args.only]
    curves: dict[str, list[np.ndarray]] = {p: [] for p in policies}
    rewards: dict[str, list[float]] = {p: [] for p in policies}
    seconds: dict[str, float] = dict.fromkeys(policies, 0.0)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        shop = generate_shop(args.shop_events, seed=seed)
        tree = CategoryTree.from_frame(shop.categories)
        sim = ShopSimulator(shop, SimulatorParams(), seed=seed)
        runs = {}
        for name in policies:
            start = time.perf_counter()
            runs[name] = run_policy(sim, make_policy(name, sim, tree, args, seed),
                                    args.episodes, seed=seed)
            seconds[name] += time.perf_counter() - start
        horizon = min(r.n_steps for r in runs.values())
        for name, run in runs.items():
            curves[name].append(np.cumsum(run.regret[:horizon]))
            rewards[name].append(float(run.expected_reward[:horizon].mean()))
        print(f"seed {seed}: {horizon} lists; final regret " + ", ".join(
            f"{n} {curves[n][-1][-1]:.1f}" for n in policies), flush=True)

    horizon = min(len(c) for cs in curves.values() for c in cs)
    print(f"\n{args.seeds} seeds, first {horizon} lists of each run "
          f"(slate {SimulatorParams().slate_size}, {args.episodes} users per seed)\n")
    print("| policy | cumulative regret (mean ± 95% CI) | regret, 1st half | regret, "
          "2nd half | 2nd / 1st | growth exponent | expected reward per list | "
          "seconds per seed |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {name: np.stack([x[:horizon] for x in curves[name]]) for name in policies}
    for name, c in summary.items():
        final = c[:, -1]
        half = horizon // 2
        first, second = c[:, half - 1], c[:, -1] - c[:, half - 1]
        print(f"| `{name}` | {final.mean():.1f} ± {_ci(final):.1f} | {first.mean():.1f} | "
              f"{second.mean():.1f} | {np.mean(second) / np.mean(first):.2f} | "
              f"{_growth(c.mean(axis=0)):.3f} | {np.mean(rewards[name]):.3f} | "
              f"{seconds[name] / args.seeds:.1f} |")
    if "linear_best" in summary:
        _against_linear_best(summary, horizon)
    for reference in ("epsilon_greedy", "greedy"):
        if reference not in summary:
            continue
        print(f"\npaired against `{reference}` (same seeds, same users):\n")
        print(f"| policy | final regret minus {reference}'s (mean ± 95% CI) | seeds lower "
              "| paired t-test p |")
        print("|---|---|---|---|")
        for name, c in summary.items():
            if name in (reference, "random", "linear_best"):
                continue
            diff = c[:, -1] - summary[reference][:, -1]
            p = scistats.ttest_rel(c[:, -1], summary[reference][:, -1]).pvalue
            print(f"| `{name}` | {diff.mean():.1f} ± {_ci(diff):.1f} | "
                  f"{int((diff < 0).sum())} / {len(diff)} | {p:.2g} |")
    _plot(summary, args.plot, ("epsilon_greedy", "linear_best"))


def _against_linear_best(summary: dict[str, np.ndarray], horizon: int) -> None:
    """Regret against ``linear_best``, the stand-in for the best fixed policy of the
    bandits' class, by quarters: sublinear regret shows as increments that shrink
    towards 0."""
    best = summary["linear_best"]
    quarter = horizon // 4
    cuts = [0, quarter, 2 * quarter, 3 * quarter, horizon]
    print("\nagainst `linear_best` (a fixed theta fitted to the true rewards; cumulative "
          "regret minus its cumulative regret, paired by seed):\n")
    print("| policy | final (mean ± 95% CI) | per list, 1st quarter | 2nd | 3rd | 4th | "
          "2nd half / 1st half | growth exponent |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("linucb", "thompson"):
        if name not in summary:
            continue
        diff = np.concatenate([np.zeros((len(best), 1)),
                               summary[name] - best], axis=1)
        rates = [(diff[:, b] - diff[:, a]).mean() / (b - a)
                 for a, b in itertools.pairwise(cuts)]
        half = horizon // 2
        first, second = diff[:, half].mean(), (diff[:, -1] - diff[:, half]).mean()
        print(f"| `{name}` | {diff[:, -1].mean():.1f} ± {_ci(diff[:, -1]):.1f} | "
              + " | ".join(f"{r:.3f}" for r in rates)
              + f" | {second / first:.2f} | {_growth(diff[:, 1:].mean(axis=0)):.3f} |")


def _band(ax: object, steps: np.ndarray, curves: np.ndarray, label: str, color: str
          ) -> None:
    mean = curves.mean(axis=0)
    band = scistats.t.ppf(0.975, len(curves) - 1) * curves.std(axis=0, ddof=1) \
        / np.sqrt(len(curves))
    ax.plot(steps, mean, label=label, color=color)  # type: ignore[attr-defined]
    ax.fill_between(steps, mean - band, mean + band, alpha=0.2,  # type: ignore[attr-defined]
                    color=color)


def _ci(values: np.ndarray) -> float:
    n = len(values)
    if n < 2:
        return float("nan")
    return float(scistats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))


def _growth(mean_curve: np.ndarray) -> float:
    """The slope of log(cumulative regret) against log(lists) over the second half: 1
    for regret growing linearly, below 1 for regret that slows down (sublinear)."""
    t = np.arange(1, len(mean_curve) + 1)
    half = slice(len(t) // 2, None)
    return float(np.polyfit(np.log(t[half]), np.log(np.maximum(mean_curve[half], 1e-12)),
                            1)[0])


def _plot(summary: dict[str, np.ndarray], path: Path, references: tuple[str, ...]
          ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    references = tuple(r for r in references if r in summary)
    fig, axes = plt.subplots(1, 1 + len(references), figsize=(6 * (1 + len(references)),
                                                               4.4), dpi=110)
    left, panels = axes[0], dict(zip(references, axes[1:], strict=True))
    for color, (name, c) in enumerate(summary.items()):
        steps = np.arange(1, c.shape[1] + 1)
        _band(left, steps, c, name, f"C{color}")
        for reference, ax in panels.items():
            if name not in (reference, "random"):
                _band(ax, steps, c - summary[reference], name, f"C{color}")
    n = next(iter(summary.values())).shape[0]
    left.set_title(f"Cumulative regret against the oracle ({n} seeds, 95% CI)",
                   fontsize="medium")
    left.set_ylabel("cumulative regret (expected reward)")
    for reference, ax in panels.items():
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_title(f"Minus {reference}'s, paired by seed (below 0: less regret)",
                     fontsize="medium")
    for ax in axes:
        ax.set_xlabel("lists shown")
        ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
