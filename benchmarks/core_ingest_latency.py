"""Core SDK benchmark: event ingestion throughput and recommend() latency.

Ingestion: the same synthetic events go through ``RecSDK.track_many`` (validation,
idempotency bookkeeping, storage, plugin hooks) and, in the same run, through the raw
driver path into an identical fresh schema (sqlite3 ``executemany`` / psycopg
``COPY``), so the ratio shows what the SDK costs.

Latency: ``recommend()`` for the popularity pipeline, in-process and over HTTP
(waitress on 127.0.0.1), with the in-process cache and with Redis; each uncached
(``result_ttl_s = 0``, every request runs the pipeline) and cached (repeat users).

Run:  python benchmarks/core_ingest_latency.py [--events 200000] [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from raw_baseline import Database, raw_insert
from server_process import ServerProcess, clean_environment

from recsdk import RecSDK

REDIS = os.environ.get("RECSDK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BATCH = 10_000
N_ITEMS = 5_000
TYPES = ["view"] * 70 + ["click"] * 20 + ["add_to_cart"] * 7 + ["purchase"] * 3


def make_events(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        {
            "user_id": f"u{rng.randrange(20_000)}",
            "session_id": f"s{rng.randrange(60_000)}",
            "item_id": f"i{int(rng.random() ** 3 * N_ITEMS)}",  # skewed, all items seen
            "type": rng.choice(TYPES),
            "timestamp": (start + timedelta(seconds=i * 7)).isoformat(),
        }
        for i in range(n)
    ]


def encode(events: list[dict[str, Any]], kind: str) -> list[tuple[Any, ...]]:
    """The rows as the driver takes them (outside the raw timer)."""
    def stamp(text: str) -> Any:
        ts = datetime.fromisoformat(text)
        return ts.strftime("%Y-%m-%d %H:%M:%S.%f") if kind == "sqlite" else ts
    return [(e["user_id"], e["session_id"], e["item_id"], e["type"], stamp(e["timestamp"]),
             None, None, None) for e in events]


def sdk_insert(sdk: RecSDK, events: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for s in range(0, len(events), BATCH):
        sdk.track_many(events[s:s + BATCH])
    return time.perf_counter() - start


def bench_ingestion(n: int) -> None:
    events = make_events(n)
    print(f"\n## Ingestion: {n:,} events in batches of {BATCH:,}")
    print(f"{'database':<11}{'SDK ev/s':>12}{'raw ev/s':>12}{'SDK/raw time':>14}")
    for kind in ("sqlite", "postgresql"):
        sdk_db, raw_db = Database(kind), Database(kind)
        try:
            sdk = RecSDK({"database_url": sdk_db.url}, environ={})
            t_sdk = sdk_insert(sdk, events)
            assert sdk.store.count_events() == n
            sdk.close()
            t_raw = raw_insert(raw_db, encode(events, kind), BATCH)
        finally:
            sdk_db.drop()
            raw_db.drop()
        print(f"{kind:<11}{n / t_sdk:>12,.0f}{n / t_raw:>12,.0f}{t_sdk / t_raw:>13.2f}x")


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):6.2f} ms   p99 {np.percentile(ms, 99):6.2f} ms"


def write_config(config: dict[str, Any]) -> str:
    """The settings as a TOML file for the server process."""
    lines = [f'database_url = "{config["database_url"]}"']
    if config["redis_url"]:
        lines.append(f'redis_url = "{config["redis_url"]}"')
    lines += ["[cache]", f"result_ttl_s = {config['cache']['result_ttl_s']}",
              "[plugins.popularity]", "[plugins.trending]", "weight = 0.3"]
    path = os.path.join(tempfile.mkdtemp(), "recsdk.toml")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def timed(call: Callable[[str], None], users: list[str]) -> list[float]:
    out = []
    for u in users:
        start = time.perf_counter()
        call(u)
        out.append(time.perf_counter() - start)
    return out


def bench_latency(n_events: int, n_requests: int) -> None:
    events = make_events(n_events, seed=1)
    users = sorted({e["user_id"] for e in events})
    rng = random.Random(7)
    print(f"\n## recommend() latency, popularity + trending + filters, k=10, "
          f"{n_events:,} events, {n_requests:,} requests")
    for cache_name, redis_url in (("in-process", None), ("redis", REDIS)):
        db = Database("sqlite")
        try:
            for ttl, label in ((0.0, "uncached"), (300.0, "cached")):
                config = {"database_url": db.url, "redis_url": redis_url,
                          "cache": {"result_ttl_s": ttl},
                          "plugins": {"popularity": {}, "trending": {"weight": 0.3}}}
                sdk = RecSDK(config, environ={})
                if sdk.store.count_events() == 0:
                    sdk.track_many(events)
                    sdk.fit()
                if redis_url:
                    sdk.cache.clear()
                sample = [rng.choice(users) for _ in range(n_requests)]
                if label == "cached":  # warm: every user asked once already
                    for u in set(sample):
                        sdk.recommend(u)
                local = timed(lambda u, s=sdk: s.recommend(u), sample)
                sdk.close()
                server = ServerProcess(clean_environment(RECSDK_CONFIG=write_config(config)))
                conn = http.client.HTTPConnection("127.0.0.1", server.port)

                def over_http(u: str, c: http.client.HTTPConnection = conn) -> None:
                    c.request("GET", f"/api/v1/recommendations?user_id={u}&k=10")
                    response = c.getresponse()
                    body = json.loads(response.read())
                    assert response.status == 200 and len(body["items"]) == 10, body

                if label == "cached":
                    for u in set(sample):
                        over_http(u)
                remote = timed(over_http, sample)
                conn.close()
                server.stop()
                print(f"{cache_name:<11}{label:<10} in-process {percentiles(local)}   "
                      f"HTTP {percentiles(remote)}")
        finally:
            db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
    bench_ingestion(args.events)
    bench_latency(min(args.events, 100_000), args.requests)


if __name__ == "__main__":
    main()
