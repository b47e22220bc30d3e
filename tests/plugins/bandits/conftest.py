"""Real shared stores for the bandit tests: Redis, a SQLite file and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from recsdk import RecSDK
from tests.postgres import fresh_postgres_database

REDIS_URL = os.environ.get("RECSDK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis, on a database number of its own, flushed before and after."""
    url = REDIS_URL.rsplit("/", 1)[0] + "/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database file every process of a test opens, on each supported backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        with fresh_postgres_database("recsdk_bandits") as url:
            yield url


@pytest.fixture
def sdks() -> Iterator[list[RecSDK]]:
    """SDKs a test opens, closed after it."""
    made: list[RecSDK] = []
    yield made
    for sdk in made:
        sdk.close()
