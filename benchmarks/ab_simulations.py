"""Simulated A/B experiments checking recsdk.experiments' statistics; prints Markdown.

1. A/A (no difference): false-positive rate at alpha 0.05 of the fixed-horizon z-test
   (one look at the end), of the same z-test peeked at daily (stopping at the first
   p < 0.05: the error the mSPRT exists to avoid) and of the mSPRT looked at daily.
2. Power: a planted uplift, units per arm from the power calculation for 80 % power;
   the share of experiments that detect it (z-test for a rate, Welch for a mean), and the
   mSPRT's share on the same data (the price of always-valid inference).
3. CUPED: variance reduction with a pre-period covariate of correlation rho, against
   rho^2, and the spread of the effect estimate over experiments with and without it.
4. Coverage of the delta-method relative-lift interval, and SRM false alarms on fair
   splits.

Every random process is seeded (``--seed``).

    PYTHONPATH=. python benchmarks/ab_simulations.py [--experiments 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from recsdk.experiments.group_sequential import group_sequential_rates
from recsdk.experiments.sequential import msprt_rates
from recsdk.experiments.stats import (
    compare_means,
    compare_rates,
    cuped,
    relative_lift_ci,
    sample_ratio_mismatch,
    sample_size_means,
    sample_size_rates,
)

ALPHA = 0.05


def binomial_se(rate: float, n: int) -> float:
    """Monte-Carlo standard error of a rate estimated from n experiments."""
    return math.sqrt(rate * (1 - rate) / n)


def a_a(rng: np.random.Generator, experiments: int, rate: float, days: int, per_day: int) -> None:
    hours = 24
    relative_taus = (0.02, 0.05, 0.2)  # tau as a fraction of the control rate; 0.05 default
    fixed = peeking = hourly = planned = 0
    sequential = dict.fromkeys(relative_taus, 0)
    for _ in range(experiments):
        hc = rng.binomial(per_day // hours, rate, days * hours)
        ht = rng.binomial(per_day // hours, rate, days * hours)
        h_trials = per_day // hours * np.arange(1, days * hours + 1)
        sc, st = np.cumsum(hc)[hours - 1 :: hours], np.cumsum(ht)[hours - 1 :: hours]
        trials = h_trials[hours - 1 :: hours]
        daily = [
            compare_rates(int(a), int(n), int(b), int(n)).p_value
            for a, b, n in zip(sc, st, trials, strict=True)
        ]
        fixed += daily[-1] < ALPHA
        peeking += min(daily) < ALPHA
        planned += group_sequential_rates(sc, trials, st, trials, days, alpha=ALPHA).rejected
        for tau in relative_taus:
            tau2 = None if tau == 0.05 else (tau * rate) ** 2
            res = msprt_rates(sc, trials, st, trials, alpha=ALPHA, tau2=tau2)
            sequential[tau] += res.rejected_at is not None
        res = msprt_rates(
            np.cumsum(hc), h_trials, np.cumsum(ht), h_trials, baseline=rate, alpha=ALPHA
        )
        hourly += res.rejected_at is not None
    print(f"### 1. A/A: false-positive rate at alpha {ALPHA}\n")
    print(
        f"{experiments} experiments, conversion {rate} in both arms, {days} daily looks of "
        f"{trials[0]:,} units per arm per day ({trials[-1]:,} per arm at the end).\n"
    )
    print("| procedure | false-positive rate | MC s.e. |")
    print("|---|---|---|")
    rows = [
        (f"z-test, one look at day {days}", fixed),
        (f"z-test peeked daily ({days} looks, stop at first p < {ALPHA})", peeking),
    ]
    for tau in relative_taus:
        label = "default tau = 0.05 x control rate" if tau == 0.05 else f"tau = {tau} x rate"
        rows.append((f"mSPRT looked at daily ({days} looks, {label})", sequential[tau]))
    rows.append((f"mSPRT looked at hourly ({days * hours} looks, baseline {rate})", hourly))
    rows.append((f"group-sequential, O'Brien-Fleming, {days} planned daily looks", planned))
    for name, count in rows:
        r = count / experiments
        print(f"| {name} | {r:.3f} | {binomial_se(r, experiments):.3f} |")
    print()


def power_rates_sim(
    rng: np.random.Generator, experiments: int, base: float, lift: float, days: int
) -> None:
    plan = sample_size_rates(base, base + lift, alpha=ALPHA, power=0.8)
    n = int(plan.n_control)
    per_day = math.ceil(n / days)
    detected = seq_detected = 0
    for _ in range(experiments):
        dc = rng.binomial(per_day, base, days)
        dt = rng.binomial(per_day, base + lift, days)
        # the fixed-horizon test sees exactly the planned n; the mSPRT sees daily looks
        sc, st = int(rng.binomial(n, base)), int(rng.binomial(n, base + lift))
        detected += compare_rates(sc, n, st, n).p_value < ALPHA
        trials = per_day * np.arange(1, days + 1)
        res = msprt_rates(np.cumsum(dc), trials, np.cumsum(dt), trials, alpha=ALPHA)
        seq_detected += res.rejected_at is not None
    r, s = detected / experiments, seq_detected / experiments
    print("### 2. Power at the planned sample size\n")
    print(
        f"Conversion {base} -> {base + lift} (+{lift / base:.0%} relative); "
        f"`sample_size_rates` (Cohen's h, statsmodels) gives n = {n:,} per arm for 80 % "
        f"power at alpha {ALPHA}.\n"
    )
    print("| metric | test | n per arm | detection rate | MC s.e. |")
    print("|---|---|---|---|---|")
    se = binomial_se(r, experiments)
    print(f"| conversion | z-test, one look | {n:,} | {r:.3f} | {se:.3f} |")
    print(
        f"| conversion | mSPRT, {days} daily looks | {per_day * days:,} | {s:.3f} | "
        f"{binomial_se(s, experiments):.3f} |"
    )


def power_means_sim(rng: np.random.Generator, experiments: int) -> None:
    mean, sd, lift = 20.0, 15.0, 1.0
    plan = sample_size_means(lift, sd, alpha=ALPHA, power=0.8)
    n = int(plan.n_control)
    detected = 0
    for _ in range(experiments):
        control = rng.gamma((mean / sd) ** 2, sd**2 / mean, n)
        treatment = rng.gamma(((mean + lift) / sd) ** 2, sd**2 / (mean + lift), n)
        detected += compare_means(control, treatment).p_value < ALPHA
    r = detected / experiments
    print(
        f"| revenue/user (gamma, mean {mean:g} -> {mean + lift:g}, sd {sd:g}) | Welch t-test "
        f"| {n:,} | {r:.3f} | {binomial_se(r, experiments):.3f} |"
    )
    print()


def cuped_sim(rng: np.random.Generator, experiments: int) -> None:
    n = 5_000
    print("### 3. CUPED with a correlated pre-period metric\n")
    print(
        f"{n:,} units per arm; pre-period X ~ N(10, 3^2), metric Y = 10 + rho (X - 10) + "
        f"sqrt(1 - rho^2) 3 e, effect +0.2; {experiments} experiments per rho.\n"
    )
    print(
        "| rho | rho^2 | variance reduction (mean) | s.d. of effect estimate, plain | "
        "with CUPED | ratio of variances |"
    )
    print("|---|---|---|---|---|---|")
    for rho in (0.3, 0.5, 0.7, 0.9):
        reductions, plain, adjusted = [], [], []
        for _ in range(experiments):
            x = rng.normal(10.0, 3.0, 2 * n)
            y = 10.0 + rho * (x - 10.0) + math.sqrt(1 - rho**2) * 3.0 * rng.normal(size=2 * n)
            y[n:] += 0.2
            res = cuped(y[:n], x[:n], y[n:], x[n:])
            reductions.append(res.variance_reduction)
            plain.append(y[n:].mean() - y[:n].mean())
            adjusted.append(res.treatment.mean() - res.control.mean())
        sd_p, sd_a = float(np.std(plain, ddof=1)), float(np.std(adjusted, ddof=1))
        print(
            f"| {rho} | {rho**2:.2f} | {np.mean(reductions):.3f} | {sd_p:.4f} | {sd_a:.4f} | "
            f"{1 - sd_a**2 / sd_p**2:.3f} |"
        )
    print()


def coverage_and_srm(rng: np.random.Generator, experiments: int) -> None:
    base, treat, n = 0.05, 0.055, 20_000
    truth = treat / base - 1
    covered = 0
    draws = 10 * experiments  # cheap, and the coverage needs a tighter Monte-Carlo error
    for _ in range(draws):
        a, b = rng.binomial(n, base) / n, rng.binomial(n, treat) / n
        _, (low, high) = relative_lift_ci(a, a * (1 - a), n, b, b * (1 - b), n)
        covered += low <= truth <= high
    alarms = sum(
        sample_ratio_mismatch(rng.multinomial(1_000_000, [0.5, 0.5]).tolist(), [0.5, 0.5]).mismatch
        for _ in range(experiments)
    )
    flagged = sample_ratio_mismatch([505_000, 495_000], [0.5, 0.5])
    print("### 4. Relative-lift interval and SRM\n")
    print("| check | result |")
    print("|---|---|")
    c = covered / draws
    print(
        f"| 95 % delta-method interval of the relative lift covers +{truth:.0%} "
        f"(conversion {base} -> {treat}, {n:,} per arm) | {c:.3f} "
        f"(MC s.e. {binomial_se(c, draws):.3f}, {draws:,} experiments) |"
    )
    print(f"| SRM false alarms (p < 0.001) on fair 50/50 splits of 10^6 | {alarms}/{experiments} |")
    print(f"| SRM p-value, 50/50 configured, 505,000/495,000 observed | {flagged.p_value:.1e} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"## A/B statistics by simulation (seed {args.seed})\n")
    a_a(rng, args.experiments, rate=0.05, days=14, per_day=2_000)
    power_rates_sim(rng, args.experiments, base=0.05, lift=0.005, days=14)
    power_means_sim(rng, args.experiments)
    cuped_sim(rng, args.experiments)
    coverage_and_srm(rng, args.experiments)
    print(f"Total {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
