"""Shared bandit state: atomic increments, seeding, pending pulls with a TTL."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from recsdk_plugins.bandits.policy import LinearStats
from recsdk_plugins.bandits.state import (
    DatabaseBackend,
    MemoryBackend,
    RedisBackend,
    SharedStats,
    StateBackend,
)

from recsdk.storage.store import Store
from tests.postgres import fresh_postgres_database


@pytest.fixture(params=["memory", "redis", "sqlite",
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[StateBackend]:
    if request.param == "memory":
        yield MemoryBackend()
    elif request.param == "redis":
        yield RedisBackend(request.getfixturevalue("redis_url"))
    elif request.param == "sqlite":
        yield from database_backend(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        with fresh_postgres_database("recsdk_bandits") as url:
            yield from database_backend(url)


def database_backend(url: str) -> Iterator[StateBackend]:
    store = Store(url)
    store.create_all()
    yield DatabaseBackend(store.engine)
    store.close()


def pull(dim: int, x: list[float], reward: float | None = None) -> LinearStats:
    update = LinearStats.zeros(dim)
    update.add_pulls(np.asarray([x]))
    if reward is not None:
        update.add_rewards(np.asarray([x]), np.asarray([reward]))
    return update


def test_two_views_see_each_others_updates_after_a_sync(backend: StateBackend) -> None:
    a = SharedStats(backend, "ns", 2, sync_s=0.0)
    b = SharedStats(backend, "ns", 2, sync_s=0.0)
    a.add(pull(2, [1.0, 0.0], reward=1.0))
    b.add(pull(2, [0.0, 2.0]))
    a.sync()
    np.testing.assert_allclose(a.stats().xx, [[1, 0], [0, 4]])
    assert a.stats().reward == 1.0 and a.stats().pulls == 2.0
    np.testing.assert_allclose(b.stats().to_vector(), a.stats().to_vector())
    other = SharedStats(backend, "other", 2, sync_s=0.0)
    other.sync()
    assert other.stats().pulls == 0.0  # namespaces never mix


def test_concurrent_increments_are_never_lost(backend: StateBackend) -> None:
    views = [SharedStats(backend, "race", 1, sync_s=3600) for _ in range(4)]

    def work(view: SharedStats) -> None:
        for _ in range(25):
            view.add(pull(1, [1.0], reward=1.0))
            view.sync()

    threads = [threading.Thread(target=work, args=(v,)) for v in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    views[0].sync()
    assert views[0].stats().pulls == 100.0 and views[0].stats().reward == 100.0
    for v in views:
        v.close()


def test_the_background_thread_syncs_within_its_interval(backend: StateBackend) -> None:
    writer = SharedStats(backend, "bg", 1, sync_s=0.05)
    reader = SharedStats(backend, "bg", 1, sync_s=0.05)
    writer.add(pull(1, [1.0]))
    deadline = time.monotonic() + 2.0
    while reader.stats().pulls == 0.0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reader.stats().pulls == 1.0
    writer.close()
    reader.close()


def test_seeding_happens_once_per_namespace(backend: StateBackend) -> None:
    saved = pull(2, [1.0, 1.0], reward=2.0)
    first = SharedStats(backend, "seed", 2, sync_s=0.0)
    second = SharedStats(backend, "seed", 2, sync_s=0.0)
    assert first.seed(saved) is True
    assert second.seed(saved) is False  # a second process does not add it again
    np.testing.assert_allclose(second.stats().to_vector(), saved.to_vector())


def test_pending_pulls_answer_known_and_unknown_requests(backend: StateBackend) -> None:
    x = np.array([0.5, 1.5])
    backend.put_pulls("ns", "r1", {"a": x}, ttl_s=60)
    known, got = backend.get_pull("ns", "r1", "a")
    assert known and got is not None
    np.testing.assert_array_equal(got, x)
    assert backend.get_pull("ns", "r1", "b") == (True, None)  # not shown in r1
    assert backend.get_pull("ns", "nope", "a") == (False, None)
    assert backend.get_pull("other", "r1", "a") == (False, None)


def test_pending_pulls_expire(backend: StateBackend) -> None:
    backend.put_pulls("ns", "r1", {"a": np.ones(2)}, ttl_s=0.2)
    assert backend.get_pull("ns", "r1", "a")[0]
    time.sleep(1.2)
    assert backend.get_pull("ns", "r1", "a") == (False, None)


class Down(MemoryBackend):
    def add(self, namespace: str, delta: np.ndarray) -> np.ndarray:
        raise ConnectionError("store down")


def test_a_failed_sync_keeps_the_update_for_the_next_one() -> None:
    view = SharedStats(Down(), "ns", 1, sync_s=3600)
    view.add(pull(1, [1.0]))
    assert view.sync() is False and view.sync_failures == 1
    assert view.stats().pulls == 1.0  # still counted locally
    view.backend = MemoryBackend()
    assert view.sync() is True and view.stats().pulls == 1.0


def test_the_sync_thread_ends_with_its_state() -> None:
    view = SharedStats(MemoryBackend(), "gone", 1, sync_s=0.01)
    name = f"bandit-sync-{view.namespace}"
    assert any(t.name == name for t in threading.enumerate())
    del view
    gc.collect()
    deadline = time.monotonic() + 2.0
    while any(t.name == name for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == name for t in threading.enumerate())
