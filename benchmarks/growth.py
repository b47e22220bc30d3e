"""Growth benchmark: memory, metric series and logged rows over many anonymous GETs.

A synthetic shop (``recsdk.data.synthetic.generate_shop``) is stored in a fresh
SQLite file (and, with ``--postgres``, a fresh PostgreSQL database), popularity is
trained, and ``GET /api/v1/recommendations`` is called through Flask's test client
(the whole REST path: argument parsing, placement check, pipeline, cache, request
log) for random known users and anonymous session ids never seen before, at random
placements: configured ones and made-up ones (answered 422). Every ``--sample-every``
requests it prints the process's resident memory, the number of Prometheus samples
(what ``/metrics`` holds), the in-process cache's entries and the rows in
``recommendation_requests`` and ``impressions``. Then 1% of the served lists get a
click, and ``recsdk.maintenance.prune`` runs with a retention of 0 days (everything
served so far is past it): rows before and after, and its time.

The baseline, in the same run and afterwards (so that its memory is counted apart): a
plain ``prometheus_client`` registry given the same placements as labels of the SDK's
request metrics (``recommendations`` and the latency histogram), raw, as before
labels were bounded: its samples and the memory they take.

Run (from the repository root):
    PYTHONPATH=. python benchmarks/growth.py [--requests 100000] [--sample-every 10000]
        [--events 50000] [--unknown-share 0.2] [--anonymous-share 0.5]
        [--cache-max-entries 100000] [--postgres]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import platform
import random
import string
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from raw_baseline import Database

from recsdk import RecSDK, maintenance
from recsdk.api import create_app
from recsdk.data.synthetic import generate_shop

PLACEMENTS = {"product_page": {"k": 6}, "cart": {"k": 4}}


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def cache_entries(sdk: RecSDK) -> int:
    """Entries in the in-process cache (served lists and recent activity)."""
    cache: Any = sdk.cache
    return len(getattr(cache, "_values", ())) + len(getattr(cache, "_lists", ()))


class UnboundedBaseline:
    """The SDK's labelled request metrics with raw label values, as before bounding."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("recommendations", "", ["placement", "variant", "outcome"],
                             registry=self.registry)
        self.latency = Histogram("latency", "", ["placement"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25, 0.5, 1.0, 2.5))

    def observe(self, placement: str) -> None:
        self.calls.labels(placement=placement, variant="default", outcome="ok").inc()
        self.latency.labels(placement=placement).observe(0.002)

    def series(self) -> int:
        return sum(len(m.samples) for m in self.registry.collect())


def traffic(args: argparse.Namespace, known: Sequence[str],
            users: Sequence[str]) -> Iterator[tuple[int, str, str, bool]]:
    """The GETs, the same for a seed: (number, placement, who, click on it?)."""
    rng = random.Random(args.seed)
    for n in range(1, args.requests + 1):
        if rng.random() < args.unknown_share:
            placement = "".join(rng.choices(string.ascii_lowercase + "_-", k=12))
        else:
            placement = rng.choice(known)
        if rng.random() < args.anonymous_share:
            who = f"session_id=anon-{n}"
        else:
            who = f"user_id={rng.choice(users)}"
        yield n, placement, who, rng.random() < 0.01


def run(kind: str, args: argparse.Namespace) -> None:
    db = Database(kind)
    try:
        sdk = RecSDK({"database_url": db.url, "device": "cpu", "seed": args.seed,
                      "plugins": {"popularity": {}}, "placements": PLACEMENTS,
                      "cache": {"max_entries": args.cache_max_entries}},
                     environ={}, migrate=False)
        shop = generate_shop(args.events, seed=args.seed)
        shop.write_to(sdk)
        report = sdk.fit()
        users = shop.users["id"].astype(str).tolist()
        known = sdk.settings.known_placements
        client = create_app(sdk).test_client()
        print(f"\n## {kind}: {args.events:,} events, {report.users:,} users, "
              f"{report.items:,} items; placements {', '.join(known)}; "
              f"{args.unknown_share:.0%} of GETs at a made-up placement, "
              f"{args.anonymous_share:.0%} for a new anonymous session; in-process cache "
              f"of at most {args.cache_max_entries:,} entries per kind\n")
        gc.collect()
        start_rss = rss_mib()
        print("| GETs | 200 | 422 | RSS MiB | RSS growth MiB | series | cache entries "
              "| requests rows | impressions rows | GET/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        print(f"| 0 | 0 | 0 | {start_rss:.1f} | 0.0 | {sdk.telemetry.series()} | "
              f"{cache_entries(sdk)} | 0 | 0 | |")
        ok = refused = 0
        served: list[tuple[str, str]] = []
        window = time.perf_counter()
        for n, placement, who, click in traffic(args, known, users):
            answer = client.get(f"/api/v1/recommendations?{who}&placement={placement}")
            if answer.status_code == 200:
                ok += 1
                body = answer.get_json()
                if click and body["items"]:
                    served.append((body["request_id"], body["items"][0]["item_id"]))
            elif answer.status_code == 422:
                refused += 1
            else:
                raise RuntimeError(f"GET answered {answer.status_code}: {answer.get_data()}")
            if n % args.sample_every == 0:
                rate = args.sample_every / (time.perf_counter() - window)
                sdk.request_log.flush(timeout_s=60)
                rows = sdk.store.count_served()
                rss = rss_mib()
                print(f"| {n:,} | {ok:,} | {refused:,} | {rss:.1f} | {rss - start_rss:.1f} | "
                      f"{sdk.telemetry.series()} | {cache_entries(sdk):,} | "
                      f"{rows['requests']:,} | {rows['impressions']:,} | {rate:,.0f} |",
                      flush=True)
                window = time.perf_counter()
        clicks = [{"request_id": r, "item_id": i, "type": "click"} for r, i in served]
        stored = client.post("/api/v1/feedback", json=clicks)
        assert stored.status_code == 201, stored.get_json()
        dropped = sdk.telemetry.value("recsdk_request_log_dropped", reason="write_failed")
        full = sdk.telemetry.value("recsdk_request_log_dropped", reason="queue_full")
        before = sdk.store.count_served()
        started = time.perf_counter()
        removed = maintenance.prune(sdk.store, sdk.settings, older_than_days=0)
        took = time.perf_counter() - started
        after = sdk.store.count_served()
        print(f"\nrequest-log lists lost: {dropped:.0f} (write failed), {full:.0f} "
              f"(queue full); {len(clicks):,} clicks posted on served lists")
        print(f"\n| prune (retention 0 days, batch {sdk.settings.retention['prune_batch']}) "
              "| requests | impressions | feedback |")
        print("|---|---|---|---|")
        print(f"| before | {before['requests']:,} | {before['impressions']:,} | "
              f"{before['feedback']:,} |")
        print(f"| deleted in {took:.2f} s | {removed['requests']:,} | "
              f"{removed['impressions']:,} | 0 |")
        print(f"| after | {after['requests']:,} | {after['impressions']:,} | "
              f"{after['feedback']:,} |")
        # the baseline last, the SDK still open, so that its memory is all its own
        bounded = sdk.telemetry.series()
        baseline = UnboundedBaseline()
        gc.collect()
        base_rss = rss_mib()
        print("\nBaseline: the same placements into unbounded labels\n")
        print("| GETs | series | RSS growth MiB |")
        print("|---|---|---|")
        for n, placement, _, _ in traffic(args, known, users):
            baseline.observe(placement)
            if n % args.sample_every == 0:
                print(f"| {n:,} | {baseline.series():,} | {rss_mib() - base_rss:.1f} |")
        print(f"\nseries: {bounded} bounded against {baseline.series():,} unbounded "
              f"({baseline.series() / bounded:.0f}x)")
        sdk.close()
    finally:
        db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--sample-every", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--unknown-share", type=float, default=0.2)
    parser.add_argument("--anonymous-share", type=float, default=0.5)
    parser.add_argument("--cache-max-entries", type=int, default=100_000,
                        help="cache.max_entries (the default is 100,000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    print(f"# Growth over {args.requests:,} GETs (Python {platform.python_version()}, "
          f"{platform.machine()})")
    # each database in a fresh process: memory freed by one run would hide the next's
    spawn = multiprocessing.get_context("spawn")
    for kind in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
        child = spawn.Process(target=run, args=(kind, args))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"the {kind} run failed (exit status {child.exitcode})")


if __name__ == "__main__":
    main()
