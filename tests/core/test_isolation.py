"""Isolation of plugin calls: breakers, per-plugin capacity, the fallback's reserve.

The end-to-end scenario of issue 7 (a plugin that sleeps 2 s, 8 concurrent clients) runs
here for a few seconds; ``benchmarks/isolation.py`` runs it for 20 s with figures.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from recsdk import Plugin, hookimpl
from recsdk.config import PluginSettings, load_settings
from recsdk.errors import ConfigurationError
from recsdk.isolation import (
    OPEN,
    SATURATED,
    TIMEOUT,
    Admission,
    BreakerState,
    CircuitBreaker,
    IsolationSettings,
    PluginRunner,
)
from recsdk.log_throttle import ThrottledLog
from recsdk.plugin_manager import PluginManager
from recsdk.telemetry import Telemetry
from tests.core.shop import fill


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- the breaker's state machine ------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, reset_s=10, clock=clock)
    for _ in range(2):
        breaker.failed(breaker.admit())
    breaker.succeeded(breaker.admit())  # a success in between resets the count
    assert breaker.consecutive_failures == 0
    for _ in range(2):
        breaker.failed(breaker.admit())
    assert breaker.state is BreakerState.CLOSED
    breaker.failed(breaker.admit())
    assert breaker.state is BreakerState.OPEN
    assert breaker.admit() is None
    assert breaker.retry_in_s() == 10


def test_breaker_half_opens_after_cool_down_and_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, reset_s=10, clock=clock)
    breaker.failed(breaker.admit())
    clock.now += 9.9
    assert breaker.admit() is None
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    trial = breaker.admit()
    assert trial is not None and trial.trial
    assert breaker.admit() is None  # only one trial at a time
    breaker.failed(trial)  # the trial failed: open again, for a full cool-down
    assert breaker.state is BreakerState.OPEN and breaker.retry_in_s() == 10
    clock.now += 10
    trial = breaker.admit()
    breaker.succeeded(trial)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit() == Admission(clock.now, trial=False)


def test_calls_in_flight_when_a_failure_is_counted_fail_as_one_incident() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=2, reset_s=10, clock=clock)
    wave = [breaker.admit() for _ in range(8)]  # eight calls running at once
    clock.now += 0.25
    for admission in wave:  # a stall times all of them out together
        breaker.failed(admission)
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 1
    clock.now += 0.01
    breaker.failed(breaker.admit())  # a call started after it fails too: that is two
    assert breaker.state is BreakerState.OPEN


def test_late_outcomes_of_calls_admitted_before_opening_are_ignored() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=2, reset_s=10, clock=clock)
    early = [breaker.admit() for _ in range(2)]
    breaker.failed(breaker.admit())
    breaker.failed(breaker.admit())
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    breaker.failed(early[0])  # a late timeout does not restart the cool-down
    breaker.succeeded(early[1])  # nor does a late success close the breaker
    assert breaker.state is BreakerState.OPEN and breaker.retry_in_s() == 5


def test_a_trial_that_could_not_run_frees_the_next_one() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, reset_s=1, clock=clock)
    breaker.failed(breaker.admit())
    clock.now += 1
    trial = breaker.admit()
    breaker.withdrawn(trial)
    assert breaker.admit() == Admission(clock.now, trial=True)


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 1.0), (1, 0.0)])
def test_breaker_rejects_nonsense_settings(failures: int, reset_s: float) -> None:
    with pytest.raises(ValueError, match=r"failures|reset_s"):
        CircuitBreaker(failures, reset_s)


# ---- capacity ------------------------------------------------------------------------


class Gate:
    """A plugin function that blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        self.release.wait(10)
        return "done"


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_abandoned_calls_hold_their_plugins_capacity_and_new_calls_are_refused() -> None:
    runner = PluginRunner(IsolationSettings(default_concurrency=2))
    gate = Gate()
    try:
        # a budget long enough for the worker to start the call even on a loaded
        # machine: a call still queued when its budget ends is cancelled, not abandoned
        for _ in range(2):
            assert runner.call("slow", gate, (), budget_ms=300).kind == TIMEOUT
        assert runner.health(["slow"])["slow"]["in_flight"] == 2
        start = time.perf_counter()
        refused = runner.call("slow", gate, (), budget_ms=1000)
        assert refused.kind == SATURATED and "max_concurrency 2" in refused.error
        assert time.perf_counter() - start < 0.5  # refused at once, not queued
        assert gate.calls == 2
        gate.release.set()
        wait_until(lambda: runner.health(["slow"])["slow"]["in_flight"] == 0)
        assert runner.call("slow", gate, (), budget_ms=1000).value == "done"
    finally:
        gate.release.set()
        runner.close()


def test_a_plugins_own_max_concurrency_wins_over_the_default() -> None:
    runner = PluginRunner(IsolationSettings(default_concurrency=8))
    runner.configure("a", max_concurrency=3)
    runner.configure("b")
    assert runner.health(["a", "b"])["a"]["max_concurrency"] == 3
    assert runner.health(["b"])["b"]["max_concurrency"] == 8
    with pytest.raises(ConfigurationError, match=r"plugins\.c: max_concurrency"):
        runner.configure("c", max_concurrency=0)
    runner.close()


def test_the_fallback_runs_on_reserved_capacity_no_other_plugin_takes() -> None:
    runner = PluginRunner(IsolationSettings(default_concurrency=1, fallback="popularity",
                                            fallback_workers=3))
    gates = {name: Gate() for name in ("slow", "slower", "popularity")}
    try:
        for name in ("slow", "slower"):  # every other plugin hung at its limit
            assert runner.call(name, gates[name], (), budget_ms=10).kind == TIMEOUT
            assert runner.call(name, gates[name], (), budget_ms=10).kind == SATURATED
        # three fallback calls hang as well: the fallback still had three threads
        for _ in range(3):
            assert runner.call("popularity", gates["popularity"], (), 10).kind == TIMEOUT
        assert runner.call("popularity", gates["popularity"], (), 10).kind == SATURATED
        gates["popularity"].release.set()
        wait_until(lambda: runner.health(["popularity"])["popularity"]["in_flight"] == 0)
        fast = runner.call("popularity", lambda: [1.0], (), budget_ms=1000)
        assert fast.ok and fast.value == [1.0]
        assert runner.health(["popularity"])["popularity"]["max_concurrency"] == 3
    finally:
        for gate in gates.values():
            gate.release.set()
        runner.close()


def test_an_open_breaker_skips_calls_without_running_them() -> None:
    clock = FakeClock()
    runner = PluginRunner(IsolationSettings(breaker_failures=2, breaker_reset_s=30),
                          clock=clock)
    calls = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("model file corrupted")

    try:
        for _ in range(2):
            assert runner.call("broken", broken, (), 1000).kind == "error"
        skipped = runner.call("broken", broken, (), 1000)
        assert skipped.kind == OPEN and "next trial in 30.0 s" in skipped.error
        assert len(calls) == 2
        assert runner.health(["broken"])["broken"] == {
            "breaker": "open", "consecutive_failures": 2, "in_flight": 0,
            "max_concurrency": 16, "retry_in_s": 30.0}
        clock.now += 30
        assert runner.call("broken", lambda: "fixed", (), 1000).value == "fixed"
        assert runner.health(["broken"])["broken"]["breaker"] == "closed"
    finally:
        runner.close()


def test_a_closed_runner_refuses_calls() -> None:
    runner = PluginRunner()
    runner.configure("p")
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.call("p", lambda: 1, (), 100)


@pytest.mark.parametrize(("key", "value"), [
    ("default_concurrency", 0), ("breaker_failures", True), ("fallback_workers", 1.5),
    ("breaker_reset_s", 0), ("log_interval_s", -1),
])
def test_isolation_settings_are_validated(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        IsolationSettings(**{key: value})


# ---- through the plugin manager -------------------------------------------------------


class Broken(Plugin):
    @hookimpl
    def recsdk_score(self, candidates):
        raise RuntimeError("model file corrupted")


class Fine(Plugin):
    @hookimpl
    def recsdk_score(self, candidates):
        return np.ones(len(candidates))


def manager(runner: PluginRunner | None, telemetry: Telemetry | None = None,
            broken: type = Broken) -> PluginManager:
    pm = PluginManager(telemetry, {"broken": broken, "fine": Fine}, runner=runner)
    pm.enable([PluginSettings("broken", "broken"), PluginSettings("fine", "fine")])
    return pm


def score(pm: PluginManager) -> dict[str, str | None]:
    results = pm.call_each("recsdk_score", timeout_ms=1000, candidates=["a", "b"])
    return {r.plugin: r.kind for r in results}


def test_a_shared_runner_keeps_one_breaker_per_plugin_name_across_managers() -> None:
    telemetry = Telemetry()
    runner = PluginRunner(IsolationSettings(breaker_failures=2), telemetry)
    first = manager(runner, telemetry)
    assert score(first) == {"broken": "error", "fine": None}
    first.close()  # it did not make the runner, so the runner keeps working
    second = manager(runner, telemetry, broken=Broken)  # a new run, new instances
    assert second.get("broken") is not first.get("broken")
    assert score(second) == {"broken": "error", "fine": None}
    assert score(second) == {"broken": OPEN, "fine": None}
    assert runner.breaker("broken") is runner.breaker("broken")
    assert second.isolation_health()["broken"]["breaker"] == "open"
    assert second.isolation_health()["fine"]["breaker"] == "closed"
    second.close()
    runner.close()


def test_a_manager_closes_only_the_runner_it_made() -> None:
    own = manager(None)
    own.close()
    with pytest.raises(RuntimeError, match="closed"):
        score(own)
    with pytest.raises(TypeError, match="max_workers or runner"):
        PluginManager(max_workers=4, runner=PluginRunner())


def test_breaker_state_and_skips_are_metrics() -> None:
    telemetry = Telemetry()
    runner = PluginRunner(IsolationSettings(breaker_failures=1), telemetry)
    pm = manager(runner, telemetry)
    gauge = telemetry.registry.get_sample_value
    assert gauge("recsdk_plugin_breaker_state", {"plugin": "broken"}) == 0
    score(pm)
    assert gauge("recsdk_plugin_breaker_state", {"plugin": "broken"}) == 2
    score(pm)
    score(pm)
    assert telemetry.value("recsdk_plugin_skipped", plugin="broken", reason=OPEN) == 2
    assert telemetry.value("recsdk_plugin_failures", plugin="broken", hook="recsdk_score",
                           kind="error") == 1
    assert gauge("recsdk_plugin_breaker_state", {"plugin": "fine"}) == 0
    assert gauge("recsdk_plugin_in_flight", {"plugin": "fine"}) == 0
    text = telemetry.render().decode()
    assert 'recsdk_plugin_breaker_state{plugin="broken"} 2.0' in text
    pm.close()
    runner.close()


def test_repeated_failures_are_logged_once_per_interval(caplog) -> None:
    runner = PluginRunner(IsolationSettings(breaker_failures=1000, log_interval_s=3600))
    pm = manager(runner)
    with caplog.at_level(logging.WARNING, logger="recsdk.plugin_manager"):
        for _ in range(50):
            score(pm)
    lines = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(lines) == 1
    assert "model file corrupted" in lines[0].getMessage()
    assert lines[0].exc_info is not None  # the first one carries the traceback
    pm.close()
    runner.close()


def test_throttled_log_counts_what_it_held_back(caplog) -> None:
    clock = FakeClock()
    throttled = ThrottledLog(logging.getLogger("test.throttle"), interval_s=10, clock=clock)
    error = RuntimeError("boom")
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        assert throttled.warning(("p", "h", "error"), "p failed", error)
        for _ in range(7):
            clock.now += 1
            assert not throttled.warning(("p", "h", "error"), "p failed", error)
        assert throttled.warning(("p", "h", "timeout"), "p timed out")  # another key
        clock.now += 3
        assert throttled.warning(("p", "h", "error"), "p failed", error)
    messages = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert messages == [
        ("p failed", True),
        ("p timed out", False),
        ("p failed (7 repeats not logged since the last line)", False),
    ]
    with pytest.raises(ValueError, match="interval_s"):
        ThrottledLog(logging.getLogger("x"), interval_s=-1)


# ---- settings ------------------------------------------------------------------------


def test_max_concurrency_is_a_host_key_and_isolation_keys_have_defaults() -> None:
    settings = load_settings({"plugins": {"popularity": {}, "trending": {
        "max_concurrency": 4, "half_life_hours": 24}}}, environ={})
    trending = settings.plugin("trending")
    assert trending.max_concurrency == 4 and dict(trending.params) == {"half_life_hours": 24}
    assert settings.plugin("popularity").max_concurrency is None
    isolation = IsolationSettings.from_settings(settings)
    assert isolation == IsolationSettings(default_concurrency=16, breaker_failures=5,
                                          breaker_reset_s=30.0, fallback="popularity",
                                          fallback_workers=16)


def test_isolation_keys_do_not_change_the_configuration_hash() -> None:
    plain = load_settings({}, environ={})
    tuned = load_settings({"pipeline": {"breaker_failures": 9, "breaker_reset_s": 3,
                                        "fallback_workers": 2}}, environ={})
    assert plain.config_hash == tuned.config_hash


@pytest.mark.parametrize(("config", "message"), [
    ({"plugins": {"popularity": {}, "t": {"plugin": "trending", "max_concurrency": 0}}},
     r"plugins\.t: max_concurrency must be an integer from 1 to 1024, got 0"),
    ({"plugins": {"popularity": {}, "t": {"plugin": "trending", "max_concurrency": "4"}}},
     r"plugins\.t: max_concurrency .* got '4'"),
    ({"plugins": {"popularity": {}, "t": {"plugin": "trending", "max_concurrency": True}}},
     r"plugins\.t: max_concurrency .* got True"),
    ({"plugins": {"popularity": {"max_concurrency": 4}}},
     r"plugins\.popularity\.max_concurrency: 'popularity' is the fallback.*fallback_workers"),
    ({"pipeline": {"breaker_failures": 0}}, r"pipeline\.breaker_failures"),
    ({"pipeline": {"breaker_reset_s": 0}}, r"pipeline\.breaker_reset_s"),
    ({"pipeline": {"fallback_workers": 0}}, r"pipeline\.fallback_workers"),
])
def test_bad_isolation_settings_are_named(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(config, environ={})


# ---- issue 7's scenario: a plugin that sleeps 2 s, 8 concurrent clients ---------------


class SleepsTwoSeconds(Plugin):
    @hookimpl
    def recsdk_score(self, candidates):
        time.sleep(2)
        return np.ones(len(candidates))


def run_clients(call: Callable[[int], Any], clients: int, seconds: float
                ) -> list[tuple[float, Any]]:
    """``clients`` threads calling ``call`` back to back; (latency s, answer) each."""
    out: list[tuple[float, Any]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        barrier.wait()
        mine = []
        while time.perf_counter() < stop:
            start = time.perf_counter()
            answer = call(n)
            mine.append((time.perf_counter() - start, answer))
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return out


def test_a_plugin_that_sleeps_two_seconds_starves_nothing(make_sdk) -> None:
    budget_ms = 250.0
    # 5 s rather than the 20 s: the first failures (each answer waits out the
    # budget) weigh four times more in the percentile, so the breaker opens after 3
    # failures instead of 5, and half-opens every second to test trial calls too.
    # Popularity serves only as the fallback (weight 0): every list comes from the
    # fallback path. Its own budget is longer than the slow plugin's, as a last resort's
    # should be: on a machine with more runnable threads than cores, a thread can wait
    # over 250 ms for the interpreter lock, and a fallback timed out so is an empty list.
    config = {
        "pipeline": {"timeout_ms": budget_ms, "breaker_failures": 3, "breaker_reset_s": 1.0},
        "plugins": {"popularity": {"weight": 0, "timeout_ms": 1000}, "slow": {}},
        "cache": {"result_ttl_s": 0},  # every answer runs the pipeline
    }
    sdk = make_sdk(config, plugins={"slow": SleepsTwoSeconds})
    fill(sdk)
    sdk.fit()
    rng = random.Random(7)
    users = [f"u{i}" for i in range(30)] + [f"stranger{i}" for i in range(30)]
    answers = run_clients(lambda n: sdk.recommend(rng.choice(users), k=5), clients=8,
                          seconds=5.0)
    latencies = np.array([t for t, _ in answers])
    assert len(answers) > 100
    assert all(len(r.items) == 5 for _, r in answers)
    assert all(r.degraded and r.plugins == ["popularity"] for _, r in answers)
    p99_ms = float(np.percentile(latencies, 99)) * 1000
    assert p99_ms <= budget_ms + 50, f"p99 {p99_ms:.0f} ms"
    assert latencies.max() < 2.0  # no answer waited for the 2 s plugin
    # its capacity filled up, then its breaker opened: most calls were never made
    skipped = {reason: sdk.telemetry.value("recsdk_plugin_skipped", plugin="slow",
                                           reason=reason) for reason in (OPEN, SATURATED)}
    assert skipped[OPEN] > 0 and skipped[SATURATED] > 0
    assert sum(skipped.values()) > len(answers) / 2
