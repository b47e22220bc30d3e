"""Writes under read load: ``POST /api/v1/feedback`` and ``POST /api/v1/events``
latency with no reads, and while readers drive ``GET /api/v1/recommendations`` at 80 %
of the peak read throughput measured first, in the same run.

``recsdk serve`` (waitress, 8 threads) runs on a SQLite shop (the synthetic demo data,
popularity + filters, result cache off so every GET runs the pipeline). Readers are
threads with keep-alive connections; at 80 % each paces itself to its share of the
rate. One writer posts feedback on a list served a moment earlier, and an event, every
50 ms. The load generator runs on the same 2-core machine as the server: the figures
are a ratio within one run, not capacity.

Run:  python benchmarks/feedback_under_load.py [--seconds 15] [--readers 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from server_process import ServerProcess, clean_environment, run_recsdk

TIMEOUT_S = 30


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)

    def call(self, method: str, path: str, body: object | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data else {}
        self.conn.request(method, path, body=data, headers=headers)
        answer = self.conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")


def readers(port: int, users: list[str], n: int, seconds: float, rate: float | None
            ) -> int:
    """Run ``n`` reader threads for ``seconds``; ``rate`` req/s in all (None: flat out)."""
    done = [0] * n
    errors = [0] * n
    stop = time.monotonic() + seconds

    def read(slot: int) -> None:
        client, rng = Client(port), random.Random(slot)
        interval = n / rate if rate else 0.0
        due = time.monotonic()
        while time.monotonic() < stop:
            try:
                status, _ = client.call(
                    "GET", f"/api/v1/recommendations?user_id={rng.choice(users)}&k=10")
            except OSError:  # counted; a new connection for the next request
                errors[slot] += 1
                client = Client(port)
                continue
            assert status == 200, status
            done[slot] += 1
            if interval:
                due += interval
                time.sleep(max(due - time.monotonic(), 0))

    threads = [threading.Thread(target=read, args=(s,)) for s in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(errors):
        print(f"  readers: {sum(errors)} request(s) failed (timeout {TIMEOUT_S} s)")
    return sum(done)


def writer(port: int, users: list[str], seconds: float) -> dict[str, list[float]]:
    """Every 50 ms: a GET (not timed), then feedback on it and an event (timed)."""
    client, rng = Client(port), random.Random(99)
    out: dict[str, list[float]] = {"feedback": [], "events": []}
    stop = time.monotonic() + seconds
    n = 0
    while time.monotonic() < stop:
        user = rng.choice(users)
        _, served = client.call("GET", f"/api/v1/recommendations?user_id={user}&k=5")
        item = served["items"][0]["item_id"]
        started = time.perf_counter()
        status, _ = client.call("POST", "/api/v1/feedback", {
            "request_id": served["request_id"], "item_id": item, "type": "click"})
        out["feedback"].append(time.perf_counter() - started)
        assert status == 201, status
        started = time.perf_counter()
        status, _ = client.call("POST", "/api/v1/events", {
            "user_id": user, "item_id": item, "type": "click", "event_id": f"bench-{n}"})
        out["events"].append(time.perf_counter() - started)
        assert status in (200, 201), status
        n += 1
        time.sleep(0.05)
    return out


def summary(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return (f"n={len(ms):>4}  p50 {np.percentile(ms, 50):7.1f} ms  "
            f"p99 {np.percentile(ms, 99):7.1f} ms  max {ms.max():7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(f'database_url = "sqlite:///{Path(tmp) / "shop.db"}"\n'
                          '[cache]\nresult_ttl_s = 0\n[models]\nmodel_refresh_s = 0\n')
        env = clean_environment(RECSDK_CONFIG=str(config))
        run_recsdk("db", "upgrade", env=env)
        run_recsdk("demo-data", "--events", str(args.events), env=env)
        run_recsdk("train", env=env)
        users = [f"u{n}" for n in range(500)]  # the synthetic shop's user ids
        with ServerProcess(env) as server:
            port = server.port
            idle = writer(port, users, args.seconds)
            peak = readers(port, users, args.readers, args.seconds, None) / args.seconds
            target = 0.8 * peak
            loaded: dict[str, list[float]] = {}
            background = threading.Thread(target=lambda: loaded.update(
                writer(port, users, args.seconds)))
            background.start()
            achieved = readers(port, users, args.readers, args.seconds, target) / args.seconds
            background.join()
    print(f"peak read throughput: {peak:.0f} GET/s ({args.readers} readers); "
          f"loaded run: target {target:.0f}, achieved {achieved:.0f} GET/s\n")
    for kind in ("feedback", "events"):
        print(f"POST {kind:<8}  no reads:      {summary(idle[kind])}")
        print(f"POST {kind:<8}  80% of peak:   {summary(loaded[kind])}")
        ratio = np.percentile(loaded[kind], 99) / np.percentile(idle[kind], 99)
        print(f"{'':14}  p99 loaded / idle: {ratio:.2f}\n")


if __name__ == "__main__":
    main()
