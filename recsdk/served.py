"""Telling plugins what was served (``recsdk_served``), off the request path.

A bounded queue and one thread: a page is never delayed by a slow implementation,
and when the queue is full the notification is dropped and counted rather than
letting memory grow.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING

from recsdk.telemetry import Telemetry
from recsdk.types import RecommendationRequest, RecommendationResult

if TYPE_CHECKING:
    from recsdk.plugin_manager import PluginManager

log = logging.getLogger(__name__)

_Item = tuple["PluginManager", RecommendationRequest, RecommendationResult]


class ServedDispatcher:
    def __init__(self, telemetry: Telemetry, maxsize: int = 10_000) -> None:
        self.telemetry = telemetry
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, plugins: PluginManager, request: RecommendationRequest,
               result: RecommendationResult) -> None:
        """Queue one notification; call it only when a plugin implements the hook."""
        self._ensure_thread()
        try:
            self._queue.put_nowait((plugins, request, result))
        except queue.Full:
            self.telemetry.served_dropped.inc()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="recsdk-served")
                    self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            plugins, request, result = item
            try:
                plugins.call_each("recsdk_served", request=request, result=result)
            except Exception:  # call_each isolates plugins; this is a bug of ours
                log.exception("recsdk_served dispatch failed")
            finally:
                self._queue.task_done()

    def join(self) -> None:
        """Wait until every queued notification was delivered (tests, shutdown)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
