"""Per-client rate limits of the public capture endpoints, by the ``limits`` library.

A scope configured as ``rate_per_s`` and ``burst`` lets a client make ``burst`` requests
in any window of ``ceil(burst / rate_per_s)`` seconds (limits' moving window: the same
long-run rate as a token bucket of that size, and never more than ``burst`` at once).
The counts live in Redis when the SDK uses Redis, so every process shares them, else
in this process. Redis unreachable: this process's own counts decide until it answers,
so a client may then get one window per process rather than none.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from recsdk.log_throttle import ThrottledLog

log = logging.getLogger(__name__)
_down = ThrottledLog(log)
#: Redis answers within this or the process's own counts decide (seconds)
REDIS_TIMEOUT_S = 0.25


def window_item(rate_per_s: float, burst: int) -> RateLimitItem:
    """``burst`` hits per ``ceil(burst / rate_per_s)`` seconds."""
    return RateLimitItemPerSecond(burst, max(1, math.ceil(burst / rate_per_s)))


class RateLimits:
    """Named scopes of (rate per second, burst), counted per client."""

    def __init__(self, scopes: Mapping[str, tuple[float, int]],
                 redis_url: str | None = None) -> None:
        self.items = {name: window_item(rate, burst) for name, (rate, burst) in scopes.items()}
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared = None
        if redis_url:
            storage = storage_from_string(
                redis_url, wrap_exceptions=True, socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S)
            self._shared = MovingWindowRateLimiter(storage)

    def wait_s(self, scope: str, client: str) -> float:
        """0.0 when ``client`` may go on in ``scope`` (the hit is counted), else the
        seconds until its window has room again."""
        item = self.items[scope]
        for limiter in (self._shared, self._local):
            if limiter is None:
                continue
            try:
                if limiter.hit(item, scope, client):
                    return 0.0
                reset = limiter.get_window_stats(item, scope, client).reset_time
                return max(reset - time.time(), 0.001)
            except StorageError as exc:
                _down.warning("redis", f"rate limits: Redis unreachable ({exc}); this "
                                       "process counts on its own until it answers")
        return 0.0
