"""The bandits' state, shared by every serving process: statistics and pending pulls.

Statistics are plain sums (:class:`~recsdk_plugins.bandits.policy.LinearStats` as one
flat vector), so processes share them by **atomic increments**: each process adds its
own updates to a local delta, and :meth:`SharedStats.sync` adds the delta to the shared
totals and reads the totals back in one atomic step (a Redis ``MULTI``/``EXEC`` of
``HINCRBYFLOAT``, or one database transaction of ``INSERT ... ON CONFLICT DO UPDATE
SET value = value + delta``). A background thread syncs every ``sync_s`` seconds, so a
process sees another's update at most about ``2 * sync_s`` after it was made.

Pending pulls, what a later reward must be credited with (request id -> shown item ->
context vector), are written once at ``recsdk_served`` and read by whichever process
receives the feedback; they expire after ``pull_ttl_s`` (a Redis key TTL, or rows older
than that are ignored and deleted).

Backends: :class:`RedisBackend` when the settings' cache is Redis, else
:class:`DatabaseBackend` (tables ``bandit_statistics`` and ``bandit_pulls``, migration
0009), and :class:`MemoryBackend` for one process (tests, the simulator benchmark).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from recsdk_plugins.bandits.policy import LinearStats, vector_length
from sqlalchemy import Engine, and_, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from recsdk.storage.models import BanditPull, BanditStatistic
from recsdk.storage.retry import retry_conflicts

log = logging.getLogger(__name__)

#: the cell index that marks a namespace as started (seeded from a run, or not)
SEEDED = -1


class StateBackend(Protocol):
    """Shared storage of statistics vectors and pending pulls, by namespace."""

    def add(self, namespace: str, delta: np.ndarray) -> np.ndarray:
        """Add ``delta`` to the totals atomically and return the new totals."""

    def seed(self, namespace: str, values: np.ndarray) -> bool:
        """Add ``values`` only if the namespace was never started; True when added."""

    def put_pulls(self, namespace: str, request_id: str,
                  contexts: Mapping[str, np.ndarray], ttl_s: float) -> None: ...

    def get_pull(self, namespace: str, request_id: str, item_id: str
                 ) -> tuple[bool, np.ndarray | None]:
        """(whether the request is known, the item's context or None if not shown)."""

    def clear(self, namespace: str) -> None: ...


class MemoryBackend:
    """One process's state (no sharing): for tests and the simulator."""

    def __init__(self) -> None:
        self._totals: dict[str, np.ndarray] = {}
        self._seeded: set[str] = set()
        self._pulls: dict[tuple[str, str], tuple[float, dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()

    def add(self, namespace: str, delta: np.ndarray) -> np.ndarray:
        with self._lock:
            total = self._totals.get(namespace)
            total = delta.copy() if total is None else total + delta
            self._totals[namespace] = total
            return total.copy()

    def seed(self, namespace: str, values: np.ndarray) -> bool:
        with self._lock:
            if namespace in self._seeded:
                return False
            self._seeded.add(namespace)
        self.add(namespace, values)
        return True

    def put_pulls(self, namespace: str, request_id: str,
                  contexts: Mapping[str, np.ndarray], ttl_s: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._pulls = {k: v for k, v in self._pulls.items() if v[0] > now}
            self._pulls[(namespace, request_id)] = (now + ttl_s, dict(contexts))

    def get_pull(self, namespace: str, request_id: str, item_id: str
                 ) -> tuple[bool, np.ndarray | None]:
        with self._lock:
            got = self._pulls.get((namespace, request_id))
        if got is None or got[0] <= time.monotonic():
            return False, None
        return True, got[1].get(item_id)

    def clear(self, namespace: str) -> None:
        with self._lock:
            self._totals.pop(namespace, None)
            self._seeded.discard(namespace)
            self._pulls = {k: v for k, v in self._pulls.items() if k[0] != namespace}


class RedisBackend:
    """A hash of totals per namespace, and one hash per request's pending pulls."""

    def __init__(self, url: str, prefix: str = "recsdk:bandit:",
                 socket_timeout_s: float = 1.0) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                           socket_connect_timeout=socket_timeout_s)
        self.prefix = prefix

    def _stats_key(self, namespace: str) -> str:
        return f"{self.prefix}{namespace}:stats"

    def _pull_key(self, namespace: str, request_id: str) -> str:
        return f"{self.prefix}{namespace}:pull:{request_id}"

    def add(self, namespace: str, delta: np.ndarray) -> np.ndarray:
        key = self._stats_key(namespace)
        pipe = self.client.pipeline(transaction=True)
        for cell in np.flatnonzero(delta):
            pipe.hincrbyfloat(key, str(int(cell)), float(delta[cell]))
        pipe.hgetall(key)
        return _from_cells(pipe.execute()[-1], len(delta))

    def seed(self, namespace: str, values: np.ndarray) -> bool:
        key = self._stats_key(namespace)
        # HSETNX on the marker field and the increments in one transaction would add
        # the values even when the marker existed; a Lua script makes it one step
        script = """
        if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 0 then return 0 end
        for i = 2, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1]) end
        return 1
        """
        args: list[str] = [str(SEEDED)]
        for cell in np.flatnonzero(values):
            args += [str(int(cell)), repr(float(values[cell]))]
        return bool(self.client.eval(script, 1, key, *args))

    def put_pulls(self, namespace: str, request_id: str,
                  contexts: Mapping[str, np.ndarray], ttl_s: float) -> None:
        if not contexts:
            return
        key = self._pull_key(namespace, request_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={item: _encode(x) for item, x in contexts.items()})
        pipe.pexpire(key, max(int(ttl_s * 1000), 1))
        pipe.execute()

    def get_pull(self, namespace: str, request_id: str, item_id: str
                 ) -> tuple[bool, np.ndarray | None]:
        key = self._pull_key(namespace, request_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(key)
        pipe.hget(key, item_id)
        exists, raw = pipe.execute()
        return bool(exists), None if raw is None else _decode(raw)

    def clear(self, namespace: str) -> None:
        self.client.delete(self._stats_key(namespace))
        for key in self.client.scan_iter(self._pull_key(namespace, "*"), count=1000):
            self.client.delete(key)


class DatabaseBackend:
    """Tables ``bandit_statistics`` (one row per cell) and ``bandit_pulls``."""

    #: expired pulls are deleted at most this often (seconds)
    PRUNE_EVERY_S = 60.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._pruned = 0.0

    def _insert(self, table: object) -> object:
        return self._dialect.insert(table)  # type: ignore[attr-defined]

    @retry_conflicts
    def add(self, namespace: str, delta: np.ndarray) -> np.ndarray:
        table = BanditStatistic.__table__
        rows = [{"namespace": namespace, "cell": int(c), "value": float(delta[c])}
                for c in np.flatnonzero(delta)]  # cell order: concurrent writers never
        with self.engine.begin() as conn:       # wait on each other in a cycle
            if rows:
                stmt = self._insert(table)
                conn.execute(stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                    index_elements=["namespace", "cell"],
                    set_={"value": table.c.value + stmt.excluded.value}), rows)  # type: ignore[attr-defined]
            got = conn.execute(select(table.c.cell, table.c.value)
                               .where(table.c.namespace == namespace)).all()
        return _from_cells({c: v for c, v in got}, len(delta))

    @retry_conflicts
    def seed(self, namespace: str, values: np.ndarray) -> bool:
        table = BanditStatistic.__table__
        with self.engine.begin() as conn:
            marked = conn.execute(self._insert(table).values(  # type: ignore[attr-defined]
                namespace=namespace, cell=SEEDED, value=1.0).on_conflict_do_nothing(
                index_elements=["namespace", "cell"]).returning(table.c.cell)).first()
            if marked is None:  # some process started this state before
                return False
            rows = [{"namespace": namespace, "cell": int(c), "value": float(values[c])}
                    for c in np.flatnonzero(values)]
            if rows:
                stmt = self._insert(table)
                conn.execute(stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                    index_elements=["namespace", "cell"],
                    set_={"value": table.c.value + stmt.excluded.value}), rows)  # type: ignore[attr-defined]
        return True

    def put_pulls(self, namespace: str, request_id: str,
                  contexts: Mapping[str, np.ndarray], ttl_s: float) -> None:
        if not contexts:
            return
        now = datetime.now(UTC)
        table = BanditPull.__table__
        rows = [{"namespace": namespace, "request_id": request_id, "item_id": item,
                 "context": _encode(x), "expires_at": now + timedelta(seconds=ttl_s)}
                for item, x in contexts.items()]
        with self.engine.begin() as conn:
            conn.execute(self._insert(table).on_conflict_do_nothing(  # type: ignore[attr-defined]
                index_elements=["namespace", "request_id", "item_id"]), rows)
            if time.monotonic() - self._pruned >= self.PRUNE_EVERY_S:
                self._pruned = time.monotonic()
                conn.execute(delete(table).where(table.c.expires_at < now))

    def get_pull(self, namespace: str, request_id: str, item_id: str
                 ) -> tuple[bool, np.ndarray | None]:
        table = BanditPull.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(table.c.item_id, table.c.context).where(and_(
                table.c.namespace == namespace, table.c.request_id == request_id,
                table.c.expires_at >= datetime.now(UTC)))).all()
        found = {i: c for i, c in rows}
        raw = found.get(item_id)
        return bool(found), None if raw is None else _decode(raw)

    def clear(self, namespace: str) -> None:
        with self.engine.begin() as conn:
            for table in (BanditStatistic.__table__, BanditPull.__table__):
                conn.execute(delete(table).where(table.c.namespace == namespace))


def _from_cells(cells: Mapping[object, object], length: int) -> np.ndarray:
    out = np.zeros(length)
    for cell, value in cells.items():
        c = int(cell.decode() if isinstance(cell, bytes) else cell)  # type: ignore[arg-type]
        if 0 <= c < length:
            out[c] = float(value.decode() if isinstance(value, bytes) else value)  # type: ignore[arg-type]
    return out


def _encode(x: np.ndarray) -> bytes:
    return np.asarray(x, dtype="<f8").tobytes()


def _decode(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f8").copy()


class SharedStats:
    """This process's view of the shared statistics: the last synced totals plus the
    updates not yet synced. Thread-safe; reads never touch the backend."""

    def __init__(self, backend: StateBackend, namespace: str, dim: int,
                 sync_s: float = 1.0) -> None:
        self.backend = backend
        self.namespace = namespace
        self.dim = dim
        self.sync_s = sync_s
        n = vector_length(dim)
        self._totals = np.zeros(n)
        self._delta = np.zeros(n)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self.sync_failures = 0
        self._stop = threading.Event()
        if sync_s > 0:
            _start_syncer(self)

    def stats(self) -> LinearStats:
        """The statistics as this process knows them now."""
        with self._lock:
            return LinearStats.from_vector(self._totals + self._delta, self.dim)

    def add(self, update: LinearStats) -> None:
        with self._lock:
            self._delta += update.to_vector()
        if self.sync_s == 0:
            self.sync()

    def sync(self) -> bool:
        """Add the pending delta to the shared totals and read them back; False (and
        the delta kept for the next try) when the backend fails."""
        with self._sync_lock:
            with self._lock:
                delta = self._delta.copy()
            try:
                totals = self.backend.add(self.namespace, delta)
            except Exception as exc:  # a backend outage must not lose or double updates
                self.sync_failures += 1
                log.warning("bandit state %s: sync failed (%s); kept locally and retried",
                            self.namespace, exc)
                return False
            with self._lock:
                self._delta -= delta
                self._totals = totals
            return True

    def seed(self, stats: LinearStats) -> bool:
        """Start the shared state from a run's saved statistics, unless some process
        already started it (then it holds everything the run saw, and more)."""
        seeded = self.backend.seed(self.namespace, stats.to_vector())
        self.sync()
        return seeded

    def close(self) -> None:
        self._stop.set()
        self.sync()


def _start_syncer(shared: SharedStats) -> None:
    """A daemon thread that syncs ``shared`` every ``sync_s`` seconds; it holds only a
    weak reference, so it ends when ``shared`` is closed or garbage."""
    ref = weakref.ref(shared)
    stop, every = shared._stop, shared.sync_s

    def loop() -> None:
        while not stop.wait(every):
            target = ref()
            if target is None:
                return
            target.sync()
            del target

    threading.Thread(target=loop, name=f"bandit-sync-{shared.namespace}",
                     daemon=True).start()
