"""Fixtures for the CLI tests: a generated shop on SQLite and a CliRunner without host env."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from recsdk import RecSDK
from recsdk.cli import cli
from tests.postgres import fresh_postgres_database

#: Variables recsdk reads from the environment; unset for every test invocation.
HOST_VARIABLES = ("RECSDK_CONFIG", "RECSDK_DATABASE_URL", "RECSDK_REDIS_URL",
                  "RECSDK_PLUGINS", "RECSDK_SEED", "RECSDK_API_KEY")


@dataclass(frozen=True)
class Shop:
    """What was stored, so tests can work out the expected answers themselves."""

    url: str
    categories: list[dict[str, Any]]
    items: list[dict[str, Any]]
    events: list[dict[str, Any]]

    def category_of(self, item_id: str) -> str:
        return next(i["category_id"] for i in self.items if i["id"] == item_id)

    def available(self) -> set[str]:
        return {i["id"] for i in self.items if i.get("active", True)}

    def distinct_users(self) -> dict[str, int]:
        """Popularity as the default ``popularity`` plugin counts it: users per item."""
        pairs = {(e["user_id"], e["item_id"]) for e in self.events}
        counts = dict.fromkeys((i["id"] for i in self.items), 0)
        for _, item in pairs:
            counts[item] += 1
        return counts

    def purchased_by(self, user_id: str) -> set[str]:
        return {e["item_id"] for e in self.events
                if e["user_id"] == user_id and e["type"] == "purchase"}


def generate_shop(url: str, n_users: int = 25, n_items: int = 16, seed: int = 7) -> Shop:
    """Two departments, skewed item popularity, a few purchases, one retired item."""
    rng = np.random.default_rng(seed)
    categories = [{"id": "all", "name": "All"},
                  {"id": "shoes", "name": "Shoes", "parent_id": "all"},
                  {"id": "hats", "name": "Hats", "parent_id": "all"}]
    items: list[dict[str, Any]] = [
        {"id": f"i{i:02d}", "title": f"Item number {i}" if i != 5 else "",
         "category_id": "shoes" if i % 2 else "hats", "price": 10.0 + i, "stock": 3}
        for i in range(n_items)
    ]
    items[2]["active"] = False  # a popular item the shop no longer sells
    popularity = 1.0 / np.arange(1, n_items + 1)
    popularity /= popularity.sum()
    start = datetime(2024, 3, 1, tzinfo=UTC)
    events = []
    for u in range(n_users):
        seen = rng.choice(n_items, size=int(rng.integers(2, 6)), replace=False, p=popularity)
        for j, item in enumerate(seen):
            kind = "purchase" if j == 0 and rng.random() < 0.5 else "view"
            events.append({"user_id": f"u{u:02d}", "item_id": f"i{int(item):02d}", "type": kind,
                           "timestamp": (start + timedelta(hours=u, minutes=j)).isoformat()})
    with RecSDK({"database_url": url}, environ={}) as sdk:
        sdk.upsert_categories(categories)
        sdk.upsert_items(items)
        sdk.track_many(events)
    return Shop(url, categories, items, events)


Invoke = Callable[..., Result]


@pytest.fixture
def invoke() -> Invoke:
    """Run ``recsdk ARGS...`` in-process against ``database_url``, host env kept out."""

    def run(*args: str, database_url: str, env: dict[str, str] | None = None) -> Result:
        environment: dict[str, str | None] = dict.fromkeys(HOST_VARIABLES)
        environment["RECSDK_DATABASE_URL"] = database_url
        environment.update(env or {})
        return CliRunner().invoke(cli, list(args), env=environment)

    return run


def assert_user_error(result: Result, *fragments: str, exit_code: int = 1) -> None:
    """A user mistake: non-zero exit, one 'Error:' line on stderr naming it, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], (fragment, error_lines[0])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
def shop(sqlite_url: str) -> Shop:
    return generate_shop(sqlite_url)


@pytest.fixture(scope="module")
def trained_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """A shop trained once per module with the default plugins (popularity, filters)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('trained') / 'shop.db'}"
    shop = generate_shop(url)
    with RecSDK({"database_url": url}, environ={}) as sdk:
        sdk.fit()
    return shop


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty database of this test's own on the shared PostgreSQL server."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("postgres_url")
