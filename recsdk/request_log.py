"""Writes served lists (requests and impressions) off the request path, in batches.

Logging each served list synchronously would add a database commit to every
``recommend`` call. A background thread batches them instead; ``flush`` drains the
queue, and feedback attribution calls it first so that it finds what it credits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from recsdk.storage.store import Store

log = logging.getLogger(__name__)


class RequestLog:
    def __init__(self, store: Store, batch: int = 1000, interval_s: float = 0.5,
                 linger_s: float = 0.25) -> None:
        self.store = store
        self.batch = batch
        self.interval_s = interval_s
        self.linger_s = linger_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=100_000)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="recsdk-request-log",
                                        daemon=True)
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._idle:
                self._pending -= 1
            log.warning("request log queue full; dropping log of request %s", record["request_id"])

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until everything added so far is written."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.interval_s)
            except queue.Empty:
                continue
            if first is None:
                return
            records = [first]
            # linger so that a busy shop writes few large batches, not many small ones
            deadline = time.monotonic() + self.linger_s
            while len(records) < self.batch:
                try:
                    nxt = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                records.append(nxt)
            try:
                self.store.record_requests(records)
            except Exception:
                log.exception("could not log %d served requests", len(records))
            finally:
                with self._idle:
                    self._pending -= len(records)
                    self._idle.notify_all()
