"""Import at scale: is ``recsdk import`` linear in the file's size?

N synthetic events (recsdk.data.synthetic, seeded, generated block by block with
``materialize=False``) are streamed to a CSV file, then imported the way ``recsdk
import FILE`` does it (``load_table``: read and check; ``clean_events``; then the
events chunk by chunk through ``write_events``: PostgreSQL COPY / SQLite executemany,
one transaction per chunk) into a fresh PostgreSQL database and a fresh SQLite file.
Each import runs in a child process of its own, so its peak RSS is its own.

Printed per database: seconds to read+check and to clean, per-chunk write seconds
(first, median, last, and the last/first ratio: 1.0 is flat), write events/s, whole
import events/s, peak RSS, and the median CPU seconds this process spent per chunk
(encoding and driver; the rest of a chunk's wall time is the database server, or
waiting for a CPU on a shared machine). ``--profile`` writes a cProfile of the chunk writes.

Run (from the repository root):
    PYTHONPATH=. python benchmarks/import_scale.py [--events 1000000] [--seed 0]
        [--days 120] [--chunk-size 100000] [--backends postgres,sqlite] [--profile DIR]
        [--file events.csv]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from raw_baseline import Database

from recsdk.data.cleaning import CleaningConfig, clean_events
from recsdk.data.frames import write_events
from recsdk.data.loaders import load_table
from recsdk.data.synthetic import generate_shop

COLUMNS = ["user_id", "session_id", "item_id", "type", "timestamp", "value"]


def write_file(path: Path, n: int, seed: int, days: int, chunk: int) -> float:
    """Stream ``n`` events to a CSV file without holding them all; return seconds."""
    start = time.perf_counter()
    shop = generate_shop(n, seed=seed, days=days, materialize=False)
    with path.open("w", encoding="utf-8", newline="") as fh:
        for i, frame in enumerate(shop.iter_events(chunk)):
            frame[COLUMNS].to_csv(fh, index=False, header=i == 0)
    return time.perf_counter() - start


def import_once(kind: str, path: Path, chunk: int, profile: Path | None) -> dict[str, object]:
    """One import into a fresh database of ``kind``; the figures as a dict."""
    db = Database(kind)
    try:
        t0 = time.perf_counter()
        data = load_table(path)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        events, _ = clean_events(data.events, CleaningConfig())
        t_clean = time.perf_counter() - t0
        profiler = cProfile.Profile() if profile else None
        seconds = []
        cpu = []  # this process's CPU per chunk: the client's share, whatever the load
        stored = 0
        for start in range(0, len(events), chunk):
            part = events.iloc[start:start + chunk]
            t0, c0 = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            n, _ = write_events(db.store, part, validate=False)
            if profiler:
                profiler.disable()
            seconds.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            stored += n
        if profiler and profile:
            profiler.dump_stats(str(profile / f"import_{kind}.prof"))
        assert db.store.count_events() == stored == len(events)
        t_write = sum(seconds)
        return {
            "kind": kind, "events": stored, "load_s": t_load, "clean_s": t_clean,
            "write_s": t_write, "chunks": len(seconds), "first": seconds[0],
            "median": statistics.median(seconds), "last": seconds[-1],
            "cpu_median": statistics.median(cpu),
            "write_evs": stored / t_write, "total_evs": stored / (t_load + t_clean + t_write),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=120,
                        help="time span of the events (months: PostgreSQL partitions)")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--profile", type=Path, help="folder for cProfile dumps")
    parser.add_argument("--file", type=Path, help="keep the CSV here; an existing file "
                        "is reused (same --events/--seed/--days), not generated again")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = import_once(args.child[0], Path(args.child[1]), args.chunk_size,
                             args.profile)
        print("RESULT " + json.dumps(result))
        return
    print(f"# import scale: {args.events:,} events, seed {args.seed}, {args.days} days, "
          f"chunks of {args.chunk_size:,}; {platform.python_version()}, "
          f"{os.cpu_count()} CPUs (shared with other jobs: load {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "events.csv"
        if path.exists():
            print(f"reusing {path}: {path.stat().st_size / 2**20:,.0f} MiB")
        else:
            t_file = write_file(path, args.events, args.seed, args.days, args.chunk_size)
            print(f"streamed to {path.name}: {path.stat().st_size / 2**20:,.0f} MiB in "
                  f"{t_file:.1f} s")
        print(f"\n{'database':<10}{'read s':>8}{'clean s':>9}{'write s':>9}{'chunks':>8}"
              f"{'first':>8}{'median':>8}{'last':>8}{'last/1st':>9}{'write ev/s':>12}"
              f"{'import ev/s':>13}{'peak RSS':>10}{'client CPU/chunk':>18}")
        for kind in args.backends.split(","):
            command = [sys.executable, __file__, "--chunk-size", str(args.chunk_size),
                       "--child", kind, str(path)]
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                command += ["--profile", str(args.profile)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            r = json.loads(next(line for line in out.splitlines()
                                if line.startswith("RESULT "))[7:])
            print(f"{r['kind']:<10}{r['load_s']:>8.1f}{r['clean_s']:>9.1f}{r['write_s']:>9.1f}"
                  f"{r['chunks']:>8}{r['first']:>8.2f}{r['median']:>8.2f}{r['last']:>8.2f}"
                  f"{r['last'] / r['first']:>9.2f}{r['write_evs']:>12,.0f}"
                  f"{r['total_evs']:>13,.0f}{r['peak_rss_mib']:>8,.0f} MiB"
                  f"{r['cpu_median']:>16.2f} s", flush=True)


if __name__ == "__main__":
    main()
