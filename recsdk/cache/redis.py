"""Redis behind a circuit breaker: when it is down, requests go on without it.

Each failure is logged and counted; after one, Redis is not tried again for
``retry_after_s`` so that a dead server costs one timeout, not one per request.

A failed write of recent activity leaves the cached list without those events (a
purchase, say), so the list is *suspect*: this process reads that user's history from
the database until the list is deleted from Redis, which is the first thing it does
once Redis answers again. Another process sharing Redis could read the stale list in
the moment between Redis coming back and that deletion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import redis

from recsdk.cache.base import Cache
from recsdk.cache.memory import MemoryCache
from recsdk.telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")
PREFIX = "recsdk:"

class RedisCache:
    name = "redis"

    def __init__(self, url: str, telemetry: Telemetry | None = None,
                 socket_timeout_s: float = 0.25, retry_after_s: float = 5.0) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s,
            health_check_interval=30,
        )
        self.telemetry = telemetry or Telemetry()
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._lock = threading.Lock()
        #: recent-activity keys whose last write failed: never read, deleted on recovery
        self._suspect: set[str] = set()
        self._suspect_overflow = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _run(self, operation: str, fn: Callable[[], T], default: T) -> T:
        if not self.available:
            self.telemetry.cache_errors.labels(backend="redis", operation=operation).inc()
            return default
        try:
            if self._suspect or self._suspect_overflow:
                self._drop_suspect()
            return fn()
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.retry_after_s
            self.telemetry.cache_errors.labels(backend="redis", operation=operation).inc()
            log.warning("redis %s failed, serving without cache for %.0fs: %s",
                        operation, self.retry_after_s, exc)
            return default

    def get(self, key: str) -> bytes | None:
        return self._run("get", lambda: self.client.get(PREFIX + key), None)

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s > 0:
            self._run("set", lambda: self.client.set(PREFIX + key, value,
                                                     px=int(ttl_s * 1000)), None)

    def add(self, key: str, value: bytes, ttl_s: float) -> bool | None:
        if ttl_s <= 0:
            return True
        return self._run("add", lambda: bool(self.client.set(
            PREFIX + key, value, px=max(int(ttl_s * 1000), 1), nx=True)), None)

    def delete(self, *keys: str) -> None:
        if keys:
            self._run("delete", lambda: self.client.delete(*[PREFIX + k for k in keys]), None)

    def push_recent(self, entries: Mapping[str, list[str]], cap: int) -> None:
        def push() -> bool:
            # one round trip for the whole batch; RPUSHX only extends lists that exist
            pipe = self.client.pipeline(transaction=False)
            for key, new in entries.items():
                pipe.rpushx(PREFIX + key, *new)
                pipe.ltrim(PREFIX + key, -cap, -1)
            pipe.execute()
            return True
        if entries and not self._run("push_recent", push, False):
            self._mark_suspect(entries)

    #: beyond this many suspect keys, every cached history is dropped on recovery
    MAX_SUSPECT = 100_000

    def _mark_suspect(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._suspect.update(keys)
            if len(self._suspect) > self.MAX_SUSPECT:
                self._suspect.clear()
                self._suspect_overflow = True

    def _drop_suspect(self) -> None:
        """Delete the suspect lists (raises like any Redis call; they stay suspect)."""
        with self._lock:
            keys, overflow = list(self._suspect), self._suspect_overflow
        if overflow:
            for key in self.client.scan_iter(PREFIX + "recent:*", count=1000):
                self.client.delete(key)
        for start in range(0, len(keys), 10_000):
            self.client.delete(*[PREFIX + k for k in keys[start:start + 10_000]])
        with self._lock:
            self._suspect.difference_update(keys)
            self._suspect_overflow = self._suspect_overflow and not overflow

    def is_suspect(self, key: str) -> bool:
        return self._suspect_overflow or key in self._suspect

    def set_recent(self, key: str, entries: list[str], cap: int, ttl_s: float) -> None:
        def replace() -> None:
            k = PREFIX + key
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(k)
            if entries:
                pipe.rpush(k, *entries[-cap:])
            else:  # an empty history is cached as one sentinel so it is not re-read
                pipe.rpush(k, "")
            pipe.expire(k, max(int(ttl_s), 1))
            pipe.execute()
        if self.is_suspect(key):
            return  # stays out of Redis until the stale list is deleted
        self._run("set_recent", replace, None)

    def get_recent(self, key: str) -> list[str] | None:
        if self.is_suspect(key) and not self.available:
            return None  # read from the database until the stale list is gone

        def read() -> list[str] | None:  # _run deletes suspect lists before reading
            if self.is_suspect(key):
                return None
            raw: list[Any] = self.client.lrange(PREFIX + key, 0, -1)
            if not raw:
                return None
            return [r.decode() for r in raw if r]
        return self._run("get_recent", read, None)

    def clear(self) -> None:
        def clear() -> None:
            for key in self.client.scan_iter(PREFIX + "*", count=1000):
                self.client.delete(key)
        self._run("clear", clear, None)

    def ping(self) -> bool:
        """Ask Redis directly (not through the breaker); a failure opens the breaker."""
        try:
            return bool(self.client.ping())
        except (redis.RedisError, OSError):
            with self._lock:
                self._down_until = time.monotonic() + self.retry_after_s
            return False

    def close(self) -> None:
        self.client.close()


def make_cache(redis_url: str | None, telemetry: Telemetry, max_entries: int = 100_000,
               socket_timeout_s: float = 0.25) -> Cache:
    """Redis when a URL is configured, the in-process cache otherwise."""
    if redis_url:
        return RedisCache(redis_url, telemetry, socket_timeout_s=socket_timeout_s)
    return MemoryCache(max_entries)
