"""Validation cost of one imported chunk as the file grows (issue 14: linear ingestion).

A large import is read in chunks whose id columns are categoricals sharing the whole
file's categories (every id of the file). This times ``check_events`` on the same
100,000-row chunk (ids drawn from 20,000 users and 5,000 items) while the columns'
category count grows from 10,000 to 3,000,000, and prints each cost against the
smallest: a ratio near 1 means a chunk costs the same at the start of a 100M-event
import as at the end of a 1M one.

Run (from the repository root):
    PYTHONPATH=. python benchmarks/chunk_validation.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from recsdk.data.validation import check_events

CATEGORY_COUNTS = (10_000, 100_000, 1_000_000, 3_000_000)


def chunk(rows: int, categories: int, rng: np.random.Generator) -> pd.DataFrame:
    users = pd.Categorical.from_codes(rng.integers(0, min(categories, 20_000), rows),
                                      categories=[f"u{i}" for i in range(categories)])
    items = pd.Categorical.from_codes(rng.integers(0, min(categories, 5_000), rows),
                                      categories=[f"i{i}" for i in range(categories)])
    stamps = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 86_400 * 30, rows), unit="s")
    return pd.DataFrame({"user_id": users, "item_id": items,
                         "type": pd.Categorical(["view"] * rows), "timestamp": stamps})


def best_time(frame: pd.DataFrame, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        check_events(frame)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    first = None
    print(f"| categories per id column | check_events on a {args.rows:,}-row chunk (s) "
          "| ratio to the first |")
    print("|---|---|---|")
    for categories in CATEGORY_COUNTS:
        seconds = best_time(chunk(args.rows, categories, rng), args.repeat)
        first = first or seconds
        print(f"| {categories:,} | {seconds:.3f} | {seconds / first:.2f} |")


if __name__ == "__main__":
    main()
