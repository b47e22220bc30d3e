"""The model lifecycle around a serving process: picking up new runs, training jobs.

A server never restarts to serve a new model: :class:`ModelWatcher` polls the
registry every ``[models] model_refresh_s`` and swaps to the run activated last (by
``recsdk train`` in another process, or ``recsdk models activate`` for a rollback).
:class:`TrainingJobs` runs training started over HTTP in the background and keeps
each job's status for ``GET /api/v1/admin/jobs/<id>``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from recsdk.errors import RecSDKError

if TYPE_CHECKING:
    from recsdk.sdk import RecSDK

log = logging.getLogger(__name__)


class TrainingBusy(RecSDKError):
    """A training run is already in progress in this process."""


class ModelWatcher:
    """A daemon thread that swaps the SDK to the active run when it changes."""

    def __init__(self, sdk: RecSDK, every_s: float) -> None:
        self._sdk = sdk
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if every_s > 0:
            self._thread = threading.Thread(target=self._run, name="recsdk-model-watcher",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if self._sdk.refresh_model():
                    log.info("picked up model run %s", self._sdk.model_run)
            except Exception:  # a failed refresh keeps serving the current run
                log.exception("could not refresh the model run; still serving %s",
                              self._sdk.model_run)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class TrainingJobs:
    """Background jobs by id, with their status; the newest 100 are remembered."""

    KEEP = 100

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, work: Callable[[], dict[str, Any]], timeout_s: float | None = None,
              on_timeout: Callable[[], None] | None = None) -> str:
        """Run ``work`` in a thread; its return value becomes the job's ``result``.

        A job still running after ``timeout_s`` is reported failed and
        ``on_timeout`` is called (to fail its model run); Python cannot kill the
        thread, but it no longer blocks the next job and its run is never activated.
        """
        job_id = uuid.uuid4().hex
        with self._lock:
            if any(j["status"] in ("queued", "running") for j in self._jobs.values()):
                raise TrainingBusy("a training job is already running in this process; "
                                   "poll its status and retry when it has finished")
            self._jobs[job_id] = {"id": job_id, "status": "queued", "result": None,
                                  "error": None, "created_at": _now(), "started_at": None,
                                  "finished_at": None}
            while len(self._jobs) > self.KEEP:
                self._jobs.popitem(last=False)
        thread = threading.Thread(target=self._run, args=(job_id, work, timeout_s, on_timeout),
                                  name=f"recsdk-train-{job_id[:8]}", daemon=True)
        self._threads[job_id] = thread
        thread.start()
        return job_id

    def _run(self, job_id: str, work: Callable[[], dict[str, Any]], timeout_s: float | None,
             on_timeout: Callable[[], None] | None) -> None:
        self._set(job_id, status="running", started_at=_now())
        outcome: dict[str, Any] = {}

        def attempt() -> None:
            try:
                outcome["result"] = work()
            except Exception as exc:
                log.exception("training job %s failed", job_id)
                outcome["error"] = f"{type(exc).__name__}: {exc}"

        worker = threading.Thread(target=attempt, name=f"recsdk-fit-{job_id[:8]}",
                                  daemon=True)
        worker.start()
        worker.join(timeout_s)
        try:
            if worker.is_alive():
                log.error("training job %s still running after %s s: reported failed",
                          job_id, timeout_s)
                if on_timeout is not None:
                    on_timeout()
                self._set(job_id, status="failed", finished_at=_now(),
                          error=f"timed out after {timeout_s:g} s ([models] train_timeout_s)")
            elif "error" in outcome:
                self._set(job_id, status="failed", error=outcome["error"], finished_at=_now())
            else:
                self._set(job_id, status="succeeded", result=outcome["result"],
                          finished_at=_now())
        finally:
            self._threads.pop(job_id, None)

    def _set(self, job_id: str, **values: Any) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id].update(values)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return dict(job) if job is not None else None

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest ``limit`` jobs of this process, newest first (a dashboard's list)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self._lock:
            return [dict(j) for j in reversed(self._jobs.values())][:limit]

    def wait(self, timeout_s: float) -> None:
        """Wait for running jobs (at shutdown), at most ``timeout_s``."""
        for thread in list(self._threads.values()):
            thread.join(timeout=timeout_s)


def _now() -> str:
    return datetime.now(UTC).isoformat()
