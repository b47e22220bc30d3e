"""How one plugin call runs under a time budget without hurting the other plugins.

Three rules, all per plugin *name* and kept by a :class:`PluginRunner` that outlives
any one :class:`~recsdk.plugin_manager.PluginManager` (a new model run brings new plugin
instances; what was learnt about a plugin's health stays):

* **Own capacity.** Each plugin runs on threads of its own, at most ``max_concurrency``
  calls at once. A call abandoned at its deadline keeps its thread until it returns, but
  only that plugin's capacity shrinks; when all of it is taken a new call is refused at
  once ("saturated") instead of queueing behind calls that will not finish in time.
  The fallback plugin's capacity (``[pipeline] fallback_workers``) is its own too, so
  no other plugin can take it.
* **Circuit breaker.** ``breaker_failures`` consecutive errors or timeouts open the
  breaker: calls are skipped at no cost. After ``breaker_reset_s`` it is half-open and
  lets exactly one trial call through; success closes it, failure opens it again.
* **Daemon threads.** A hung plugin cannot block the process from exiting
  (``concurrent.futures`` threads are joined at exit).

Why a small state machine and not pybreaker (1.4): ``CircuitBreaker.call`` holds one
lock for the whole call, so a plugin's calls would run one at a time and, while a
half-open trial hangs, every other call would wait for it instead of being skipped;
its clock is the wall clock (``datetime.now``), which jumps and cannot be faked in a
test; and a timeout is not a call outcome it can see. What is needed here is three
states and two counters, below.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from recsdk.errors import ConfigurationError
from recsdk.log_throttle import DEFAULT_INTERVAL_S, ThrottledLog
from recsdk.telemetry import Telemetry

if TYPE_CHECKING:
    from recsdk.config import Settings


#: Outcome kinds of a call that did not answer; the last two mean it never ran.
ERROR, TIMEOUT, OPEN, SATURATED = "error", "timeout", "open", "saturated"
SKIPPED_KINDS = frozenset({OPEN, SATURATED})


class BreakerState(IntEnum):
    """Values of the ``recsdk_plugin_breaker_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Admission:
    """A breaker's permission for one call, given at ``at`` (the breaker's clock);
    ``trial`` marks the half-open probe."""

    at: float = 0.0
    trial: bool = False


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open after a cool-down.

    Failures of calls that were already running when a failure was counted belong to
    that incident and are not counted again: one stall of the whole process (a long GC
    pause, a starved CPU) times out every call in flight at once, and must not open
    the breaker of a healthy plugin. A plugin that keeps failing fails call after call,
    and N of those open it.

    In half-open exactly one trial call runs; its outcome alone decides (success
    closes, failure re-opens). Outcomes of calls admitted earlier that finish while the
    breaker is not closed are ignored, so late timeouts do not extend the cool-down.
    """

    def __init__(self, failures: int, reset_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        if reset_s <= 0:
            raise ValueError(f"reset_s must be > 0, got {reset_s}")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._last_counted = float("-inf")
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        """The state a call arriving now meets: open turns half-open once cooled down."""
        with self._lock:
            return self._effective(self._clock())

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def retry_in_s(self) -> float:
        """Seconds until the next trial call is allowed (0 when not open)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.reset_s - self._clock())

    def _effective(self, now: float) -> BreakerState:
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return self._state

    def admit(self) -> Admission | None:
        """Permission for a call now, or None when it must be skipped."""
        with self._lock:
            now = self._clock()
            state = self._effective(now)
            if state is BreakerState.CLOSED:
                return Admission(now)
            if state is BreakerState.HALF_OPEN and not self._trial_running:
                self._state = BreakerState.HALF_OPEN
                self._trial_running = True
                return Admission(now, trial=True)
            return None

    def succeeded(self, admission: Admission) -> None:
        with self._lock:
            if admission.trial:
                self._state = BreakerState.CLOSED
                self._trial_running = False
                self._consecutive = 0
            elif self._state is BreakerState.CLOSED:
                self._consecutive = 0

    def failed(self, admission: Admission) -> None:
        with self._lock:
            if admission.trial:
                self._trial_running = False
                self._open()
            elif self._state is BreakerState.CLOSED and admission.at >= self._last_counted:
                self._consecutive += 1
                self._last_counted = self._clock()
                if self._consecutive >= self.failures:
                    self._open()

    def withdrawn(self, admission: Admission) -> None:
        """The admitted call never ran (no capacity): a trial may be tried again."""
        if admission.trial:
            with self._lock:
                self._trial_running = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()


class _Lane:
    """One plugin's threads: at most ``capacity`` calls at once, abandoned ones included.

    Threads start on demand (never more than ``capacity``) and are daemons, so a call
    that never returns holds one thread of this plugin and nothing else.
    """

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any],
                                            Sequence[Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._threads = 0
        self._closed = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_submit(self, fn: Callable[..., Any], args: Sequence[Any]) -> Future[Any] | None:
        """Start ``fn(*args)`` on this lane, or None when its capacity is all taken."""
        number = 0
        with self._lock:
            if self._closed:
                raise RuntimeError("the plugin runner is closed")
            if self._in_flight >= self.capacity:
                return None
            self._in_flight += 1
            spawn = self._in_flight > self._threads
            if spawn:
                self._threads += 1
                number = self._threads
        if spawn:
            threading.Thread(target=self._work, name=f"recsdk-{self.name}-{number}",
                             daemon=True).start()
        future: Future[Any] = Future()
        self._jobs.put((future, fn, args))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            del job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the waiting caller
                    future.set_exception(exc)
            del future, fn, args
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        """Let idle threads end; threads inside a call end when it returns."""
        with self._lock:
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._jobs.put(None)


@dataclass(frozen=True)
class IsolationSettings:
    """What the runner needs from ``[pipeline]`` (see :meth:`from_settings`)."""

    default_concurrency: int = 16
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    fallback: str | None = None
    fallback_workers: int = 16
    log_interval_s: float = DEFAULT_INTERVAL_S

    def __post_init__(self) -> None:
        for key in ("default_concurrency", "breaker_failures", "fallback_workers"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"isolation: {key} must be an integer >= 1, "
                                         f"got {value!r}")
        if not self.breaker_reset_s > 0:
            raise ConfigurationError(
                f"isolation: breaker_reset_s must be > 0, got {self.breaker_reset_s!r}")
        if not self.log_interval_s >= 0:
            raise ConfigurationError(
                f"isolation: log_interval_s must be >= 0, got {self.log_interval_s!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> IsolationSettings:
        pipeline = settings.pipeline
        return cls(
            default_concurrency=int(pipeline["max_workers"]),
            breaker_failures=int(pipeline["breaker_failures"]),
            breaker_reset_s=float(pipeline["breaker_reset_s"]),
            fallback=pipeline["fallback"] or None,
            fallback_workers=int(pipeline["fallback_workers"]),
        )


@dataclass(frozen=True)
class CallOutcome:
    """What became of one call: a value, or an error of some ``kind``."""

    plugin: str
    value: Any = None
    error: str | None = None
    kind: str | None = None
    elapsed_ms: float = 0.0
    exception: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A call handed to a plugin's lane, or refused (``refused`` says why)."""

    plugin: str
    started: float
    future: Future[Any] | None
    admission: Admission | None
    refused: CallOutcome | None


class PluginRunner:
    """Runs plugin calls on per-plugin capacity behind per-plugin circuit breakers.

    Share one runner between the plugin managers of successive model runs: lanes,
    breakers, gauges and the failure log are keyed by plugin name. Whoever creates the
    runner closes it.
    """

    def __init__(self, settings: IsolationSettings | None = None,
                 telemetry: Telemetry | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or IsolationSettings()
        self.telemetry = telemetry
        # under the plugin manager's logger name, where plugin failures were always logged
        self.failure_log = ThrottledLog(logging.getLogger("recsdk.plugin_manager"),
                                        self.settings.log_interval_s)
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings,
                      telemetry: Telemetry | None = None) -> PluginRunner:
        """A runner configured by ``[pipeline]``; per-plugin limits come from
        :meth:`configure` (the plugin manager calls it when it registers a plugin)."""
        return cls(IsolationSettings.from_settings(settings), telemetry)

    # ---- configuration ---------------------------------------------------------------

    def capacity_of(self, name: str, max_concurrency: int | None = None) -> int:
        """The fallback gets the reserved workers; others their own or the default."""
        if name == self.settings.fallback:
            return self.settings.fallback_workers
        return max_concurrency or self.settings.default_concurrency

    def configure(self, name: str, max_concurrency: int | None = None) -> None:
        """Give plugin ``name`` its lane and breaker (kept when they exist already).

        A changed capacity gets a fresh lane; calls still running on the old one finish
        there. The breaker and its history stay.
        """
        if max_concurrency is not None and (isinstance(max_concurrency, bool) or
                                            not isinstance(max_concurrency, int) or
                                            max_concurrency < 1):
            raise ConfigurationError(f"plugins.{name}: max_concurrency must be an integer "
                                     f">= 1, got {max_concurrency!r}")
        capacity = self.capacity_of(name, max_concurrency)
        with self._lock:
            lane = self._lanes.get(name)
            if lane is None or lane.capacity != capacity:
                if lane is not None:
                    lane.close()
                lane = self._lanes[name] = _Lane(name, capacity)
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = self._breakers[name] = CircuitBreaker(
                    self.settings.breaker_failures, self.settings.breaker_reset_s,
                    self._clock)
        if self.telemetry is not None:
            self.telemetry.plugin_breaker_state.labels(plugin=name).set_function(
                lambda b=breaker: float(b.state))
            self.telemetry.plugin_in_flight.labels(plugin=name).set_function(
                lambda n=name: float(self._lanes[n].in_flight))

    def breaker(self, name: str) -> CircuitBreaker:
        if name not in self._breakers:
            self.configure(name)
        return self._breakers[name]

    # ---- calls -------------------------------------------------------------------------

    def submit(self, name: str, fn: Callable[..., Any], args: Sequence[Any]) -> PendingCall:
        """Start a call now, or refuse it (open breaker, no capacity) at no cost."""
        started = time.perf_counter()
        if name not in self._lanes:
            self.configure(name)
        breaker = self._breakers[name]
        admission = breaker.admit()
        if admission is None:
            if breaker.state is BreakerState.OPEN:
                why = (f"skipped: circuit open after {breaker.failures} consecutive "
                       f"failures; next trial in {breaker.retry_in_s():.1f} s")
            else:
                why = "skipped: circuit half-open, its trial call is still running"
            return PendingCall(name, started, None, None,
                               CallOutcome(name, None, why, OPEN, _ms_since(started)))
        lane = self._lanes[name]
        future = lane.try_submit(fn, args)
        if future is None:
            breaker.withdrawn(admission)
            why = (f"skipped: saturated, {lane.capacity} calls still running "
                   f"(max_concurrency {lane.capacity})")
            return PendingCall(name, started, None, None,
                               CallOutcome(name, None, why, SATURATED, _ms_since(started)))
        return PendingCall(name, started, future, admission, None)

    def collect(self, call: PendingCall, budget_ms: float) -> CallOutcome:
        """Wait for ``call`` until ``budget_ms`` after it was submitted."""
        if call.refused is not None:
            return call.refused
        assert call.future is not None and call.admission is not None
        breaker = self._breakers[call.plugin]
        remaining = budget_ms / 1000 - (time.perf_counter() - call.started)
        try:
            value = call.future.result(timeout=max(remaining, 0.0))
        except FutureTimeout:
            call.future.cancel()
            breaker.failed(call.admission)
            return CallOutcome(call.plugin, None, f"timed out after {budget_ms:.0f} ms",
                               TIMEOUT, _ms_since(call.started))
        except Exception as exc:
            breaker.failed(call.admission)
            return CallOutcome(call.plugin, None, f"{type(exc).__name__}: {exc}", ERROR,
                               _ms_since(call.started), exc)
        breaker.succeeded(call.admission)
        return CallOutcome(call.plugin, value, None, None, _ms_since(call.started))

    def call(self, name: str, fn: Callable[..., Any], args: Sequence[Any],
             budget_ms: float) -> CallOutcome:
        """:meth:`submit` and :meth:`collect` in one."""
        return self.collect(self.submit(name, fn, args), budget_ms)

    # ---- state -------------------------------------------------------------------------

    def health(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Breaker state and capacity in use per plugin, for ``/healthz``."""
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            breaker = self.breaker(name)
            lane = self._lanes[name]
            state = breaker.state
            entry: dict[str, Any] = {
                "breaker": state.label, "consecutive_failures": breaker.consecutive_failures,
                "in_flight": lane.in_flight, "max_concurrency": lane.capacity,
            }
            if state is BreakerState.OPEN:
                entry["retry_in_s"] = round(breaker.retry_in_s(), 3)
            out[name] = entry
        return out

    def close(self) -> None:
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            lane.close()


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
