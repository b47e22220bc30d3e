"""The in-process cache used when no Redis is configured."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from cachetools import TTLCache


class MemoryCache:
    """A thread-safe TTL cache bounded by entry count (least recently used go first)."""

    name = "memory"

    def __init__(self, max_entries: int = 100_000, recent_ttl_s: float = 3600.0) -> None:
        # per-entry TTLs: the store keeps (expiry, value); TTLCache bounds the size
        self._values: TTLCache[str, tuple[float, bytes]] = TTLCache(max_entries, 10**9)
        self._lists: TTLCache[str, list[str]] = TTLCache(max_entries, recent_ttl_s)
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            hit = self._values.get(key)
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                self._values.pop(key, None)
                return None
            return hit[1]

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        with self._lock:
            self._values[key] = (time.monotonic() + ttl_s, value)

    def add(self, key: str, value: bytes, ttl_s: float) -> bool | None:
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and hit[0] >= now:
                return False
            if ttl_s > 0:
                self._values[key] = (now + ttl_s, value)
            return True

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)
                self._lists.pop(key, None)

    def push_recent(self, entries: Mapping[str, list[str]], cap: int) -> None:
        with self._lock:
            lists = self._lists
            for key, new in entries.items():
                if key in lists:
                    lists[key] = (lists[key] + new)[-cap:]

    def set_recent(self, key: str, entries: list[str], cap: int, ttl_s: float) -> None:
        with self._lock:
            self._lists[key] = list(entries)[-cap:]

    def get_recent(self, key: str) -> list[str] | None:
        with self._lock:
            got = self._lists.get(key)
            return None if got is None else list(got)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._lists.clear()

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        self.clear()
