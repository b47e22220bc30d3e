"""Event validation cost: the rule-based fast path and the column checks, against baselines.

Two measurements, each side by side with its baseline in the same run:

* API / Python ingestion: ``recsdk.schemas.load_events`` (the rules of recsdk/rules.py
  called directly) against marshmallow's ``EventSchema().load(many=True)`` on the same
  plain rows; the ratio is how much faster the fast path is.
* File import: ``recsdk.data.validation.check_events`` on a frame of text columns as
  ``recsdk import`` reads a CSV (every distinct value through the same rules), against
  the bare vectorised minimum (``pd.factorize`` of each id/type column and
  ``pd.to_datetime(format="ISO8601")`` of the timestamps), which checks nothing but
  parses the same cells.

Run (from the repository root):
    PYTHONPATH=. python benchmarks/validation_paths.py [--rows 100000] [--file-rows 1000000]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from recsdk.data.validation import check_events
from recsdk.schemas import EventSchema, load_events


def best_of(repeat: int, work: Callable[[], Any]) -> float:
    """The fastest of ``repeat`` runs, in seconds (the machine is shared and noisy)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def api_rows(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    stamps = 1_700_000_000 + rng.integers(0, 10**7, n)
    return [{"user_id": f"u{u}", "item_id": f"i{i}", "type": t,
             "timestamp": datetime.fromtimestamp(int(s), UTC).isoformat(),
             "session_id": f"s{u}", "value": 1.0, "event_id": f"e{k}",
             "context": {"page": "home"}}
            for k, (u, i, t, s) in enumerate(zip(
                rng.integers(0, 25_000, n), rng.integers(0, 10_000, n),
                rng.choice(["view", "click", "purchase"], n).tolist(), stamps, strict=True))]


def csv_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    stamps = 1_600_000_000 + rng.integers(0, 10**8, n)
    text = {
        "user_id": [f"u{u}" for u in rng.integers(0, 25_000, n)],
        "item_id": [f"i{i}" for i in rng.integers(0, 10_000, n)],
        "type": list(rng.choice(["view", "click", "purchase"], n)),
        "timestamp": [datetime.fromtimestamp(int(s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                      for s in stamps],
    }
    return pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in text.items()})


def bare_parse(frame: pd.DataFrame) -> None:
    for column in ("user_id", "item_id", "type"):
        pd.factorize(frame[column])
    pd.to_datetime(frame["timestamp"], format="ISO8601", utc=True, errors="coerce")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--file-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"Python {platform.python_version()}, pandas {pd.__version__}, "
          f"{platform.machine()}")

    rows = api_rows(args.rows, rng)
    fast = best_of(args.repeat, lambda: load_events(rows))
    schema = best_of(args.repeat, lambda: EventSchema().load(rows, many=True))
    print(f"\n{args.rows:,} API events | rows/s | s")
    print(f"load_events (rules, fast path) | {args.rows / fast:,.0f} | {fast:.2f}")
    print(f"EventSchema().load(many=True) | {args.rows / schema:,.0f} | {schema:.2f}")
    print(f"fast path speed-up over marshmallow: {schema / fast:.1f}x")

    frame = csv_frame(args.file_rows, rng)
    checked = best_of(args.repeat, lambda: check_events(frame))
    bare = best_of(args.repeat, lambda: bare_parse(frame))
    print(f"\n{args.file_rows:,} CSV events (text columns) | rows/s | s")
    print(f"check_events (rules per distinct value) | {args.file_rows / checked:,.0f} | "
          f"{checked:.2f}")
    print(f"bare factorize + to_datetime (no checks) | {args.file_rows / bare:,.0f} | "
          f"{bare:.2f}")
    print(f"check_events / bare: {checked / bare:.2f}")


if __name__ == "__main__":
    main()
