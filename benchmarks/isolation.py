"""Isolation benchmark: a plugin that hangs or raises, against popularity alone, same run.

Scenarios, each ``--clients`` threads calling ``RecSDK.recommend`` back to back for
``--seconds`` on MovieLens-100K (random users, k = 10, ``result_ttl_s = 0`` so that every
request runs the pipeline and no scenario gains from the result cache):

* ``popularity``: popularity alone (and the default filters): the baseline.
* ``slow``: a plugin that sleeps 2 s in ``recsdk_score`` (issue 7, item 4); popularity
  has weight 0, so it serves only as the fallback and every list comes from it.
* ``raising``: a plugin that raises in ``recsdk_score`` beside popularity (issue 8).
* ``slow_fallback_1s``: ``slow`` with the fallback's own ``timeout_ms`` at 1000 ms, so
  that a fallback call delayed by a starved CPU still answers.

Each prints answers, throughput, non-empty and degraded shares, p50/p99/max latency and
the ratio to the baseline, and the bytes the failure log wrote. Then the cost of the
isolated call itself: a plugin call through the runner (its own thread, a deadline, a
breaker) against the same call made directly.

Run:  PYTHONPATH=. python benchmarks/isolation.py [--seconds 20] [--clients 8]
      [--data ../shared/data/ml-100k]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsdk import Plugin, RecSDK, hookimpl
from recsdk.isolation import PluginRunner
from recsdk.types import RecommendationRequest

K = 10
SLEEP_S = 2.0


class SleepsTwoSeconds(Plugin):
    @hookimpl
    def recsdk_score(self, candidates):
        time.sleep(SLEEP_S)
        return np.ones(len(candidates))


class Raising(Plugin):
    @hookimpl
    def recsdk_score(self, candidates):
        raise RuntimeError("model file corrupted")


SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, type]]] = {
    "popularity": ({"popularity": {}}, {}),
    "slow": ({"popularity": {"weight": 0}, "slow": {}}, {"slow": SleepsTwoSeconds}),
    "raising": ({"popularity": {}, "raising": {}}, {"raising": Raising}),
    # the same slow plugin, the fallback given a budget of its own (1 s)
    "slow_fallback_1s": ({"popularity": {"weight": 0, "timeout_ms": 1000}, "slow": {}},
                         {"slow": SleepsTwoSeconds}),
}


def load_shop(data: Path, url: str) -> list[str]:
    """Store ml-100k's items and ratings once, train popularity; return the user ids."""
    inter = pd.read_csv(data / "ml-100k.inter", sep="\t")
    items = pd.read_csv(data / "ml-100k.item", sep="\t")
    sdk = RecSDK({"database_url": url, "plugins": {"popularity": {}}}, environ={})
    try:
        sdk.upsert_items([{"id": str(i), "title": str(t)} for i, t in
                          zip(items["item_id:token"], items["movie_title:token_seq"],
                              strict=True)])
        events = [{"user_id": str(u), "item_id": str(i), "type": "rating", "value": float(r),
                   "timestamp": int(ts)}
                  for u, i, r, ts in inter.itertuples(index=False, name=None)]
        for start in range(0, len(events), 10_000):
            sdk.track_many(events[start:start + 10_000])
        sdk.fit()
    finally:
        sdk.close()
    return sorted(inter["user_id:token"].astype(str).unique())


def build_sdk(config: dict[str, Any], plugins: dict[str, type]) -> tuple[RecSDK, PluginRunner]:
    """An SDK and the runner its plugin managers share (built from ``config``)."""
    sdk = RecSDK(config, environ={}, plugins=plugins)
    return sdk, sdk.runner


def run_clients(call: Callable[[], Any], clients: int, seconds: float
                ) -> list[tuple[float, Any]]:
    out: list[tuple[float, Any]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    stop_at: list[float] = []

    def client() -> None:
        barrier.wait()
        if not stop_at:
            stop_at.append(time.perf_counter() + seconds)
        mine = []
        while time.perf_counter() < stop_at[0]:
            start = time.perf_counter()
            answer = call()
            mine.append((time.perf_counter() - start, answer))
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def scenario(name: str, url: str, users: list[str], args: argparse.Namespace
             ) -> dict[str, Any]:
    plugins, extra = SCENARIOS[name]
    config = {"database_url": url, "plugins": plugins, "cache": {"result_ttl_s": 0},
              "pipeline": {"timeout_ms": args.budget_ms,
                           "breaker_reset_s": args.breaker_reset_s}}
    sdk, _ = build_sdk(config, extra)
    log_bytes = io.StringIO()
    handler = logging.StreamHandler(log_bytes)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger("recsdk").addHandler(handler)
    rng = random.Random(0)
    try:  # no warm-up: the first requests, before the breaker opens, are the point
        answers = run_clients(lambda: sdk.recommend(rng.choice(users), k=K), args.clients,
                              args.seconds)
        value = sdk.telemetry.value
        names = sdk.plugins.names()
        by_reason = {p: {r: value("recsdk_plugin_skipped", plugin=p, reason=r)
                         for r in ("open", "saturated")} for p in names}
        skipped = {p: sum(by_reason[p].values()) for p in names}
        failed = {p: sum(value("recsdk_plugin_failures", plugin=p, hook=h, kind=k)
                         for h in sdk.plugins.hooks_of(p) for k in ("error", "timeout"))
                  for p in names}
    finally:
        logging.getLogger("recsdk").removeHandler(handler)
        sdk.close()
    lat = np.array([t for t, _ in answers]) * 1000
    return {
        "answers": len(answers), "per_s": len(answers) / args.seconds,
        "non_empty": 100 * np.mean([len(r.items) > 0 for _, r in answers]),
        "empty": sum(not r.items for _, r in answers),
        "full": 100 * np.mean([len(r.items) == K for _, r in answers]),
        "degraded": 100 * np.mean([r.degraded for _, r in answers]),
        "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()), "over_budget": int((lat > args.budget_ms + 50).sum()),
        "skipped": sum(skipped.values()), "log_bytes": len(log_bytes.getvalue().encode()),
        "by_plugin": ", ".join(
            f"{p} {failed[p]:.0f}/{skipped[p]:.0f}"
            + (f" (open {by_reason[p]['open']:.0f}, saturated {by_reason[p]['saturated']:.0f})"
               if skipped[p] else "")
            for p in names if failed[p] or skipped[p]) or "-",
    }


def print_scenarios(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    base = results["popularity"]
    print(f"\n## {args.clients} clients x {args.seconds:g} s, budget {args.budget_ms:g} ms, "
          f"breaker_reset_s {args.breaker_reset_s:g}; load average before/after: "
          f"{args.load_before:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| scenario | answers | req/s | x baseline | non-empty (empty) | full | degraded | "
          "p50 ms | p99 ms | p99 x baseline | max ms | > budget+50 | skipped | log bytes |")
    print("|---|" + "---|" * 13)
    for name, r in results.items():
        print(f"| {name} | {r['answers']:,} | {r['per_s']:,.0f} | "
              f"{r['per_s'] / base['per_s']:.2f} | {r['non_empty']:.2f}% ({r['empty']}) | "
              f"{r['full']:.2f}% | "
              f"{r['degraded']:.2f}% | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['p99'] / base['p99']:.2f} | {r['max']:.0f} | {r['over_budget']} | "
              f"{r['skipped']:,.0f} | {r['log_bytes']:,} |")
    print("failed/skipped calls by plugin (scenario: plugin failed/skipped): " + "; ".join(
        f"{name}: {r['by_plugin']}" for name, r in results.items()))


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def call_overhead(url: str, users: list[str], n: int) -> None:
    """A plugin call through the runner against the same call made directly."""
    sdk, runner = build_sdk({"database_url": url, "plugins": {"popularity": {}}}, {})
    executor = ThreadPoolExecutor(16)
    try:
        def noop() -> None:
            return None

        request = RecommendationRequest(user_id=users[0], k=K, catalog=sdk.catalog)
        candidates = sdk._state.all_candidates  # the full catalogue, as the pipeline uses
        popularity = sdk.plugins.get("popularity")

        def isolated_score() -> Any:
            return sdk.plugins.call_each("recsdk_score", timeout_ms=250,
                                         only=["popularity"], request=request,
                                         candidates=candidates)

        rows = [
            ("no-op", per_call_us(noop, n),
             per_call_us(lambda: executor.submit(noop).result(1), n),
             per_call_us(lambda: runner.call("popularity", noop, (), 250), n)),
            (f"popularity score, {len(candidates):,} candidates",
             per_call_us(lambda: popularity.recsdk_score(candidates), n),
             per_call_us(lambda: executor.submit(popularity.recsdk_score,
                                                 candidates).result(1), n),
             per_call_us(isolated_score, n)),
        ]
    finally:
        executor.shutdown()
        sdk.close()
    print(f"\n## Cost of one isolated call ({n:,} calls each, one caller)")
    print("| call | direct us | shared ThreadPoolExecutor us | isolated us | "
          "isolated - direct us |")
    print("|---|---|---|---|---|")
    for what, direct, pool, isolated in rows:
        print(f"| {what} | {direct:.1f} | {pool:.1f} | {isolated:.1f} | "
              f"{isolated - direct:.1f} |")
    print("(isolated = PluginManager.call_each for the score, PluginRunner.call for the "
          "no-op; the ThreadPoolExecutor column is the hand-off the old shared pool paid)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--budget-ms", type=float, default=250.0)
    parser.add_argument("--breaker-reset-s", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'shop.db'}"
        started = time.perf_counter()
        users = load_shop(args.data, url)
        print(f"ml-100k stored and popularity trained in {time.perf_counter() - started:.1f} s"
              f" ({len(users)} users)")
        names = ["popularity", *(n for n in args.only or SCENARIOS if n != "popularity")]
        results = {name: scenario(name, url, users, args) for name in names}
        print_scenarios(results, args)
        call_overhead(url, users, args.calls)


if __name__ == "__main__":
    main()
