"""Writes served lists (requests and impressions) off the request path, in batches.

Logging each served list synchronously would add a database commit to every
``recommend`` call. A background thread batches them instead; ``flush`` drains the
queue, and feedback attribution calls it first so that it finds what it credits.

A log that is lost means refused feedback on that list, so a failed write is retried
with backoff (a database restarting, a locked SQLite file) for a bounded time; a
batch refused for what it holds (a constraint or a value the column cannot take) is
written record by record so that one bad record costs only itself. Whatever is still
lost is counted in ``recsdk_request_log_dropped_total`` and logged, as are lists
dropped because the queue was full.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from recsdk.log_throttle import ThrottledLog
from recsdk.storage.store import Store
from recsdk.telemetry import Telemetry

log = logging.getLogger(__name__)
#: how often the lingering writer looks whether a flush is waiting
HURRY_POLL_S = 0.01

#: Errors caused by the records themselves: retrying the same batch cannot help.
RECORD_ERRORS = (IntegrityError, DataError)
#: At most one "queue full" warning per this many seconds (the counter has them all).
QUEUE_FULL_LOG_EVERY_S = 10.0


class RequestLog:
    def __init__(self, store: Store, batch: int = 1000, interval_s: float = 0.5,
                 linger_s: float = 0.25, *, telemetry: Telemetry | None = None,
                 max_queue: int = 100_000, retry_attempts: int = 5,
                 retry_budget_s: float = 5.0, retry_initial_s: float = 0.05) -> None:
        """``retry_attempts`` writes of a batch at most, within ``retry_budget_s``;
        the budget stays below :meth:`flush`'s default wait so that feedback waiting
        on a retried batch is still accepted once it is written."""
        self.store = store
        self.batch = batch
        self.interval_s = interval_s
        self.linger_s = linger_s
        self.telemetry = telemetry or Telemetry()
        self._retrying = Retrying(
            stop=stop_after_attempt(retry_attempts) | stop_after_delay(retry_budget_s),
            wait=wait_exponential_jitter(multiplier=retry_initial_s, jitter=retry_initial_s,
                                         max=retry_budget_s / 4),
            retry=retry_if_not_exception_type(RECORD_ERRORS),
            before_sleep=self._before_retry,
            reraise=True,
        )
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._idle = threading.Condition()
        self._hurry = threading.Event()
        self._added = 0  # lists queued so far
        self._completed = 0  # of those, written or given up on (in queue order)
        self._full_log = ThrottledLog(log, QUEUE_FULL_LOG_EVERY_S)
        self._thread = threading.Thread(target=self._run, name="recsdk-request-log",
                                        daemon=True)
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        with self._idle:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                full = True
            else:
                full = False
                self._added += 1
        if full:
            self.telemetry.request_log_dropped.labels(reason="queue_full").inc()
            self._full_log.warning(
                "queue_full", f"request log queue full ({self._queue.maxsize} lists "
                f"waiting); dropping the log of request {record['request_id']} and others "
                "(recsdk_request_log_dropped_total)")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Block until everything added before this call is written, retries
        included, or lost; False when ``timeout_s`` passed first.

        Lists added after the call are not waited for: under steady read traffic the
        queue is never empty, and a feedback write must not wait for it to be.
        """
        with self._idle:
            target = self._added  # one writer thread, FIFO: completion is in order
            if self._completed >= target:
                return True
            self._hurry.set()  # someone waits: the writer stops lingering
            return self._idle.wait_for(lambda: self._completed >= target,
                                       timeout=timeout_s)

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
            # linger so that a busy shop writes few large batches, not many small ones,
            # unless a flush (feedback on a list just served) is waiting
            deadline = time.monotonic() + self.linger_s
            while len(records) < self.batch:
                try:
                    if self._hurry.is_set():
                        nxt = self._queue.get_nowait()
                    else:
                        nxt = self._queue.get(
                            timeout=min(max(deadline - time.monotonic(), 0), HURRY_POLL_S))
                except queue.Empty:
                    if self._hurry.is_set() or time.monotonic() >= deadline:
                        break
                    continue
                if nxt is None:
                    self._queue.put(None)
                    break
                records.append(nxt)
            self._hurry.clear()
            try:
                self.write(records)
            finally:
                with self._idle:
                    self._completed += len(records)
                    self._idle.notify_all()

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Store a batch, retrying transient failures; count and log what is lost."""
        try:
            self._retrying(self._record, records)
        except RECORD_ERRORS as exc:
            if len(records) == 1:
                self._lost(records, exc)
                return
            log.warning("request log batch of %d refused (%s); writing its records one "
                        "by one", len(records), type(exc).__name__)
            for record in records:
                try:
                    self._record([record])
                except Exception as one:
                    self._lost([record], one)
        except Exception as exc:
            self._lost(records, exc)

    def _record(self, records: Sequence[Mapping[str, Any]]) -> None:
        try:
            self.store.record_requests(records)
        except Exception:
            self.telemetry.request_log_write_failures.inc()
            raise

    def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("request log write failed (attempt %d: %s); retrying",
                    state.attempt_number, error)

    def _lost(self, records: Sequence[Mapping[str, Any]], exc: BaseException) -> None:
        self.telemetry.request_log_dropped.labels(reason="write_failed").inc(len(records))
        shown = ", ".join(str(r["request_id"]) for r in records[:3])
        log.error("could not log %d served list(s) (%s%s); feedback on them will be "
                  "refused", len(records), shown, ", ..." if len(records) > 3 else "",
                  exc_info=exc)
