"""Redis memory per active user: what the shared cache holds for a fleet (issue 14's
capacity model).

A synthetic shop (``generate_shop``, seeded) is stored in a temporary SQLite file and
trained with the quick start's plugins (config/demo.toml's blend); the SDK's cache is
a Redis database of its own (``--redis-url``, flushed before and after). Then, for
``--users`` known users, one page view: a ``track`` (the user's recent history, kept
in Redis) and a ``recommend`` of ``--k`` items (the served list, kept in Redis for its
TTL). Redis's ``used_memory`` before and after gives the bytes per active user, with
the key count and the mean ``MEMORY USAGE`` per kind of key.

Baseline in the same run: the same users' lists written raw, one Redis string per
user holding the item ids as JSON (what a hand-rolled cache of top-N lists would hold),
reported as a ratio.

Run (from the repository root):
    PYTHONPATH=. python benchmarks/redis_footprint.py [--users 5000] [--events 50000]
        [--k 10] [--redis-url redis://127.0.0.1:6379/12]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import defaultdict
from pathlib import Path

import redis

from benchmarks.catalogue_latency import DEMO_WEIGHTS
from recsdk import RecSDK
from recsdk.data.synthetic import generate_shop

DEMO_BLEND = {name: {"weight": weight} for name, weight in DEMO_WEIGHTS.items()}


def key_kind(key: bytes) -> str:
    """The key's family: its prefix up to the second ``:`` (ids stripped)."""
    parts = key.decode("utf-8", "replace").split(":")
    return ":".join(parts[:2])


def memory_by_kind(client: redis.Redis, sample: int = 2000) -> dict[str, tuple[int, float]]:
    """Per key family: how many keys and their mean ``MEMORY USAGE`` (a sample)."""
    keys: dict[str, list[bytes]] = defaultdict(list)
    for key in client.scan_iter(count=1000):
        keys[key_kind(key)].append(key)
    out = {}
    for kind, members in sorted(keys.items()):
        picked = members[:sample]
        sizes = [client.memory_usage(k) or 0 for k in picked]
        out[kind] = (len(members), sum(sizes) / max(len(sizes), 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    shop = generate_shop(args.events, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        sdk = RecSDK({"database_url": f"sqlite:///{Path(tmp) / 'shop.db'}",
                      "redis_url": args.redis_url, "plugins": DEMO_BLEND})
        try:
            shop.write_to(sdk)
            sdk.fit()
            client.flushdb()  # what training and loading left is not per user
            before = int(client.info("memory")["used_memory"])
            users = list(shop.users["id"].astype(str))
            random.Random(args.seed).shuffle(users)
            users = users[: args.users]
            items = list(shop.items["id"].astype(str))
            lists: dict[str, list[str]] = {}
            rng = random.Random(args.seed + 1)
            for user in users:
                sdk.track({"user_id": user, "item_id": rng.choice(items), "type": "view"})
                lists[user] = sdk.recommend(user, k=args.k).item_ids
            after = int(client.info("memory")["used_memory"])
            kinds = memory_by_kind(client)
            n_keys = int(client.dbsize())
        finally:
            sdk.close()
    client.flushdb()
    raw_before = int(client.info("memory")["used_memory"])
    for user, ids in lists.items():
        client.set(f"top:{user}", json.dumps(ids), ex=3600)
    raw_after = int(client.info("memory")["used_memory"])
    client.flushdb()

    n = len(lists)
    per_user = (after - before) / n
    raw_per_user = (raw_after - raw_before) / n
    print(f"{n:,} active users, one page view each (a tracked event and a list of "
          f"{args.k}); shop of {args.events:,} events, seed {args.seed}")
    print("| what | keys | bytes per active user | vs raw top-N string |")
    print("|---|---|---|---|")
    print(f"| recsdk cache (history + served list) | {n_keys:,} | {per_user:,.0f} | "
          f"{per_user / raw_per_user:.2f} |")
    print(f"| raw: one JSON string of {args.k} ids per user | {n:,} | "
          f"{raw_per_user:,.0f} | 1.00 |")
    print("\n| key family | keys | mean MEMORY USAGE bytes |")
    print("|---|---|---|")
    for kind, (count, mean) in kinds.items():
        print(f"| `{kind}` | {count:,} | {mean:,.0f} |")


if __name__ == "__main__":
    main()
