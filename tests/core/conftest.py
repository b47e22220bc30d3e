"""Fixtures for the core SDK tests: a small shop, and isolated PostgreSQL/Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from recsdk import RecSDK
from tests.postgres import fresh_postgres_database

REDIS_URL = os.environ.get("RECSDK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
def make_sdk(sqlite_url) -> Iterator[Any]:
    """Build SDKs on one SQLite file with the host's RECSDK_* variables kept out."""
    made: list[RecSDK] = []

    def build(config: dict[str, Any] | None = None, **kwargs: Any) -> RecSDK:
        config = {"database_url": sqlite_url, **(config or {})}
        sdk = RecSDK(config, environ={}, **kwargs)
        made.append(sdk)
        return sdk

    yield build
    for sdk in made:
        sdk.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres_database("recsdk_core") as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis, on a database number of its own, flushed before and after."""
    url = REDIS_URL.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
