"""Spark MLlib's ALS (``recsdk train --engine spark``) against implicit's (the ``als``
plugin): NDCG@10 on MovieLens-100K, then fit time and peak memory on synthetic events.

Quality: the project protocol of benchmarks/evaluate_ml100k.py (per-user random 80/20
split, seed 42, full ranking, training items filtered, k = 10), the ``als`` plugin's
default parameters (factors, regularization, iterations, alpha) for both. The Spark
row is the plugin fitted by :func:`recsdk_plugins.factorization.spark.fit_als` on
``local[N]``; MLlib scales the L2 penalty by each row's count, so its ``regParam``
is mapped (:func:`mllib_reg_param`) and, for comparison, also given implicit's number
unchanged ("same number").

Scale: ``--events`` synthetic events (users = events/20, items = events/100, Zipf
item popularity, seed 42), each engine in a process of its own: fit seconds and peak
RSS (Python's, plus the Spark JVM's). Spark's time counts the fit on events already in
Spark (the matrix's collection included), not moving the events there.

    PYTHONPATH=. python benchmarks/spark_als.py [--data ../shared/data/ml-100k]
        [--master local[2]] [--events 1000000 ...] [--scale-factors 64]
        [--scale-iterations 10] [--skip-quality]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from recsdk_plugins.factorization import ALS
from recsdk_plugins.factorization.spark import fit_als

from recsdk import hookimpl
from recsdk.config import Settings
from recsdk.dataset import InteractionDataset
from recsdk.engines.spark_data import SparkEvents
from recsdk.engines.spark_session import start_session
from recsdk.evaluation.comparison import evaluate_plugin
from recsdk.evaluation.files import read_interactions
from recsdk.evaluation.offline import IMPLICIT_EVENT, PluginSpec
from recsdk.evaluation.splits import random_split
from recsdk.types import PluginContext

SEED = 42
TEST_RATIO = 0.2


class SparkALS(ALS):
    """The ``als`` plugin fitted by Spark MLlib on a local dataset (the benchmark's)."""

    session: Any = None
    #: None: mllib_reg_param's mapping; a number: MLlib's regParam as it is
    reg_param: float | None = None

    @hookimpl
    def recsdk_fit(self, dataset: InteractionDataset, context: PluginContext) -> None:
        self.recsdk_configure(context)
        data = SparkEvents.from_dataset(self.session, dataset)
        try:
            rows, users, items = fit_als(data, dict(self.params), self.weighting,
                                         self._seed, reg_param=self.reg_param)
        finally:
            data.close()
        self._set_factors(rows, users, items, dataset.item_ids)


def quality(data: Path, master: str) -> list[tuple[str, float, float]]:
    frame = read_interactions(data / "ml-100k.inter")
    split = random_split(frame, TEST_RATIO, SEED)
    session = start_session(master, {"spark.driver.memory": "2g"})
    SparkALS.session = session
    rows = []
    try:
        params = {"index": "none"}
        same = ALS.Params().load({})["regularization"]
        for label, cls, reg in (("implicit ALS", None, None),
                                ("Spark MLlib ALS (regParam mapped)", SparkALS, None),
                                (f"Spark MLlib ALS, same number (regParam {same:g})", SparkALS,
                                 same)):
            extra = None
            if cls is not None:
                cls.reg_param = reg
                extra = {"spark_als": cls}
            spec = PluginSpec(label, "spark_als" if cls else "als", params)
            result = evaluate_plugin(spec, split.train, split.test, k=10, seed=SEED,
                                     extra_plugins=extra, device="cpu")
            rows.append((label, result.main["ndcg"], result.fit_seconds))
            print(f"{label}: ndcg@10 {result.main['ndcg']:.4f} fit {result.fit_seconds:.1f} s",
                  flush=True)
    finally:
        session.stop()
    return rows


def synthetic(n_events: int, seed: int = SEED) -> InteractionDataset:
    rng = np.random.default_rng(seed)
    n_users, n_items = max(n_events // 20, 1), max(n_events // 100, 1)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = rng.choice(n_items, size=n_events, p=popularity / popularity.sum())
    users = rng.integers(0, n_users, size=n_events)
    frame = pd.DataFrame({"user_id": [f"u{u}" for u in users],
                          "item_id": [f"i{i}" for i in items], "type": IMPLICIT_EVENT,
                          "timestamp": np.arange(n_events, dtype=float)})
    return InteractionDataset.from_frame(frame, event_weights={IMPLICIT_EVENT: 1.0})


def jvm_peak_kib() -> int:
    """Peak RSS (VmHWM) of this process's java children, KiB."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if (b"java" in cmdline.split(b"\0")[0] and int(fields["PPid"]) in
                (os.getpid(), *_children(os.getpid()))):
            total += int(fields.get("VmHWM", "0 kB").split()[0])
    return total


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def one_run(engine: str, n_events: int, master: str, factors: int, iterations: int) -> None:
    """Fit once and print a JSON line (run in a process of its own)."""
    dataset = synthetic(n_events)
    params = ALS.Params().load({"factors": factors, "iterations": iterations,
                                "index": "none"})
    plugin = ALS(**params)
    context = PluginContext(settings=Settings(seed=SEED, device="cpu",
                                              event_weights={IMPLICIT_EVENT: 1.0}),
                            seed=SEED, device_setting="cpu")
    plugin.recsdk_configure(context=context)
    jvm = 0
    if engine == "implicit":
        start = time.perf_counter()
        plugin.recsdk_fit(dataset=dataset, context=context)
        seconds = time.perf_counter() - start
    else:
        session = start_session(master, {"spark.driver.memory": "2g"})
        data = SparkEvents.from_dataset(session, dataset, slices=8)
        start = time.perf_counter()
        fit_als(data, dict(plugin.params), plugin.weighting, SEED)  # collected arrays too
        seconds = time.perf_counter() - start
        jvm = jvm_peak_kib()
        session.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"engine": engine, "events": n_events, "seconds": seconds,
                      "python_kib": peak, "jvm_kib": jvm, "nnz": dataset.matrix.nnz}))


def scale(events: list[int], master: str, factors: int, iterations: int) -> list[dict]:
    out = []
    for n in events:
        for engine in ("implicit", "spark"):
            done = subprocess.run(
                [sys.executable, __file__, "--one", engine, "--events", str(n), "--master",
                 master, "--scale-factors", str(factors), "--scale-iterations",
                 str(iterations)], capture_output=True, text=True, check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
            line = json.loads(done.stdout.strip().splitlines()[-1])
            print(line, flush=True)
            out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--events", type=int, action="append", default=None)
    parser.add_argument("--scale-factors", type=int, default=64)
    parser.add_argument("--scale-iterations", type=int, default=10)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--one", choices=["implicit", "spark"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one_run(args.one, args.events[0], args.master, args.scale_factors,
                args.scale_iterations)
        return 0
    print(f"# {platform.node()}, {os.cpu_count()} cores, Spark {args.master}, "
          f"{time.strftime('%Y-%m-%d')}")
    if not args.skip_quality:
        rows = quality(args.data, args.master)
        base = rows[0][1]
        print("\n| ALS on ml-100k (seed 42) | ndcg@10 | vs implicit | fit s |")
        print("|---|---|---|---|")
        for label, ndcg, seconds in rows:
            print(f"| {label} | {ndcg:.4f} | {ndcg / base - 1:+.1%} | {seconds:.1f} |")
    if args.events:
        lines = scale(args.events, args.master, args.scale_factors, args.scale_iterations)
        print("\n| events | cells | engine | fit s | peak RSS MiB (Python + JVM) | "
              "time vs implicit |")
        print("|---|---|---|---|---|---|")
        by = {(r["events"], r["engine"]): r for r in lines}
        for r in lines:
            ref = by[(r["events"], "implicit")]["seconds"]
            python, jvm = r["python_kib"] / 1024, r["jvm_kib"] / 1024
            rss = (f"{python + jvm:,.0f} ({python:,.0f} + {jvm:,.0f})" if jvm
                   else f"{python:,.0f}")
            engine = f"Spark `{args.master}`" if r["engine"] == "spark" else "implicit"
            print(f"| {r['events']:,} | {r['nnz']:,} | {engine} | {r['seconds']:.1f} | "
                  f"{rss} | {r['seconds'] / ref:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
