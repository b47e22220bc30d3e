"""Fixtures for the data tests: a small synthetic shop and a private PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recsdk.data.synthetic import SyntheticShop, generate_shop
from tests.postgres import fresh_postgres_database


@pytest.fixture(scope="session")
def small_shop() -> SyntheticShop:
    """20k events, 400 users: enough per user to see the planted preferences."""
    return generate_shop(20_000, seed=7, n_users=400, n_bots=2, events_per_bot=300)


@pytest.fixture(scope="module")
def postgres_db() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module, dropped afterwards."""
    with fresh_postgres_database("recsdk_data") as url:
        yield url
