"""A/B assignment: cost per request, sample-ratio checks over many ids, stickiness.

Prints Markdown. ``--units`` ids per sample-ratio check (default 10^6).

    PYTHONPATH=. python benchmarks/experiment_assignment.py
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy.stats import chisquare

from recsdk.config import load_settings
from recsdk.experiments.assignment import Experiments, assign_many
from recsdk.experiments.config import HOLDOUT, ExperimentSettings

NOW = datetime(2026, 12, 10, tzinfo=UTC)


def experiment(shares: dict[str, float], **extra: object) -> ExperimentSettings:
    table = {"placements": ["home"], "variants": {v: {"share": s} for v, s in shares.items()},
             **extra}
    return load_settings({"experiments": {"bench": table}}, environ={}).experiments[0]


def per_request(n: int) -> float:
    """Microseconds per Experiments.assign of a placement with two experiments in a
    layer, a holdout and a ramp: the work a request adds."""
    variants = {"a": {"share": 0.5}, "b": {"share": 0.5}}
    ramp = [{"at": NOW - timedelta(days=2), "shares": {"a": 0.1, "b": 0.1}},
            {"at": NOW - timedelta(days=1), "shares": {"a": 0.5, "b": 0.5}}]
    settings = load_settings({"experiments": {
        "left": {"placements": ["home"], "layer": "home", "layer_range": [0, 0.5],
                 "holdout": 0.05, "variants": variants, "ramp": ramp},
        "right": {"placements": ["home"], "layer": "home", "layer_range": [0.5, 1],
                  "variants": variants},
    }}, environ={})
    registry = Experiments(settings.experiments)
    start = time.perf_counter()
    for i in range(n):
        registry.assign("home", user_id=f"u{i}", session_id=None, now=NOW)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1_000_000)
    args = parser.parse_args()
    ids = [f"user:u{i}" for i in range(args.units)]
    print(f"## A/B assignment ({args.units:,} ids)\n")
    print("| split | holdout | observed shares | chi-square p | seconds |")
    print("|---|---|---|---|---|")
    for shares, holdout in (({"a": 0.5, "b": 0.5}, 0.0), ({"a": 0.2, "b": 0.3, "c": 0.5}, 0.0),
                            ({"a": 0.9, "b": 0.1}, 0.0), ({"a": 0.5, "b": 0.5}, 0.1)):
        e = experiment(shares, holdout=holdout)
        start = time.perf_counter()
        got = assign_many(e, ids, NOW)
        seconds = time.perf_counter() - start
        arms = [*shares, *([HOLDOUT] if holdout else [])]
        observed = np.array([(got == a).sum() for a in arms])
        expected = np.array([(1 - holdout) * shares[a] if a in shares else holdout
                             for a in arms]) * args.units
        p = chisquare(observed, expected).pvalue
        split = "/".join(f"{100 * s:g}" for s in shares.values())
        seen = ", ".join(f"{a} {o / args.units:.4f}" for a, o in zip(arms, observed,
                                                                      strict=True))
        print(f"| {split} | {holdout:g} | {seen} | {p:.3f} | {seconds:.2f} |")
    ramped = experiment({"a": 0.5, "b": 0.5}, ramp=[
        {"at": NOW, "shares": {"a": 0.05, "b": 0.05}},
        {"at": NOW + timedelta(days=1), "shares": {"a": 0.25, "b": 0.25}},
        {"at": NOW + timedelta(days=2), "shares": {"a": 0.5, "b": 0.5}}])
    previous = assign_many(ramped, ids, NOW)
    moved, joined = 0, []
    for day in (1, 2):
        now = assign_many(ramped, ids, NOW + timedelta(days=day))
        had = previous != ""
        moved += int((now[had] != previous[had]).sum())
        joined.append(int(((now != "") & ~had).sum()))
        previous = now
    print(f"\nRamp 5/5 -> 25/25 -> 50/50 %: {moved} units changed variant; "
          f"{joined[0]:,} then {joined[1]:,} joined.\n")
    print(f"Experiments.assign per request (2 experiments in a layer, holdout, ramp): "
          f"{per_request(100_000):.1f} µs.")


if __name__ == "__main__":
    main()
