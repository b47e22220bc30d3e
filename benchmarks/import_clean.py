"""Data import benchmark: clean + bulk-import synthetic events, next to the raw driver path.

One million synthetic events (recsdk.data.synthetic, seeded) are cleaned
(``clean_events``: rules, duplicates, bots, sessions, weights) and written with
``ShopData.write_to`` (``Store.copy_events``: PostgreSQL COPY / SQLite executemany),
into a fresh SQLite file and a fresh PostgreSQL database. In the same run the same
clean rows, encoded beforehand, go through the driver alone (sqlite3 ``executemany``
/ psycopg ``COPY``) into an identical empty schema, in the same chunks, so the ratio
shows what recsdk's import costs over the bare minimum. The same events then go the
way of ``recsdk import events.csv`` (read and check the file, clean, write). Then
ml-100k (RecBole atomic files) and the clothing reviews CSV are loaded, cleaned and
imported, with counts.

Run (from the repository root):
    PYTHONPATH=. python benchmarks/import_clean.py [--events 1000000] [--seed 0]
        [--data ../shared/data] [--chunk-size 100000] [--skip-postgres]
    PYTHONPATH=. python benchmarks/import_clean.py --generate-only 10000000
        (time and peak memory of generating, then of streaming, that many events)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from raw_baseline import Database, raw_insert

from recsdk.data.cleaning import CleaningConfig, clean_events
from recsdk.data.frames import ShopData
from recsdk.data.loaders import load_clothing_reviews, load_recbole, load_table
from recsdk.data.synthetic import generate_shop


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def encode(events: pd.DataFrame, kind: str) -> list[tuple[Any, ...]]:
    """The rows as the driver takes them (outside the raw timer)."""
    stamps = events["timestamp"]
    if kind == "sqlite":
        stamps = stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    else:
        stamps = pd.Series(stamps.dt.to_pydatetime(), dtype=object)
    value = events["value"].astype(object).where(events["value"].notna(), None)
    return list(zip(events["user_id"].astype(str), events["session_id"].astype(str),
                    events["item_id"].astype(str), events["type"].astype(str), stamps, value,
                    [None] * len(events), [None] * len(events), strict=True))


def bench_synthetic(n: int, seed: int, chunk: int, kinds: list[str]
                    ) -> tuple[pd.DataFrame, dict[str, float]]:
    shop, t_gen = timed(lambda: generate_shop(n, seed=seed, n_bots=5))
    print(f"\n## Synthetic shop: {n:,} events (seed {seed}), {len(shop.users):,} users, "
          f"{len(shop.items):,} items; generated in {t_gen:.1f} s ({n / t_gen:,.0f} ev/s)")
    (clean, report), t_clean = timed(lambda: clean_events(shop.events, CleaningConfig()))
    print(f"clean_events: {t_clean:.1f} s ({n / t_clean:,.0f} ev/s); kept {len(clean):,}, "
          f"dropped {report.dropped_rows:,} "
          f"({', '.join(f'{r.rule} {r.count:,}' for r in report.rules if r.action == 'dropped')})")
    data = ShopData(categories=shop.categories, items=shop.items, users=shop.users,
                    events=clean)
    print(f"\n{'database':<11}{'import ev/s':>13}{'clean+import ev/s':>19}{'raw ev/s':>11}"
          f"{'import/raw':>12}{'(clean+import)/raw':>20}")
    raw_seconds = {}
    for kind in kinds:
        ours, raw = Database(kind), Database(kind)
        try:
            counts, t_write = timed(lambda db=ours: data.write_to(db.store, chunk_size=chunk,
                                                                 validate=False))
            assert ours.store.count_events() == len(clean) == counts.events
            rows = encode(clean, kind)
            t_raw = raw_seconds[kind] = raw_insert(raw, rows, chunk)
            assert raw.store.count_events() == len(clean)
        finally:
            ours.drop()
            raw.drop()
        m = len(clean)
        print(f"{kind:<11}{m / t_write:>13,.0f}{n / (t_clean + t_write):>19,.0f}"
              f"{m / t_raw:>11,.0f}{t_write / t_raw:>12.2f}{(t_clean + t_write) / t_raw:>20.2f}")
        print(f"{'':<11}(import {t_write:.1f} s incl. {counts.items:,} items and "
              f"{counts.users:,} users; raw events only {t_raw:.1f} s)")
    return shop.events, raw_seconds


def bench_csv(events: pd.DataFrame, chunk: int, kinds: list[str],
              raw_seconds: dict[str, float]) -> None:
    """What ``recsdk import events.csv`` does: read + check, clean, bulk write."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.csv"
        text = events.drop(columns="event_id").assign(
            timestamp=events["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        text.to_csv(path, index=False)
        n = len(events)
        print(f"\n## The same events from a CSV file ({path.stat().st_size / 1e6:,.0f} MB), "
              "as `recsdk import` runs them")
        for kind in kinds:
            data, t_load = timed(lambda: load_table(path))
            (clean, _), t_clean = timed(lambda data=data: clean_events(data.events))
            db = Database(kind)
            try:
                counts, t_write = timed(lambda db=db, clean=clean: ShopData(
                    events=clean).write_to(db.store, chunk_size=chunk, validate=False))
                assert db.store.count_events() == counts.events == len(clean)
            finally:
                db.drop()
            total = t_load + t_clean + t_write
            print(f"{kind:<11} read+check {t_load:.1f} s, clean {t_clean:.1f} s, write "
                  f"{t_write:.1f} s: {n / total:,.0f} ev/s end to end; "
                  f"{total / raw_seconds[kind]:.2f} x the raw driver path")


def bench_dataset(name: str, load: Callable[[], ShopData], kinds: list[str]) -> None:
    data, t_load = timed(load)
    (clean, report), t_clean = timed(lambda: clean_events(data.events))
    data.events = clean
    print(f"\n## {name}: loaded in {t_load:.1f} s, cleaned in {t_clean:.1f} s")
    print(f"load report: {data.report.dropped_rows} rows skipped; cleaning dropped "
          f"{report.dropped_rows} ({', '.join(r.rule + ' ' + str(r.count) for r in report.rules)})")
    for kind in kinds:
        db = Database(kind)
        try:
            counts, t_write = timed(lambda db=db: data.write_to(db.store, validate=False))
            stored = db.store.count_events()
            n_items = len(db.store.items_frame())
        finally:
            db.drop()
        print(f"{kind:<11} imported in {t_write:.1f} s: {counts.categories} categories, "
              f"{counts.items} items (stored {n_items}), {counts.users} users, "
              f"{counts.events} events (stored {stored})")


def bench_generation(n: int, seed: int) -> None:
    """Generating ``n`` events in memory, then streaming them in 1M chunks."""
    shop, t_gen = timed(lambda: generate_shop(n, seed=seed))
    size = shop.events.memory_usage(deep=True).sum() / 1e6
    print(f"\n## Generation: {n:,} events, {len(shop.users):,} users, {len(shop.items):,} "
          f"items: {t_gen:.1f} s ({n / t_gen:,.0f} ev/s), events frame {size:,.0f} MB")
    del shop
    lazy = generate_shop(n, seed=seed, materialize=False)
    total, t_stream = timed(lambda: sum(len(c) for c in lazy.iter_events(1_000_000)))
    assert total == n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"streamed in 1M chunks: {t_stream:.1f} s; peak resident memory {peak:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--generate-only", type=int, metavar="N",
                        help="only time generating N events (e.g. 10000000)")
    args = parser.parse_args()
    if args.generate_only:
        bench_generation(args.generate_only, args.seed)
        return
    kinds = ["sqlite"] + ([] if args.skip_postgres else ["postgresql"])
    print(f"# recsdk data import benchmark ({platform.python_version()}, "
          f"pandas {pd.__version__}, {os.cpu_count()} cores)")
    events, raw_seconds = bench_synthetic(args.events, args.seed, args.chunk_size, kinds)
    bench_csv(events, args.chunk_size, kinds, raw_seconds)
    del events
    bench_dataset("ml-100k (RecBole atomic files)",
                  lambda: load_recbole(args.data / "ml-100k"), kinds)
    bench_dataset("Women's clothing reviews", lambda: load_clothing_reviews(
        args.data / "womens-clothing-reviews" / "reviews.csv"), kinds)


if __name__ == "__main__":
    main()
