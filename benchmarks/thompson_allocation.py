"""Thompson-sampling allocation against a fixed equal split, by simulation; prints Markdown.

Each simulated experiment has 3 arms (control ``a`` first), 14 daily epochs and 2,000
new units a day. The bandit's shares of each epoch come from
:func:`recsdk.experiments.allocation.shares_from_counts`, the function the serving
allocator uses (declared shares until every arm has ``warmup_units`` units, then
``thompson_shares`` seeded per epoch, floored at ``min_share``), on the cumulative counts
at the epoch's start. New units fall into the shares' hash ranges; fresh ids hash
uniformly, so a day's units per arm are multinomial. Conversions are Bernoulli and are
assumed to be seen before the next epoch starts (no delayed conversions).

Reported per scenario, for the bandit and for the fixed 1/3 split on the same rates:
the share of units on the best arm; expected conversions (sum of the units' true rates,
so that allocation is measured without conversion noise), against the fixed split and
against the oracle that sends everyone to the best arm (regret); how often the report's
rule (each variant against the control, two-proportion z-test, Holm over the two, alpha
0.05) declares the best arm a significant winner, or, in the A/A scenarios, declares any
winner; and the bias of the pooled per-arm rates (pooled rate minus the arm's mean true
rate over the 14 days, which is what a fixed split estimates).

Scenarios: ``planted`` (0.10 / 0.11 / 0.13), ``a/a`` (0.10 each) and ``a/a drift``
(0.10 each, all rising together from 0.08 to 0.12 over the two weeks: a seasonal trend
that no arm causes).

    PYTHONPATH=. python benchmarks/thompson_allocation.py [--repetitions 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from recsdk.config import load_settings
from recsdk.experiments.allocation import shares_from_counts
from recsdk.experiments.config import ExperimentSettings
from recsdk.experiments.stats import Comparison, adjust_comparisons, compare_rates

DAYS = 14
UNITS_PER_DAY = 2_000
ALPHA = 0.05
NAMES = ("a", "b", "c")
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def experiment(warmup_units: int, min_share: float) -> ExperimentSettings:
    table = {"placements": ["home"], "start": T0,
             "variants": {v: {"share": 1 / len(NAMES)} for v in NAMES},
             "allocation": {"method": "thompson", "every_hours": 24,
                            "warmup_units": warmup_units, "min_share": min_share}}
    return load_settings({"experiments": {"bench": table}}, environ={}).experiments[0]


def daily_rates(base: tuple[float, ...], drift: tuple[float, float] | None) -> np.ndarray:
    """(DAYS, arms) true conversion rates; ``drift``: a common factor from lo to hi."""
    rates = np.tile(np.asarray(base, dtype=float), (DAYS, 1))
    if drift is not None:
        lo, hi = drift
        rates *= np.linspace(lo, hi, DAYS)[:, None] / np.mean(base)
    return rates


@dataclasses.dataclass
class Run:
    trials: np.ndarray  # per arm, pooled over the days
    successes: np.ndarray
    expected_conversions: float


def bandit(e: ExperimentSettings, rates: np.ndarray, rng: np.random.Generator) -> Run:
    s, n = np.zeros(len(NAMES), dtype=np.int64), np.zeros(len(NAMES), dtype=np.int64)
    expected = 0.0
    for day in range(DAYS):
        counts = {v: (int(s[i]), int(n[i])) for i, v in enumerate(NAMES)}
        shares = shares_from_counts(e, counts, day, T0 + timedelta(days=day)).shares
        units = rng.multinomial(UNITS_PER_DAY, [shares[v] for v in NAMES])
        s += rng.binomial(units, rates[day])
        n += units
        expected += float(units @ rates[day])
    return Run(n, s, expected)


def fixed(rates: np.ndarray, rng: np.random.Generator) -> Run:
    units = rng.multinomial(UNITS_PER_DAY, [1 / len(NAMES)] * len(NAMES), size=DAYS)
    return Run(units.sum(axis=0), rng.binomial(units, rates).sum(axis=0),
               float((units * rates).sum()))


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, written out: statsmodels' ``multipletests`` (behind
    ``adjust_comparisons``) runs ``gc.collect()`` on every call, 0.1-0.2 s here, which
    would be most of the benchmark's time. :func:`main` checks that they agree."""
    order = np.argsort(p_values)
    m, running, out = len(p_values), 0.0, [0.0] * len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def comparisons(run: Run) -> list[Comparison]:
    """Each variant against the control ``a``: the report's z-test on units."""
    return [compare_rates(int(run.successes[0]), int(run.trials[0]),
                          int(run.successes[i]), int(run.trials[i]),
                          metric="conversion_rate", control="a", treatment=v)
            for i, v in enumerate(NAMES) if i]


def winners(run: Run) -> set[str]:
    """The report's rule: Holm over the comparisons, adjusted p < alpha, positive lift."""
    found = comparisons(run)
    adjusted = holm([c.p_value for c in found])
    return {c.treatment for c, p in zip(found, adjusted, strict=True)
            if p < ALPHA and c.lift_abs > 0}


def check_holm(rng: np.random.Generator) -> None:
    """The written-out Holm equals the report's (statsmodels), on random runs."""
    for _ in range(20):
        trials = rng.integers(500, 5_000, len(NAMES))
        run = Run(trials, rng.binomial(trials, rng.uniform(0.05, 0.15, len(NAMES))), 0.0)
        found = comparisons(run)
        ours = holm([c.p_value for c in found])
        theirs = [c.p_value_adjusted for c in adjust_comparisons(found, alpha=ALPHA)]
        assert np.allclose(ours, theirs, rtol=0, atol=1e-12), (ours, theirs)


def scenario(name: str, base: tuple[float, ...], drift: tuple[float, float] | None,
             repetitions: int, seed: int, e: ExperimentSettings) -> None:
    rates = daily_rates(base, drift)
    truth = rates.mean(axis=0)
    best = int(np.argmax(truth)) if len(set(base)) > 1 else None
    streams = np.random.SeedSequence([seed, sum(map(ord, name))]).spawn(repetitions)
    started = time.perf_counter()
    out: dict[str, dict[str, list[float]]] = {"Thompson": {}, "fixed 1/3": {}}
    for rep, stream in enumerate(streams):
        b_rng, f_rng = (np.random.default_rng(s) for s in stream.spawn(2))
        mine = dataclasses.replace(e, allocation=dataclasses.replace(e.allocation, seed=rep))
        for label, run in (("Thompson", bandit(mine, rates, b_rng)), ("fixed 1/3",
                                                                       fixed(rates, f_rng))):
            rec = out[label]
            total = run.trials.sum()
            won = winners(run)
            rec.setdefault("conversions", []).append(run.expected_conversions)
            rec.setdefault("on_best", []).append(
                run.trials[best] / total if best is not None else math.nan)
            for v in NAMES[1:]:
                rec.setdefault(f"won_{v}", []).append(float(v in won))
            rec.setdefault("won_any", []).append(float(bool(won)))
            rec.setdefault("on_control", []).append(run.trials[0] / total)
            for i, v in enumerate(NAMES):
                rate = run.successes[i] / run.trials[i] if run.trials[i] else math.nan
                rec.setdefault(f"bias_{v}", []).append(rate - truth[i])
            rec.setdefault("lift", []).append(
                run.successes[-1] / run.trials[-1] - run.successes[0] / run.trials[0])
    seconds = time.perf_counter() - started
    oracle = float(UNITS_PER_DAY * rates.max(axis=1).sum())
    fixed_conv = float(np.mean(out["fixed 1/3"]["conversions"]))
    print(f"\n### {name}: rates {' / '.join(f'{r:g}' for r in base)}"
          + (f", all drifting {drift[0]:g} -> {drift[1]:g}" if drift else "")
          + f" ({repetitions} repetitions, {seconds:.0f} s)\n")
    print(f"| allocation | units on best arm | on control | expected conversions | vs fixed "
          f"| regret vs oracle | b wins | c wins | any winner | bias a | bias b | bias c "
          f"| lift c - a (true {truth[-1] - truth[0]:+.4f}) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, rec in out.items():
        conv = float(np.mean(rec["conversions"]))
        wins = []
        for key in ("won_b", "won_c", "won_any"):
            rate = float(np.mean(rec[key]))
            wins.append(f"{rate:.3f} ({math.sqrt(rate * (1 - rate) / repetitions):.3f})")
        biases = []
        for v in NAMES:
            values = np.asarray(rec[f"bias_{v}"])
            se_bias = values.std(ddof=1) / math.sqrt(len(values))
            biases.append(f"{values.mean():+.5f} ({se_bias:.5f})")
        lift = np.asarray(rec["lift"])
        on_best = ("-" if best is None else f"{np.mean(rec['on_best']):.3f}")
        print(f"| {label} | {on_best} | {np.mean(rec['on_control']):.3f} | {conv:,.0f} | "
              f"{conv - fixed_conv:+,.0f} | {oracle - conv:,.0f} | {' | '.join(wins)} | "
              f"{' | '.join(biases)} | "
              f"{lift.mean():+.5f} ({lift.std(ddof=1) / math.sqrt(len(lift)):.5f}) |")


def serving_cost(url: str, units: int, seed: int) -> None:
    """What Thompson assignment adds to a request on one database: a new unit (read,
    place, insert), a returning unit in this process's cache, a returning unit another
    process placed (one read), the fixed hash for comparison; and the once-per-epoch
    computation (the report; in the background, off the request path) after 1 and 14
    days of ``UNITS_PER_DAY`` exposures, 10 % of them converting."""
    from recsdk.experiments.allocation import compute_epoch
    from recsdk.experiments.assignment import assign
    from recsdk.experiments.sticky import ThompsonAssigner
    from recsdk.storage.store import Store
    from recsdk.types import new_request_id

    rng = np.random.default_rng(seed)
    store = Store(url)
    store.create_all()
    e = experiment(100, 0.05)
    flat = load_settings({"experiments": {"flat": {
        "placements": ["home"], "variants": {v: {"share": 1 / len(NAMES)} for v in NAMES}}}},
        environ={}).experiments[0]
    at = T0 + timedelta(hours=1)
    one = ThompsonAssigner(store)
    one.assign(e, "user:first", at)  # computes epoch 0 (warm-up) outside the timings
    ids = [f"user:s{i}" for i in range(units)]

    def per_call(fn: Any) -> float:
        started = time.perf_counter()
        for unit in ids:
            fn(unit)
        return (time.perf_counter() - started) / units * 1e6

    new = per_call(lambda u: one.assign(e, u, at))
    cached = per_call(lambda u: one.assign(e, u, at))
    other = ThompsonAssigner(store)
    other.epochs.shares(e, at)
    read = per_call(lambda u: other.assign(e, u, at))
    hashed = per_call(lambda u: assign(flat, u, at))
    days = []
    for day in range(DAYS):
        requests, feedback = [], []
        for i in range(UNITS_PER_DAY):
            rid, when = new_request_id(), T0 + timedelta(days=day, seconds=40 * i)
            variant = NAMES[int(rng.integers(len(NAMES)))]
            requests.append({"request_id": rid, "user_id": f"d{day}u{i}", "session_id": None,
                             "placement": "home", "variant": variant, "experiment": e.name,
                             "forced": False, "config_hash": "bench", "plugins": ["p"],
                             "degraded": False, "created_at": when, "items": [("i0", 0, 1.0)]})
            if rng.random() < 0.1:
                feedback.append({"request_id": rid, "user_id": f"d{day}u{i}", "item_id": "i0",
                                 "type": "purchase", "position": 0, "value": 10.0,
                                 "variant": variant, "timestamp": when + timedelta(minutes=5)})
        store.record_requests(requests)
        store.add_feedback(feedback)
        started = time.perf_counter()
        compute_epoch(store, e, day + 1, T0 + timedelta(days=day + 1))
        days.append(time.perf_counter() - started)
    store.close()
    print(f"| {url.split(':', 1)[0]} | {new:,.0f} | {cached:,.1f} | {read:,.0f} | "
          f"{hashed:,.1f} | {days[0]:.2f} | {days[-1]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repetitions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup-units", type=int, default=100)
    parser.add_argument("--min-share", type=float, default=0.05)
    parser.add_argument("--serving-units", type=int, default=2000,
                        help="units per serving-cost timing (0: skip that part)")
    parser.add_argument("--postgres-url", default=None,
                        help="also time serving on this (empty, throwaway) PostgreSQL database")
    args = parser.parse_args()
    e = experiment(args.warmup_units, args.min_share)
    check_holm(np.random.default_rng(args.seed))
    print(f"{DAYS} daily epochs, {UNITS_PER_DAY:,} new units a day, warm-up "
          f"{args.warmup_units} units per arm, min_share {args.min_share:g}, seed {args.seed}; "
          "(Monte-Carlo standard errors in brackets)")
    scenario("planted", (0.10, 0.11, 0.13), None, args.repetitions, args.seed, e)
    scenario("a/a", (0.10, 0.10, 0.10), None, args.repetitions, args.seed, e)
    scenario("a/a drift", (0.10, 0.10, 0.10), (0.08, 0.12), args.repetitions, args.seed, e)
    if args.serving_units:
        print(f"\n### Serving cost ({args.serving_units:,} units per timing, µs per call)\n")
        print("| database | new unit | returning, cached | returning, other process | "
              "fixed hash | epoch computation after 1 day (s) | after 14 days (s) |")
        print("|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as folder:
            serving_cost(f"sqlite:///{Path(folder) / 'bench.db'}", args.serving_units,
                         args.seed)
        if args.postgres_url:
            serving_cost(args.postgres_url, args.serving_units, args.seed)


if __name__ == "__main__":
    main()
