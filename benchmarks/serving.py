"""Serving speed: ``GET /api/v1/recommendations`` against a bare Flask endpoint.

In one run, for each worker count: ``recsdk serve`` (popularity pipeline trained on
MovieLens-100K, SQLite, in-process cache unless ``--redis``; served lists cached for
an hour, so every request takes the cache-hit path, unless ``--uncached``, where every
request runs the pipeline: a shop lies between the two) and a bare Flask app
answering a real recommendation body with ``jsonify``, served *the same way*
(waitress with the same threads for one worker; the same gunicorn command for more).
Both are driven by ``wrk`` (2 threads, keep-alive) at several concurrencies with
random ml-100k users; then each is driven open-loop at a fixed rate of 70% of its
peak by a Python client that measures latency from the moment each request was due
(no coordinated omission; ``wrk2`` is not packaged by Debian).

    apt-get install wrk
    PYTHONPATH=. python benchmarks/serving.py [--data ../shared/data/ml-100k]
        [--workers 1,2] [--threads 4] [--connections 1,4,16,64] [--duration 10]
        [--uncached] [--redis URL] [--also NAME=PATH ...]

The load generators run on the same machine as the servers and take CPU from them:
on a 2-core machine wrk uses a good part of one core and the Python client more.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from flask import Flask, Response

REPO = Path(__file__).resolve().parents[1]
ENV_BODY = "RECSDK_BENCH_BODY"


# ---- the bare endpoint ---------------------------------------------------------------------

def bare_app() -> Flask:
    """A Flask app answering the recommendation path with a fixed, real answer body."""
    from flask import Flask, jsonify, request

    body = json.loads(Path(os.environ[ENV_BODY]).read_text())
    app = Flask("bare")

    @app.get("/api/v1/recommendations")
    def recommendations() -> Response:
        return jsonify({**body, "user_id": request.args.get("user_id")})

    return app


def serve_bare(port: int, threads: int, workers: int) -> None:
    """Serve :func:`bare_app` as ``recsdk serve`` serves the SDK's app."""
    if workers == 1:
        from waitress import create_server

        server = create_server(bare_app(), host="127.0.0.1", port=port, threads=threads)
        print(f"bare serving on http://127.0.0.1:{server.effective_port}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.run()
        return
    from recsdk.cli.workers import address_of, gunicorn_argv, listen_socket

    sock = listen_socket("127.0.0.1", port)
    print(f"bare serving on {address_of(sock)}", flush=True)
    argv = gunicorn_argv("serving:bare_app()", sock.fileno(), workers, threads,
                         extra=["--pythonpath", str(Path(__file__).parent)])
    os.execv(argv[0], argv)


# ---- the data ------------------------------------------------------------------------------

def prepare(data: Path, folder: Path, redis_url: str | None, uncached: bool) -> tuple[Path,
                                                                                      list[str]]:
    """A SQLite shop from ml-100k, popularity trained; the config path and user ids."""
    from recsdk import RecSDK
    from recsdk.data.loaders import load_recbole

    lines = [f'database_url = "sqlite:///{folder / "shop.db"}"', 'device = "cpu"']
    if redis_url:
        lines.append(f'redis_url = "{redis_url}"')
    # cached: for an hour, so that no entry expires within the run and every request
    # measures the hit path; uncached: every request runs the whole pipeline
    lines += ["[cache]", f"result_ttl_s = {0 if uncached else 3600}"]
    lines += ["[plugins.popularity]"]
    config = folder / "recsdk.toml"
    config.write_text("\n".join(lines) + "\n")
    shop = load_recbole(data)
    sdk = RecSDK(str(config), environ={})
    try:
        shop.write_to(sdk, validate=False)
        report = sdk.fit()
        if redis_url:  # nothing of an earlier run's users may be cached
            sdk.forget_recent(user_ids=shop.events["user_id"].unique())
    finally:
        sdk.close()
    print(f"ml-100k: {report.interactions:,} events, {report.users} users, "
          f"{report.items} items; popularity trained in {report.seconds:.1f} s")
    return config, sorted(shop.events["user_id"].astype(str).unique())


# ---- servers -------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start(name: str, command: list[str], tree: Path, env: dict[str, str],
          log: Path) -> Server:
    """Start a server process in ``tree`` (its code comes first on ``sys.path``), with
    stderr to ``log``; wait for its address and a first answer."""
    with log.open("w") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True,
                                   env=env, cwd=tree)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 120)
    line = process.stdout.readline() if ready else ""
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not found:
        process.kill()
        raise RuntimeError(f"{name} did not start: {line!r}; {log.read_text()[-2000:]}")
    port = int(found.group(1))
    for _ in range(600):
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/recommendations?user_id=1")
            if conn.getresponse().status == 200:
                conn.close()
                return Server(name, process, port)
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{name} never answered")


def source_env(tree: Path, body: Path) -> dict[str, str]:
    """The environment of a server running the code of the source tree ``tree``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSDK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    env[ENV_BODY] = str(body)
    return env


def recsdk_command(config: Path, threads: int, workers: int) -> list[str]:
    command = [sys.executable, "-m", "recsdk.cli", "--config", str(config), "serve",
               "--host", "127.0.0.1", "--port", "0", "--threads", str(threads)]
    # only when needed, so that trees from before --workers can be measured with 1
    return [*command, "--workers", str(workers)] if workers > 1 else command


def bare_command(threads: int, workers: int) -> list[str]:
    return [sys.executable, __file__, "--bare-server", "--threads", str(threads),
            "--workers", str(workers)]


@contextlib.contextmanager
def servers(config: Path, threads: int, workers: int, body: Path,
            trees: dict[str, Path]) -> Iterator[list[Server]]:
    """The bare app, then ``recsdk serve`` from each source tree (this one first)."""
    started: list[Server] = []
    try:
        for name, tree in trees.items():
            started.append(start(name, recsdk_command(config, threads, workers), tree,
                                 source_env(tree, body), body.with_name(f"{name}.log")))
        conn = http.client.HTTPConnection("127.0.0.1", started[0].port, timeout=10)
        conn.request("GET", "/api/v1/recommendations?user_id=1")
        body.write_bytes(conn.getresponse().read())
        conn.close()
        started.insert(0, start("bare", bare_command(threads, workers), REPO,
                                source_env(REPO, body), body.with_name("bare.log")))
        yield started
    finally:
        for server in started:
            server.stop()


# ---- load ----------------------------------------------------------------------------------

@dataclass
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    requests: int = 0
    #: share of one core the load generator itself used (fixed-rate client only)
    client_cpu: float = 0.0


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of ``pid`` and every live descendant (Linux /proc);
    None where there is no /proc. Less disturbed by other load than throughput is."""
    proc = Path("/proc")
    if not (proc / str(pid) / "stat").exists():
        return None
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            child = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(child)
            times[child] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0)
        todo += children.get(current, [])
    return total / os.sysconf("SC_CLK_TCK")


def settle(pid: int, timeout_s: float = 15.0) -> None:
    """Wait until the server ``pid`` is idle (below 5% of a core over half a second):
    its served-list writer finishes the backlog of the last run before another server
    is measured, instead of taking CPU from it."""
    deadline = time.monotonic() + timeout_s
    before = cpu_seconds(pid)
    while before is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        after = cpu_seconds(pid)
        if after is None or after - before < 0.025:
            return
        before = after
    if before is None:
        time.sleep(2)


def wrk_script(users: list[str], folder: Path) -> Path:
    path = folder / "users.lua"
    ids = ",".join(json.dumps(u) for u in users)
    path.write_text(
        f"local users = {{{ids}}}\nmath.randomseed(42)\n"
        "request = function()\n"
        '  return wrk.format("GET", "/api/v1/recommendations?user_id=" .. '
        "users[math.random(#users)])\nend\n")
    return path


def _found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in a load generator's output (which must have it)."""
    match = re.search(pattern, text, re.M | re.I)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in the load generator's output:\n{text}")
    return match.group(1)


def _ms(text: str) -> float:
    value, unit = _found(r"^([\d.]+)(?:us|ms|s|m)$", text), _found(r"(us|ms|s|m)$", text)
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(port: int, connections: int, duration: float, script: Path) -> Figures:
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration:g}s",
         "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    n_errors = int(errors.group(1)) if errors else 0
    if socket_errors:
        n_errors += sum(map(int, socket_errors.groups()))
    return Figures(float(_found(r"Requests/sec:\s+([\d.]+)", out)), _ms(latency["50"]),
                   _ms(latency["99"]), n_errors, int(_found(r"(\d+) requests in", out)))


async def _fixed_rate(port: int, paths: list[str], rate: float, duration: float,
                      connections: int) -> Figures:
    """Open loop: request i is due at start + i / rate; latency counts from then."""
    loop = asyncio.get_running_loop()
    due: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (item := await due.get()) is not None:
            when, path = item
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(_found(r"content-length:\s*(\d+)", head.decode("latin-1")))
            await reader.readexactly(length)
            latencies.append(loop.time() - when)
            errors += not head.startswith(b"HTTP/1.1 200")
        writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    n = int(rate * duration)
    cpu = time.process_time()
    start = loop.time() + 0.05
    sent = 0
    while sent < n:
        now = loop.time()
        while sent < n and start + sent / rate <= now:
            due.put_nowait((start + sent / rate, paths[sent % len(paths)]))
            sent += 1
        await asyncio.sleep(0.0005)
    for _ in tasks:
        due.put_nowait(None)
    await asyncio.gather(*tasks)
    ms = np.array(latencies) * 1000
    wall = loop.time() - start
    return Figures(n / wall, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
                   errors, n, (time.process_time() - cpu) / wall)


def fixed_rate(port: int, users: list[str], rate: float, duration: float,
               connections: int = 32) -> Figures:
    rng = random.Random(7)
    paths = [f"/api/v1/recommendations?user_id={rng.choice(users)}" for _ in range(50_000)]
    return asyncio.run(_fixed_rate(port, paths, rate, duration, connections))


def warm(port: int, users: list[str], script: Path, seconds: float) -> None:
    """Ask for every user once, then load it for ``seconds``: every worker process has
    then cached (nearly) every user's list, as in a shop's steady state."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for user in users:
        conn.request("GET", f"/api/v1/recommendations?user_id={user}")
        conn.getresponse().read()
    conn.close()
    run_wrk(port, 16, seconds, script)


# ---- the run -------------------------------------------------------------------------------

def bench(config: Path, users: list[str], folder: Path, args: argparse.Namespace,
          workers: int, trees: dict[str, Path]) -> None:
    script = wrk_script(users, folder)
    print(f"\n## {workers} worker process(es), {args.threads} threads each; wrk 2 threads, "
          f"{args.duration:g} s per cell, servers in turn")
    print("| connections | server | req/s | / bare | p50 ms | p99 ms | errors | "
          "server CPU µs/req |")
    print("|---|---|---|---|---|---|---|---|")
    with servers(config, args.threads, workers, folder / "body.json", trees) as started:
        peaks = dict.fromkeys((s.name for s in started), 0.0)
        for server in started:  # each worker caches for itself without Redis
            warm(server.port, users, script, 3 * workers)
            settle(server.process.pid)
        for connections in args.connections:
            bare_rps = 0.0
            for server in started:
                before = cpu_seconds(server.process.pid)
                fig = run_wrk(server.port, connections, args.duration, script)
                settle(server.process.pid)  # its CPU until idle again counts too
                after = cpu_seconds(server.process.pid)
                cpu = ("n/a" if before is None or after is None
                       else f"{(after - before) / fig.requests * 1e6:.0f}")
                bare_rps = bare_rps or fig.rps
                peaks[server.name] = max(peaks[server.name], fig.rps)
                print(f"| {connections} | {server.name} | {fig.rps:,.0f} | "
                      f"{fig.rps / bare_rps:.2f} | {fig.p50_ms:.1f} | {fig.p99_ms:.1f} | "
                      f"{fig.errors} | {cpu} |", flush=True)
        print("\npeak req/s: " + ", ".join(
            f"{name} {rps:,.0f} ({rps / peaks['bare']:.2f} of bare)"
            for name, rps in peaks.items()))
        print("\nfixed rate, 70% of each one's own peak (Python open-loop client, "
              "32 connections):")
        print("| server | target req/s | achieved | p50 ms | p99 ms | errors | "
              "client CPU |")
        print("|---|---|---|---|---|---|---|")
        for server in started:
            target = 0.7 * peaks[server.name]
            fig = fixed_rate(server.port, users, target, args.duration)
            settle(server.process.pid)
            print(f"| {server.name} | {target:,.0f} | {fig.rps:,.0f} | {fig.p50_ms:.1f} | "
                  f"{fig.p99_ms:.1f} | {fig.errors} | {fig.client_cpu:.0%} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--workers", default="1,2",
                        help="worker process counts to measure, comma-separated")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", default="1,4,16,64")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--uncached", action="store_true",
                        help="result_ttl_s = 0: every request runs the pipeline (default: "
                             "lists cached for an hour, every request a cache hit)")
    parser.add_argument("--redis", default=None, help="a Redis URL for the SDK's cache")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="also serve recsdk from the source tree PATH (another "
                             "checkout, a branch), measured in turn with the others")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        serve_bare(args.port, args.threads, int(args.workers))
        return 0
    if shutil.which("wrk") is None:
        parser.error("needs wrk on PATH (Debian/Ubuntu: apt-get install wrk)")
    args.connections = [int(c) for c in args.connections.split(",")]
    trees = {"recsdk": REPO}
    for also in args.also:
        name, sep, path = also.partition("=")
        if not sep or not name or name in trees or not Path(path, "recsdk").is_dir():
            parser.error(f"--also {also!r}: give NAME=PATH, a new name and a source tree "
                         "with a recsdk/ folder")
        trees[name] = Path(path).resolve()
    with tempfile.TemporaryDirectory(prefix="recsdk-serving-") as tmp:
        folder = Path(tmp)
        config, users = prepare(args.data, folder, args.redis, args.uncached)
        print(f"results cache: {'off (result_ttl_s = 0)' if args.uncached else 'on (1 h)'}; "
              f"cache backend: {'Redis' if args.redis else 'in-process'}; "
              f"{os.cpu_count()} CPUs")
        for workers in (int(w) for w in args.workers.split(",")):
            bench(config, users, folder, args, workers, trees)
    return 0


if __name__ == "__main__":
    sys.exit(main())
