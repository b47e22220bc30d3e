"""The demo shop under load: its product page and recsdk's recommendations endpoint
against a bare Flask page served the same way, and degraded answers during a retrain.

In one run: the demo shop (``demo_shop:create_app()``, SQLite, the quick start's
settings, a synthetic shop of ``--events`` events, trained) and a bare Flask app that
answers the same two paths with the bodies the shop gave once (the product page's HTML,
a recommendation's JSON), both under the same gunicorn command (``--workers`` gthread
workers of ``--threads`` threads). ``wrk`` drives each path with random products or
users; then, while ``wrk`` drives the recommendations endpoint, a retrain is started
over the admin API and the lists served meanwhile are read back from the request log:
how many were degraded.

    apt-get install wrk
    PYTHONPATH=. python benchmarks/shop_load.py [--events 20000] [--workers 2]
        [--threads 4] [--connections 8] [--duration 10]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).parent))
from serving import Figures, run_wrk, settle

if TYPE_CHECKING:
    from flask import Flask

REPO = Path(__file__).resolve().parents[1]
ENV_BODIES = "RECSDK_BENCH_BODIES"
API_KEY = "bench-key-0123456789"


def bare_app() -> Flask:
    """The two paths with fixed bodies: no template, no database, no recsdk."""
    from flask import Flask, Response

    bodies = json.loads(Path(os.environ[ENV_BODIES]).read_text())
    app = Flask("bare")

    @app.get("/p/<item>")
    def product(item: str) -> Response:
        return Response(bodies["product"], mimetype="text/html")

    @app.get("/api/v1/recommendations")
    def recommendations() -> Response:
        return Response(bodies["recommendations"], mimetype="application/json")

    return app


def serve(app: str, threads: int, workers: int) -> None:
    """Run ``app`` (gunicorn's ``module:factory()``) as ``recsdk serve --workers`` does."""
    from recsdk.cli.workers import address_of, gunicorn_argv, listen_socket

    sock = listen_socket("127.0.0.1", 0)
    print(f"serving on {address_of(sock)}", flush=True)
    argv = gunicorn_argv(app, sock.fileno(), workers, threads,
                         extra=["--pythonpath", f"{REPO},{Path(__file__).parent}"])
    os.execv(argv[0], argv)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        body = answer.read()
        conn.close()
        return answer.status, body

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextlib.contextmanager
def server(name: str, app: str, args: argparse.Namespace, env: dict[str, str],
           log: Path) -> Iterator[Server]:
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve", app, "--threads", str(args.threads),
             "--workers", str(args.workers)], stdout=subprocess.PIPE, stderr=err, text=True,
            env=env, cwd=REPO)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 120)
    found = re.search(r"http://127\.0\.0\.1:(\d+)", process.stdout.readline() if ready else "")
    if not found:
        process.kill()
        raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")
    running = Server(name, process, int(found.group(1)))
    try:
        for _ in range(600):
            with contextlib.suppress(OSError):
                if running.get("/api/v1/recommendations?user_id=u0001")[0] == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{name} never answered: {log.read_text()[-2000:]}")
        yield running
    finally:
        running.stop()


def environment(folder: Path, bodies: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSDK_")}
    env.update(RECSDK_CONFIG=str(REPO / "config" / "demo.toml"),
               RECSDK_DATABASE_URL=f"sqlite:///{folder / 'shop.db'}",
               RECSDK_API_KEY=API_KEY, DEMO_SHOP_SECRET_KEY="bench-secret",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    env[ENV_BODIES] = str(bodies)
    return env


def products(db: Path, limit: int = 300) -> list[str]:
    """Active product ids of the catalogue (in stock first), for the product-page load."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM shop_products WHERE active "
                                   "ORDER BY stock = 0, id "
                                   "LIMIT :n"), {"n": limit}).scalars().all()
    engine.dispose()
    return list(ids)


def script(folder: Path, name: str, paths: list[str]) -> Path:
    path = folder / f"{name}.lua"
    listed = ",".join(json.dumps(p) for p in paths)
    path.write_text(f"local paths = {{{listed}}}\nmath.randomseed(42)\n"
                    "request = function()\n"
                    "  return wrk.format(\"GET\", paths[math.random(#paths)])\nend\n")
    return path


def retrain_under_load(shop: Server, args: argparse.Namespace, load: Path, db: Path
                       ) -> tuple[Figures, float, int, int]:
    """``wrk`` on recommendations while a retrain runs: the load's figures, the retrain's
    seconds, and the lists served during it and how many of them were degraded."""
    import sqlalchemy as sa

    result: dict[str, Figures] = {}
    duration = max(args.duration, 20.0)

    def drive() -> None:
        result["wrk"] = run_wrk(shop.port, args.connections, duration, load)

    import threading

    worker = threading.Thread(target=drive)
    worker.start()
    time.sleep(2)
    conn = http.client.HTTPConnection("127.0.0.1", shop.port, timeout=30)
    conn.request("POST", "/api/v1/admin/train", headers={"X-API-Key": API_KEY})
    answer = conn.getresponse()
    job = json.loads(answer.read())
    if answer.status != 202:
        raise RuntimeError(f"train answered {answer.status}: {job}")
    started = datetime.now(UTC)
    location = answer.getheader("Location") or f"/api/v1/admin/jobs/{job['id']}"
    while True:
        _, body = shop.get(location, {"X-API-Key": API_KEY})
        state = json.loads(body).get("status")
        if state in ("succeeded", "failed"):
            break
        time.sleep(0.25)
    ended = datetime.now(UTC)
    worker.join()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        lists, degraded = c.execute(sa.text(
            "SELECT count(*), coalesce(sum(degraded), 0) FROM recommendation_requests "
            "WHERE placement = 'default' AND created_at BETWEEN :a AND :b"),
            {"a": started.replace(tzinfo=None).isoformat(sep=" "),
             "b": ended.replace(tzinfo=None).isoformat(sep=" ")}).one()
    engine.dispose()
    if state != "succeeded":
        raise RuntimeError(f"the retrain failed: {body!r}")
    return result["wrk"], (ended - started).total_seconds(), int(lists), int(degraded)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.threads, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bodies = folder / "bodies.json"
        bodies.write_text("{}")
        env = environment(folder, bodies)
        subprocess.run([sys.executable, "-m", "demo_shop", "--setup-only", "--events",
                        str(args.events), "--seed", "42"], env=env, cwd=REPO, check=True,
                       capture_output=True, text=True)
        rng = random.Random(42)
        with server("shop", "demo_shop:create_app()", args, env, folder / "shop.log") as shop:
            items = products(folder / "shop.db")
            _, product = shop.get(f"/p/{items[0]}")
            _, recs = shop.get("/api/v1/recommendations?user_id=u0001")
            bodies.write_text(json.dumps({"product": product.decode(),
                                          "recommendations": recs.decode()}))
            users = [f"u{n:04d}" for n in range(1, 400)]
            paths = {
                "product page": script(folder, "product", [f"/p/{i}" for i in items]),
                "recommendations": script(folder, "recs", [
                    f"/api/v1/recommendations?user_id={rng.choice(users)}"
                    for _ in range(400)]),
            }
            shop_figures = {}
            for name, load in paths.items():
                shop_figures[name] = run_wrk(shop.port, args.connections, args.duration, load)
                settle(shop.process.pid)
            retrain = retrain_under_load(shop, args, paths["recommendations"],
                                         folder / "shop.db")
        with server("bare", "shop_load:bare_app()", args, env, folder / "bare.log") as bare:
            bare_figures = {name: run_wrk(bare.port, args.connections, args.duration, load)
                            for name, load in paths.items()}
    print(f"{args.workers} gunicorn workers x {args.threads} threads, wrk "
          f"{args.connections} connections, {args.duration:g} s per path; shop of "
          f"{args.events:,} events, product pages of {len(items)} products\n")
    print("| path | server | requests/s | p50 ms | p99 ms | errors | throughput vs bare |")
    print("|---|---|---|---|---|---|---|")
    for name in paths:
        s, b = shop_figures[name], bare_figures[name]
        print(f"| {name} | demo shop | {s.rps:.0f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | "
              f"{s.errors} | {s.rps / b.rps:.2f} |")
        print(f"| {name} | bare Flask | {b.rps:.0f} | {b.p50_ms:.1f} | {b.p99_ms:.1f} | "
              f"{b.errors} | 1 |")
    figures, seconds, lists, degraded = retrain
    share = degraded / lists if lists else float("nan")
    print(f"\nretrain under load: {seconds:.1f} s; {lists} lists served meanwhile, "
          f"{degraded} degraded ({100 * share:.2f}%); load {figures.rps:.0f} requests/s, "
          f"p50 {figures.p50_ms:.1f} ms, p99 {figures.p99_ms:.1f} ms, "
          f"{figures.errors} errors")


if __name__ == "__main__":
    main()
