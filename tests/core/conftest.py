"""Fixtures for the core SDK tests: a small shop, and isolated PostgreSQL/Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from recsdk import RecSDK

POSTGRES_URL = os.environ.get("RECSDK_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")
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
    name = f"recsdk_core_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"),
                            autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis, on a database number of its own, flushed before and after."""
    url = REDIS_URL.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
