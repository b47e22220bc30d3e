"""Shared helpers of the API tests: a generated shop, row counts, a live server."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from flask import Flask
from sqlalchemy import func, select
from waitress import create_server
from waitress.server import BaseWSGIServer

from recsdk import RecSDK
from recsdk.storage import models


def count_rows(sdk: RecSDK, model: type[models.Base]) -> int:
    with sdk.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar() or 0)


def stored_counts(sdk: RecSDK) -> dict[str, int]:
    """Rows in every table an API request can write."""
    return {m.__tablename__: count_rows(sdk, m) for m in (
        models.Event, models.Item, models.User, models.Category, models.Feedback)}


def generated_events(n_users: int, n_items: int, seed: int) -> list[dict[str, Any]]:
    """Random views and purchases; item popularity follows a seeded Zipf-like law."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    weights /= weights.sum()
    items = rng.permutation([f"sku-{i}" for i in range(n_items)])
    events = []
    for u in range(n_users):
        for item in rng.choice(items, size=int(rng.integers(1, 6)), p=weights):
            kind = str(rng.choice(["view", "purchase"], p=[0.8, 0.2]))
            events.append({"user_id": f"user-{u}", "item_id": str(item), "type": kind})
    return events


def popularity_order(events: list[dict[str, Any]], weights: dict[str, float]) -> list[str]:
    """Items by distinct users with a positive-weight event, most first (ties by id)."""
    users: dict[str, set[str]] = {}
    for e in events:
        if weights[e["type"]] > 0:
            users.setdefault(e["item_id"], set()).add(e["user_id"])
    return sorted(users, key=lambda item: (-len(users[item]), item))


def consumed(events: list[dict[str, Any]], user_id: str) -> set[str]:
    """Items the default filters treat as already owned by ``user_id``."""
    return {e["item_id"] for e in events
            if e["user_id"] == user_id and e["type"] in ("purchase", "rating", "review")}


@contextmanager
def live_server(app: Flask, threads: int = 8) -> Iterator[str]:
    """Serve ``app`` with waitress on 127.0.0.1 (a free port) in a background thread."""
    server: BaseWSGIServer = create_server(app, host="127.0.0.1", port=0, threads=threads)
    runner = threading.Thread(target=server.run, name="waitress-test", daemon=True)
    runner.start()
    try:
        yield f"127.0.0.1:{server.effective_port}"
    finally:
        # close every socket from inside the loop's own thread, so the loop ends
        # OSError: the trigger is closed already, the loop is on its way out
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(lambda: [d.close() for d in list(server._map.values())])
        runner.join(timeout=10)
        server.task_dispatcher.shutdown()
        assert not runner.is_alive(), "waitress did not stop"


def post_json(conn: http.client.HTTPConnection, path: str, body: Any,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON on a kept-alive connection; the status and parsed answer."""
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def post_concurrently(address: str, bodies: list[list[Any]],
                      path: str = "/api/v1/events") -> list[tuple[int, dict[str, Any]]]:
    """Each thread posts its list of bodies in turn on its own kept-alive connection.

    The threads start together (a barrier), so requests overlap on the server.
    Returns every (status, answer); a client-side failure fails the test.
    """
    host, port = address.rsplit(":", 1)
    barrier = threading.Barrier(len(bodies))
    answers: list[list[tuple[int, dict[str, Any]]]] = [[] for _ in bodies]
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            barrier.wait(timeout=30)
            for body in bodies[index]:
                answers[index].append(post_json(conn, path, body))
        except BaseException as exc:  # reported to the test below
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    return [a for per_thread in answers for a in per_thread]


def train_over_http(client: Any, headers: dict[str, str] | None = None,
                    timeout_s: float = 60.0) -> dict[str, Any]:
    """POST /admin/train (202), then poll the job until it ends; return the job."""
    import time

    started = client.post("/api/v1/admin/train", headers=headers or {})
    assert started.status_code == 202, started.get_json()
    location = started.headers["Location"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(location, headers=headers or {}).get_json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"training job {location} did not finish in {timeout_s} s")


def threads_left(before: set[threading.Thread], grace_s: float = 1.0) -> list[threading.Thread]:
    """Threads started since ``before`` that are still alive after ``grace_s``.

    The grace lets short-lived library timers end on their own (the rate limiter's
    in-memory storage from ``limits`` re-arms a 10 ms expiry ``threading.Timer`` after
    every hit); a thread that a close forgot to stop is still there after it.
    """
    started = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    deadline = time.monotonic() + grace_s
    for thread in started:
        thread.join(max(deadline - time.monotonic(), 0.0))
    return [t for t in started if t.is_alive()]
