"""Fixtures for the data tests: a small synthetic shop and a private PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from recsdk.data.synthetic import SyntheticShop, generate_shop

POSTGRES_URL = os.environ.get("RECSDK_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def small_shop() -> SyntheticShop:
    """20k events, 400 users: enough per user to see the planted preferences."""
    return generate_shop(20_000, seed=7, n_users=400, n_bots=2, events_per_bot=300)


@pytest.fixture(scope="module")
def postgres_db() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module, dropped afterwards."""
    name = f"recsdk_data_{uuid.uuid4().hex[:10]}"
    admin_url = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
