"""Log a repeating failure once per interval with a count, not once per request.

A plugin that fails on every request would otherwise write a line (and a traceback)
per request: megabytes a minute that hide everything else and cost the request path
the formatting. Keys are few and bounded (plugin x hook x kind), so state is a dict.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 10.0


@dataclass
class _KeyState:
    last_logged: float
    suppressed: int = 0


class ThrottledLog:
    """Writes a message for a key at most once per ``interval_s``.

    The first message of a key carries the traceback (once per process, so the cause
    is on record); later ones say how many repeats were held back since the last line.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0, got {interval_s}")
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._keys: dict[Hashable, _KeyState] = {}
        self._lock = threading.Lock()

    def warning(self, key: Hashable, message: str, exc: BaseException | None = None) -> bool:
        """Log ``message`` unless ``key`` was logged less than an interval ago.

        Returns whether a line was written.
        """
        now = self._clock()
        with self._lock:
            state = self._keys.get(key)
            if state is not None and now - state.last_logged < self.interval_s:
                state.suppressed += 1
                return False
            first = state is None
            suppressed = 0 if first else state.suppressed  # type: ignore[union-attr]
            self._keys[key] = _KeyState(now)
        if suppressed:
            message = f"{message} ({suppressed} repeats not logged since the last line)"
        self.logger.warning(message, exc_info=exc if first else None)
        return True
