"""A serving fleet on one machine: ``recsdk serve --workers 1/2/4`` sharing PostgreSQL,
Redis and memory-mapped model artifacts (issue 14, deliverable 5).

In one run: a synthetic shop (``--items`` items, ``--users`` users, ``--events`` events)
in a PostgreSQL database of its own (``--database``, created and dropped; no other
database is touched), Redis on a database number of its own (``--redis``; only the
``recsdk:`` keys there are deleted, before and after), trained with the default
plugins (``popularity``, ``filters``) plus ``als`` and ``item_knn``, artifacts in a
directory of their own (every array above 1 MiB a memory-mapped ``.npy`` file). Then
for each worker count, ``recsdk serve --workers N`` (waitress for 1, gunicorn above)
as a subprocess, and a load generator (``--clients`` threads over 2 processes, kept-
alive connections, closed loop) making GETs for random users:

- baseline: ``/healthz`` (a database ping, no scoring) for ``--baseline-duration`` s;
- ``/api/v1/recommendations?user_id=U&k=10`` for ``--duration`` s, a share ``--miss``
  of them for users never asked before (a cache miss: the whole pipeline runs), the
  rest for 1,000 users whose lists were cached in Redis beforehand (a hit).

Reported per worker count: requests/s, p50, p99, server CPU ms per request (less
disturbed by other jobs than throughput), and per worker RSS, PSS, shared and private
memory and the part of RSS that is artifact pages (``/proc/PID/smaps``); ratios against
the ``/healthz`` baseline of the same server and against 1 worker. Last, a new run
trained by ``recsdk train`` in another process (with ``[models] model_refresh_s = 2``)
and the seconds until every worker of the largest fleet serves it.

    PYTHONPATH=. python benchmarks/fleet_throughput.py [--items 100000] [--users 50000]
        [--events 1000000] [--workers 1,2,4] [--threads 4] [--clients 8]
        [--duration 20] [--miss 0.2] [--keep]

Linux only (``/proc``). The load generator runs on the same machine and takes CPU from
the servers; on a machine with fewer cores than workers the workers share the cores,
so throughput cannot grow with the worker count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ServerProcess, clean_environment
from serving import Figures, cpu_seconds, settle

REPO = Path(__file__).resolve().parents[1]
WORKER_HEADER = "X-Recsdk-Worker"
HOT_USERS = 1000
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


# ---- the shop ------------------------------------------------------------------------------

@contextmanager
def own_database(admin_url: str, name: str, keep: bool) -> Iterator[str]:
    """A database ``name`` on the server of ``admin_url``, created afresh (dropped
    first if a previous run left it) and dropped at the end unless ``keep``."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(admin_url)
    plain = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with psycopg.connect(plain, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clear_redis(url: str) -> int:
    """Delete recsdk's keys (``recsdk:*``) on the Redis database of ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter("recsdk:*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start:start + 10_000])
        return len(keys)
    finally:
        client.close()


def write_config(path: Path, database_url: str, redis_url: str, artifacts: Path,
                 plugins: str) -> Path:
    path.write_text(
        f'database_url = "{database_url}"\nredis_url = "{redis_url}"\ndevice = "cpu"\n'
        "[cache]\nresult_ttl_s = 3600\n"  # a cached list stays a hit for the whole run
        f'[models]\nartifact_dir = "{artifacts}"\nmodel_refresh_s = 2\n'
        "inline_max_bytes = 1048576\n" + plugins)
    return path


FLEET_PLUGINS = """[plugins.popularity]
[plugins.filters]
[plugins.als]
factors = 128
iterations = 8
[plugins.item_knn]
"""
#: The second run (the propagation check): quick to train, a different run id.
SMALL_PLUGINS = "[plugins.popularity]\n[plugins.filters]\n"


def fill_and_train(config: Path, args: argparse.Namespace) -> tuple[list[str], float]:
    """Store the synthetic shop and train it; the user ids and training seconds."""
    from recsdk import RecSDK
    from recsdk.data.synthetic import generate_shop

    started = time.perf_counter()
    shop = generate_shop(args.events, seed=args.seed, n_items=args.items, n_users=args.users)
    sdk = RecSDK(str(config), environ={})
    try:
        counts = shop.write_to(sdk, validate=False)
        stored = time.perf_counter()
        report = sdk.fit()
    finally:
        sdk.close()
    trained = time.perf_counter()
    print(f"shop: {counts.items:,} items, {counts.users:,} users, {counts.events:,} events "
          f"stored in {stored - started:.0f} s; trained in {trained - stored:.0f} s "
          f"({report.interactions:,} interactions)")
    sizes = {name: f"{size / 2**20:.1f} MiB" for name, size in report.plugins.items()}
    print(f"artifact bytes per plugin: {sizes}")
    users = sorted(shop.users["id"].astype(str))
    return users, trained - stored


def artifact_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


# ---- memory --------------------------------------------------------------------------------

@dataclass
class Memory:
    rss: float  # MiB
    pss: float
    shared: float
    private: float
    artifact_rss: float  # artifact file pages mapped by this process
    artifact_pss: float


def memory(pid: int, artifacts: Path) -> Memory:
    """A process's memory from ``/proc/PID/smaps``: totals and its artifact mappings."""
    totals = dict.fromkeys(("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                            "Private_Dirty"), 0)
    art = {"Rss": 0, "Pss": 0}
    in_artifacts = False
    root = str(artifacts.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if not head:
            continue
        if not head[0].endswith(":"):  # a mapping's header line: range perms ... path
            in_artifacts = len(head) == 6 and head[5].startswith(root)
            continue
        key = head[0][:-1]
        if key in totals:
            kib = int(head[1])
            totals[key] += kib
            if in_artifacts and key in art:
                art[key] += kib
    mib = {k: v / 1024 for k, v in totals.items()}
    return Memory(mib["Rss"], mib["Pss"], mib["Shared_Clean"] + mib["Shared_Dirty"],
                  mib["Private_Clean"] + mib["Private_Dirty"], art["Rss"] / 1024,
                  art["Pss"] / 1024)


def worker_pids(pid: int, workers: int) -> list[int]:
    """The serving processes: the server itself (waitress) or gunicorn's workers."""
    if workers == 1:
        return [pid]
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return sorted(children)


#: Run in a fresh interpreter: its memory after each step of what a worker does at boot.
BREAKDOWN = """
import json, sys
def step(name):
    fields = {}
    for line in open("/proc/self/smaps_rollup"):
        key, _, rest = line.partition(":")
        if key in ("Rss", "Private_Clean", "Private_Dirty"):
            fields[key] = int(rest.split()[0]) / 1024
    print(json.dumps([name, fields["Rss"],
                      fields["Private_Clean"] + fields["Private_Dirty"]]), flush=True)
step("interpreter")
from recsdk import RecSDK
from recsdk.api import create_app
step("recsdk and Flask imported")
sdk = RecSDK(serve_models=False, migrate=False)
create_app(sdk)
step("SDK open: settings, database, catalogue, plugins configured (no run)")
sdk.load_models()
step("active run loaded")
for user in sys.argv[1:]:
    sdk.recommend(user, k=10, log_request=False)
step("after recommendations for 200 users")
sdk.close()
"""


def private_breakdown(env: dict[str, str], users: list[str]) -> list[tuple[str, float, float]]:
    """(step, RSS MiB, private MiB) of one process doing what a worker does at boot."""
    done = subprocess.run([sys.executable, "-c", BREAKDOWN, *users], env=env,
                          capture_output=True, text=True, check=True)
    return [tuple(json.loads(line)) for line in done.stdout.splitlines()
            if line.startswith("[")]


# ---- load ----------------------------------------------------------------------------------

def _client(port: int, paths: list[str], cold: list[str], miss: float, seconds: float,
            seed: int, out: list[tuple[float, int]]) -> None:
    """One kept-alive connection, requests back to back until ``seconds`` are up."""
    rng = random.Random(seed)
    cold_left = iter(cold)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        path = rng.choice(paths)
        if cold and rng.random() < miss:
            path = f"/api/v1/recommendations?user_id={next(cold_left)}&k=10"
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException, StopIteration):
            status = 0
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        out.append((time.perf_counter() - now, status))
    conn.close()


def _load_process(port: int, paths: list[str], cold: list[list[str]], miss: float,
                  seconds: float, seed: int) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    threads = [threading.Thread(target=_client, args=(port, paths, part, miss, seconds,
                                                      seed * 1000 + i, out))
               for i, part in enumerate(cold)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def drive(port: int, paths: list[str], cold: list[str], miss: float, seconds: float,
          clients: int, seed: int) -> Figures:
    """``clients`` threads over 2 processes; cold users split so none is asked twice."""
    processes = 2
    per = [clients // processes + (p < clients % processes) for p in range(processes)]
    parts = [cold[i::clients] for i in range(clients)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        jobs, start = [], 0
        for p, n in enumerate(per):
            jobs.append(pool.apply_async(_load_process, (port, paths, parts[start:start + n],
                                                         miss, seconds, seed + p)))
            start += n
        rows = [row for job in jobs for row in job.get(timeout=seconds + 120)]
    latency = np.array([r[0] for r in rows]) * 1000
    ok = np.array([r[1] == 200 for r in rows])
    return Figures(rps=len(rows) / seconds, p50_ms=float(np.percentile(latency, 50)),
                   p99_ms=float(np.percentile(latency, 99)), errors=int((~ok).sum()),
                   requests=len(rows))


def wait_for_workers(port: int, workers: int, timeout_s: float = 600.0) -> dict[str, str]:
    """Ask ``/healthz`` on fresh connections until ``workers`` processes answered;
    their model runs by worker pid."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only workers {sorted(seen)} answered in {timeout_s:.0f} s")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = json.loads(response.read())
            seen[response.getheader(WORKER_HEADER, "")] = body.get("model_run") or ""
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
        finally:
            conn.close()
    return seen


def runs_by_worker(port: int, pids: list[int], attempts: int = 400) -> dict[int, str]:
    """The model run each worker serves (``/healthz`` on fresh connections until every
    pid answered; gunicorn hands each new connection to whichever worker accepts)."""
    runs: dict[int, str] = {}
    for _ in range(attempts):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        runs[int(response.getheader(WORKER_HEADER, "0"))] = json.loads(
            response.read())["model_run"]
        conn.close()
        if set(runs) >= set(pids):
            break
    return runs


def warm_hot_users(port: int, hot: list[str]) -> None:
    """Serve the hot users once, so that their lists sit in Redis."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for user in hot:
        conn.request("GET", f"/api/v1/recommendations?user_id={user}&k=10")
        conn.getresponse().read()
    conn.close()


# ---- the run -------------------------------------------------------------------------------

@dataclass
class Row:
    workers: int
    health: Figures
    recs: Figures
    cpu_ms: float
    load: tuple[float, float]
    memory: list[Memory]
    boot_s: float


def measure(config: Path, env: dict[str, str], workers: int, args: argparse.Namespace,
            hot: list[str], cold: list[str], artifacts: Path) -> tuple[Row, ServerProcess]:
    started = time.perf_counter()
    server = ServerProcess(env, ["--workers", str(workers), "--threads", str(args.threads)],
                           start_timeout_s=600)
    wait_for_workers(server.port, workers)
    boot = time.perf_counter() - started
    pid = server.process.pid
    warm_hot_users(server.port, hot)  # cached in Redis: misses the first time only
    settle(pid)
    health = drive(server.port, ["/healthz"], [], 0.0, args.baseline_duration, args.clients,
                   seed=1)
    settle(pid)
    paths = [f"/api/v1/recommendations?user_id={u}&k=10" for u in hot]
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(pid) or 0.0
    recs = drive(server.port, paths, cold, args.miss, args.duration, args.clients,
                 seed=100 + workers)
    cpu = (cpu_seconds(pid) or 0.0) - cpu_before
    load_after = os.getloadavg()[0]
    mem = [memory(p, artifacts) for p in worker_pids(pid, workers)]
    row = Row(workers, health, recs, 1000 * cpu / max(recs.requests, 1),
              (load_before, load_after), mem, boot)
    return row, server


def propagation(server: ServerProcess, workers: int, small_config: Path,
                env: dict[str, str]) -> tuple[float, float, str]:
    """Train a second run in another process; seconds from its end until every worker
    serves it, and the training seconds."""
    pids = worker_pids(server.process.pid, workers)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "recsdk.cli", "--config", str(small_config),
                           "train"], env=env, capture_output=True, text=True, check=True)
    trained = time.perf_counter()
    from recsdk import RecSDK

    sdk = RecSDK(str(small_config), environ={}, serve_models=False)
    try:
        new_run = sdk.registry.active_run_id() or ""
    finally:
        sdk.close()
    assert new_run, done.stdout
    while True:
        runs = runs_by_worker(server.port, pids)
        if set(runs) >= set(pids) and all(runs[p] == new_run for p in pids):
            return time.perf_counter() - trained, trained - started, new_run
        if time.perf_counter() - trained > 120:
            raise RuntimeError(f"workers still serve {runs} 120 s after run {new_run}")
        time.sleep(0.1)


def report(rows: list[Row], args: argparse.Namespace) -> None:
    base = rows[0]
    print(f"\nload generator: {args.clients} kept-alive connections (closed loop) over 2 "
          f"processes; {args.miss:.0%} of recommendation requests are cache misses; "
          f"{os.cpu_count()} cores\n")
    print("| workers | path | requests/s | p50 ms | p99 ms | errors | vs /healthz | "
          "vs 1 worker | server CPU ms/request | load avg (before, after) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.workers} | /healthz | {r.health.rps:.0f} | {r.health.p50_ms:.1f} | "
              f"{r.health.p99_ms:.1f} | {r.health.errors} | 1 | "
              f"{r.health.rps / base.health.rps:.2f} | | |")
        print(f"| {r.workers} | recommendations | {r.recs.rps:.0f} | {r.recs.p50_ms:.1f} | "
              f"{r.recs.p99_ms:.1f} | {r.recs.errors} | {r.recs.rps / r.health.rps:.3f} | "
              f"{r.recs.rps / base.recs.rps:.2f} | {r.cpu_ms:.1f} | "
              f"{r.load[0]:.1f}, {r.load[1]:.1f} |")
    print("\nMemory per serving process after the load (MiB; PSS divides each shared page "
          "among the processes mapping it):\n")
    print("| workers | boot s | process | RSS | PSS | shared | private | artifact RSS | "
          "artifact PSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for i, m in enumerate(r.memory):
            print(f"| {r.workers} | {r.boot_s:.0f} | {i + 1} | {m.rss:.0f} | {m.pss:.0f} | "
                  f"{m.shared:.0f} | {m.private:.0f} | {m.artifact_rss:.0f} | "
                  f"{m.artifact_pss:.0f} |")
        total_rss = sum(m.rss for m in r.memory)
        total_pss = sum(m.pss for m in r.memory)
        print(f"| {r.workers} | | all | {total_rss:.0f} | {total_pss:.0f} | | | | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--baseline-duration", type=float, default=10.0)
    parser.add_argument("--miss", type=float, default=0.2)
    parser.add_argument("--admin-url", default=ADMIN_URL,
                        help="a PostgreSQL URL to create the benchmark's database from")
    parser.add_argument("--database", default="fleet_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database and artifacts (printed) afterwards")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    if not 0 <= args.miss <= 1 or min(counts) < 1:
        parser.error("--miss must be within 0..1 and --workers positive")
    folder = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    artifacts = folder / "artifacts"
    env = clean_environment(PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    try:
        with own_database(args.admin_url, args.database, args.keep) as url:
            print(f"database {args.database}; Redis {args.redis}: "
                  f"{clear_redis(args.redis)} old recsdk keys deleted; folder {folder}")
            config = write_config(folder / "recsdk.toml", url, args.redis, artifacts,
                                  FLEET_PLUGINS)
            env_config = {**env, "RECSDK_CONFIG": str(config)}
            users, _ = fill_and_train(config, args)
            print(f"artifacts on disk: {artifact_mib(artifacts):.0f} MiB")
            rng = random.Random(args.seed)
            rng.shuffle(users)
            hot, cold = users[:HOT_USERS], users[HOT_USERS:]
            print("\nOne worker's memory, step by step (MiB):\n\n| step | RSS | private |"
                  "\n|---|---|---|")
            for name, rss, private in private_breakdown(env_config, cold[-200:]):
                print(f"| {name} | {rss:.0f} | {private:.0f} |")
            files = sorted((p for p in artifacts.rglob("*") if p.is_file()),
                           key=lambda p: -p.stat().st_size)[:6]
            print("largest artifact files: " + ", ".join(
                f"{p.relative_to(artifacts).as_posix().split('/', 1)[1]} "
                f"{p.stat().st_size / 2**20:.0f} MiB" for p in files), flush=True)
            rows, last = [], None
            for i, workers in enumerate(counts):
                share = cold[i::len(counts)]  # a cold user is never asked twice
                row, server = measure(config, env_config, workers, args, hot, share,
                                      artifacts)
                rows.append(row)
                print(f"{workers} worker(s): {row.recs.rps:.0f} recommendations/s, "
                      f"p50 {row.recs.p50_ms:.1f} ms, p99 {row.recs.p99_ms:.1f} ms", flush=True)
                if i == len(counts) - 1:
                    last = server
                else:
                    server.stop()
            report(rows, args)
            assert last is not None
            try:
                small = write_config(folder / "small.toml", url, args.redis, artifacts,
                                     SMALL_PLUGINS)
                seconds, train_s, run = propagation(last, counts[-1], small, env)
                print(f"\nnew run {run[:12]} (recsdk train in another process, "
                      f"{train_s:.0f} s): served by all {counts[-1]} workers {seconds:.1f} s "
                      "after training ended ([models] model_refresh_s = 2)")
            finally:
                last.stop()
    finally:
        print(f"Redis: {clear_redis(args.redis)} recsdk keys deleted")
        if args.keep:
            print(f"kept: database {args.database}, folder {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
