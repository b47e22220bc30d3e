"""Backend faults under load: no acknowledged event is lost or doubled, and no 500.

Clients post events over HTTP (waitress, several threads) while a real backend fails:

* Redis, a private server of the test's own, killed or paused (``CLIENT PAUSE``):
  the cache is optional, so every request is still acknowledged, and a purchase made
  while Redis stalled is not recommended afterwards (issue 8, item 3).
* PostgreSQL backends terminated (``pg_terminate_backend``) from an admin connection:
  a request that loses its connection answers 503 with ``Retry-After``; the pool
  replaces dead connections (``pool_pre_ping``) and the service recovers.
* A deadlock between an outside transaction and the SDK's upsert, and overlapping
  event batches in reversed orders: answered 2xx after a retry, or 503, never 500.

Every event carries an ``event_id``, so what a client retries after a 503 is stored
once: at the end the database holds each acknowledged event exactly once.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import func, select

from recsdk import RecSDK
from recsdk.api import create_app
from recsdk.storage import models
from tests.api.helpers import live_server
from tests.postgres import fresh_postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

CLIENTS = 6
BATCH = 5
#: Answers a fault may cause besides success: the database could not serve (503).
FAULT_STATUSES = {200, 201, 503}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port (no persistence)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not on PATH (scripts/services.sh needs it too)"
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        probe = redis.Redis.from_url(url, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        probe.close()
        yield url, process
    finally:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def postgres_sdk(**config: Any) -> Iterator[tuple[RecSDK, str]]:
    """An SDK on a fresh PostgreSQL database; yields it and the database's URL."""
    with fresh_postgres_database("recsdk_faults") as url:
        sdk = RecSDK({"database_url": url, "device": "cpu", **config}, environ={})
        try:
            yield sdk, url
        finally:
            sdk.close()


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    event_ids: list[str]


@dataclass
class Posters:
    """Client threads posting batches of events, each event with a unique ``event_id``,
    until stopped; every answer is kept with the event ids it was for."""

    address: str
    clients: int = CLIENTS
    answers: list[Answer] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._post, args=(c,), daemon=True)
                         for c in range(self.clients)]

    def __enter__(self) -> Posters:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"

    def acknowledged(self) -> int:
        with self._lock:
            return sum(1 for a in self.answers if 200 <= a.status < 300)

    def wait_for(self, more: int, timeout_s: float = 15.0) -> None:
        """Wait until ``more`` further requests have been acknowledged."""
        target = self.acknowledged() + more
        deadline = time.monotonic() + timeout_s
        while self.acknowledged() < target:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, f"only {self.acknowledged()} of {target} acks"
            time.sleep(0.01)

    def _post(self, client: int) -> None:
        host, port = self.address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        n = 0
        try:
            while not self._stop.is_set():
                ids = [f"c{client}-e{n + i}" for i in range(BATCH)]
                n += BATCH
                answer = post_events(conn, [event(i, client) for i in ids])
                with self._lock:
                    self.answers.append(answer)
        except BaseException as exc:  # reported by wait_for and the checks
            self.failures.append(exc)
        finally:
            conn.close()


def event(event_id: str, client: int, kind: str = "view", item: str | None = None
          ) -> dict[str, Any]:
    return {"user_id": f"user-{client}", "item_id": item or f"item-{event_id[-1]}",
            "type": kind, "event_id": event_id}


def post_events(conn: http.client.HTTPConnection, events: list[dict[str, Any]]) -> Answer:
    conn.request("POST", "/api/v1/events", body=json.dumps(events),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    return Answer(response.status, body, dict(response.getheaders()),
                  [e["event_id"] for e in events])


def stored_event_ids(sdk: RecSDK) -> Counter[str]:
    """How many times each event id is stored (events without one left out)."""
    table = models.Event.__table__
    with sdk.store.engine.connect() as conn:
        rows = conn.execute(select(table.c.event_id, func.count())
                            .where(table.c.event_id.is_not(None))
                            .group_by(table.c.event_id)).all()
    return Counter({event_id: n for event_id, n in rows})


def check_answers(answers: list[Answer], allowed: set[int]) -> None:
    """Only ``allowed`` statuses; a 503 says when to retry; a 2xx accounts for its rows."""
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= allowed, statuses
    for a in answers:
        if a.status == 503:
            assert int(a.headers["Retry-After"]) > 0, a.headers
            assert "retry" in a.body["message"], a.body
        else:
            assert a.body["stored"] + a.body["duplicates"] == len(a.event_ids), a.body


def check_acknowledged_stored_once(sdk: RecSDK, answers: list[Answer]) -> None:
    """Every event of a 2xx answer is stored, and no event id is stored twice."""
    stored = stored_event_ids(sdk)
    acknowledged = {e for a in answers if 200 <= a.status < 300 for e in a.event_ids}
    assert acknowledged, "no request was acknowledged"
    missing = acknowledged - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    doubled = {e: n for e, n in stored.items() if n > 1}
    assert not doubled, doubled


def retry_refused(address: str, answers: list[Answer]) -> list[Answer]:
    """Post again, once, what got a 503 (as a client told to retry would)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        return [post_events(conn, [event(e, 0) for e in a.event_ids])
                for a in answers if a.status == 503]
    finally:
        conn.close()


# ---- Redis ----------------------------------------------------------------------------


def popular_shop(sdk: RecSDK) -> None:
    """``hit`` viewed by everyone, so popularity recommends it; a model trained."""
    sdk.track_many([{"user_id": f"fan-{u}", "item_id": item, "type": "view"}
                    for u in range(20) for item in ("hit", f"other-{u % 4}")])
    sdk.fit()


def redis_failures(sdk: RecSDK) -> float:
    """Writes of recent activity that failed (or skipped Redis while it was down)."""
    return sdk.telemetry.value("recsdk_cache_errors", backend="redis",
                               operation="push_recent")


def recommended(address: str, user: str) -> list[str]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", f"/api/v1/recommendations?user_id={user}&k=50")  # all
        response = conn.getresponse()
        assert response.status == 200
        return [i["item_id"] for i in json.loads(response.read())["items"]]
    finally:
        conn.close()


@pytest.mark.redis
def test_redis_killed_mid_run_loses_no_event() -> None:
    with private_redis() as (url, process), postgres_sdk(redis_url=url) as (sdk, _), \
            live_server(create_app(sdk)) as address:
        with Posters(address) as posters:
            posters.wait_for(30)
            process.kill()
            posters.wait_for(60)  # requests go on without the cache
        check_answers(posters.answers, {201})
        check_acknowledged_stored_once(sdk, posters.answers)
        assert not sdk.cache.available
        assert redis_failures(sdk) > 0


@pytest.mark.redis
def test_redis_paused_loses_no_event_and_serves_no_stale_history() -> None:
    with private_redis() as (url, _), postgres_sdk(redis_url=url) as (sdk, _):
        popular_shop(sdk)
        admin = redis.Redis.from_url(url)
        with live_server(create_app(sdk)) as address:
            assert "hit" in recommended(address, "buyer")  # its history is now in Redis
            with Posters(address) as posters:
                posters.wait_for(30)
                admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
                wait_until(lambda: not sdk.cache.available)  # a write timed out: bypassed
                host, port = address.rsplit(":", 1)
                buyer = http.client.HTTPConnection(host, int(port), timeout=30)
                bought = post_events(buyer, [{"user_id": "buyer", "item_id": "hit",
                                              "type": "purchase", "event_id": "buy-hit"}])
                buyer.close()
                posters.wait_for(30)
                time.sleep(1.6)  # Redis answers again
                posters.wait_for(30)
            assert bought.status == 201
            assert redis_failures(sdk) > 0  # the pause was felt
            check_answers(posters.answers, {201})
            check_acknowledged_stored_once(sdk, [*posters.answers, bought])
            wait_until(lambda: sdk.cache.available)  # Redis is used again, and its
            assert "hit" not in recommended(address, "buyer")  # list missed the purchase
        admin.close()


# ---- PostgreSQL -----------------------------------------------------------------------


def terminate_backends(admin: psycopg.Connection, database: str) -> int:
    """End every connection to ``database`` but the admin's own; how many were ended."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    return sum(1 for (ended,) in rows if ended)


def admin_connection(url: str, autocommit: bool = True) -> psycopg.Connection:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(plain, autocommit=autocommit)


def test_terminated_postgres_backends_answer_503_and_the_service_recovers() -> None:
    with postgres_sdk() as (sdk, url):
        database = url.rsplit("/", 1)[1]
        with admin_connection(url) as admin, live_server(create_app(sdk)) as address:
            with Posters(address) as posters:
                posters.wait_for(20)
                ended = 0
                for _ in range(6):
                    ended += terminate_backends(admin, database)
                    time.sleep(0.2)
                assert ended > 0
                posters.wait_for(40)  # recovered: acknowledged again
            check_answers(posters.answers, FAULT_STATUSES)
            check_acknowledged_stored_once(sdk, posters.answers)
            retried = retry_refused(address, posters.answers)
            check_answers(retried, {200, 201})
        everything = {e for a in posters.answers for e in a.event_ids}
        assert set(stored_event_ids(sdk)) == everything  # after retries, all of them once
        check_acknowledged_stored_once(sdk, posters.answers + retried)


def waiting_on_locks(admin: psycopg.Connection, database: str) -> int:
    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND wait_event_type = 'Lock'", (database,)).fetchone()
    return int(row[0]) if row else 0


def deadlocks(admin: psycopg.Connection, database: str) -> int:
    row = admin.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s",
                        (database,)).fetchone()
    return int(row[0]) if row else 0


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_deadlock_with_an_outside_transaction_is_retried() -> None:
    """The SDK's upsert (items a then b) and an outside transaction (b then a) wait on
    each other; PostgreSQL aborts the SDK's, which is retried and succeeds."""
    with postgres_sdk() as (sdk, url):
        database = url.rsplit("/", 1)[1]
        sdk.upsert_items([{"id": "a", "title": "A"}, {"id": "b", "title": "B"}])
        client = create_app(sdk).test_client()
        with admin_connection(url) as monitor, admin_connection(url, autocommit=False) as other:
            before = deadlocks(monitor, database)
            # the outside transaction detects late, so the SDK's is the one aborted
            other.execute("SET LOCAL deadlock_timeout = '20s'")
            other.execute("UPDATE items SET title = 'outside' WHERE id = 'b'")
            answers: list[Any] = []
            upsert = threading.Thread(target=lambda: answers.append(client.put(
                "/api/v1/items", json=[{"id": "a", "title": "sdk"},
                                       {"id": "b", "title": "sdk"}])))
            upsert.start()
            wait_until(lambda: waiting_on_locks(monitor, database) == 1)  # holds a, wants b
            other.execute("UPDATE items SET title = 'outside' WHERE id = 'a'")  # the cycle
            other.commit()
            upsert.join(timeout=30)
            assert deadlocks(monitor, database) > before
        (answer,) = answers
        assert answer.status_code == 200, answer.get_json()
        titles = dict(sdk.store.items_frame()[["id", "title"]].itertuples(index=False))
        assert titles == {"a": "sdk", "b": "sdk"}  # the retry ran after the outside commit


def insert_event_outside(other: psycopg.Connection, event_id: str) -> None:
    """Another writer of keyed events, as the partitioned schema asks: the key is claimed
    in event_keys (whose primary key is what concurrent batches wait on), then the row."""
    other.execute("INSERT INTO event_keys (event_id, timestamp) VALUES (%s, now())",
                  (event_id,))
    other.execute("INSERT INTO events (user_id, item_id, type, timestamp, event_id) "
                  "VALUES ('outside', 'i', 'view', now(), %s)", (event_id,))


def test_a_deadlock_between_event_batches_is_retried() -> None:
    """Keyed events go in event_id order, but an outside writer may not: the SDK's batch
    (a then b) and an outside transaction (b then a) deadlock on event_keys; the
    aborted batch is run again and answers which events were new."""
    with postgres_sdk() as (sdk, url):
        database = url.rsplit("/", 1)[1]
        client = create_app(sdk).test_client()
        with admin_connection(url) as monitor, admin_connection(url, autocommit=False) as other:
            before = deadlocks(monitor, database)
            other.execute("SET LOCAL deadlock_timeout = '20s'")
            insert_event_outside(other, "b")
            answers: list[Any] = []
            batch = [event("a", 1), event("b", 1)]
            post = threading.Thread(target=lambda: answers.append(
                client.post("/api/v1/events", json=batch)))
            post.start()
            wait_until(lambda: waiting_on_locks(monitor, database) == 1)  # holds a, wants b
            insert_event_outside(other, "a")  # the cycle: PostgreSQL aborts the SDK's batch
            other.commit()
            post.join(timeout=30)
            assert deadlocks(monitor, database) > before
        (answer,) = answers
        assert answer.status_code == 200, answer.get_json()  # the retry found both stored
        assert answer.get_json() == {"received": 2, "stored": 0, "duplicates": 2}
        assert stored_event_ids(sdk) == Counter({"a": 1, "b": 1})


def test_a_backend_terminated_inside_an_event_batch_is_503() -> None:
    """The connection dies while the batch's insert waits (on an outside writer's lock):
    the answer is 503 with Retry-After, nothing of the batch is stored, a retry works."""
    with postgres_sdk() as (sdk, url):
        database = url.rsplit("/", 1)[1]
        client = create_app(sdk).test_client()
        with admin_connection(url) as monitor, admin_connection(url, autocommit=False) as other:
            insert_event_outside(other, "x")
            answers: list[Any] = []
            batch = [event("w", 1), event("x", 1)]
            post = threading.Thread(target=lambda: answers.append(
                client.post("/api/v1/events", json=batch)))
            post.start()
            wait_until(lambda: waiting_on_locks(monitor, database) == 1)
            monitor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND wait_event_type = 'Lock'", (database,))
            post.join(timeout=30)
            other.rollback()
        (answer,) = answers
        assert answer.status_code == 503, answer.get_data(as_text=True)[:300]
        assert answer.headers["Retry-After"] == "5"
        assert stored_event_ids(sdk) == Counter()
        again = client.post("/api/v1/events", json=batch)
        assert again.status_code == 201, again.get_json()
        assert stored_event_ids(sdk) == Counter({"w": 1, "x": 1})


def test_overlapping_batches_in_reversed_orders_never_answer_500() -> None:
    with postgres_sdk() as (sdk, _):
        ids = [f"shared-{n:03d}" for n in range(40)]
        orders = [ids, ids[::-1], ids[::2] + ids[1::2], ids[1::2][::-1] + ids[::2]]
        with live_server(create_app(sdk)) as address:
            host, port = address.rsplit(":", 1)
            barrier = threading.Barrier(8)
            answers: list[Answer] = []
            lock = threading.Lock()

            def client(n: int) -> None:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                barrier.wait(timeout=10)
                for round_ in range(5):
                    order = orders[(n + round_) % len(orders)]
                    got = post_events(conn, [event(e, n, item=e) for e in order])
                    with lock:
                        answers.append(got)
                conn.close()

            threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        check_answers(answers, FAULT_STATUSES)
        assert sum(a.body.get("stored", 0) for a in answers) == len(ids)
        assert stored_event_ids(sdk) == Counter(dict.fromkeys(ids, 1))
