"""The API on a real PostgreSQL server, in a database of this module's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from recsdk import RecSDK
from recsdk.api import create_app
from tests.api.concurrency import check_nothing_lost_or_doubled, check_same_event_id_stored_once

pytestmark = pytest.mark.postgres

POSTGRES_URL = os.environ.get("RECSDK_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def admin() -> Iterator[psycopg.Connection]:
    """An autocommit connection to the server's ``test`` database, to create databases."""
    conn = psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"),
                           autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def new_database(admin: psycopg.Connection) -> Iterator[Callable[[], str]]:
    """Create empty databases named ``recsdk_api_<random>``; all dropped afterwards."""
    names: list[str] = []

    def create() -> str:
        name = f"recsdk_api_{uuid.uuid4().hex[:12]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return f"{POSTGRES_URL.rpartition('/')[0]}/{name}"

    yield create
    for name in names:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def module_database(admin: psycopg.Connection) -> Iterator[str]:
    """One database for the module's tests that can share it."""
    name = f"recsdk_api_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_sdk(make_sdk: Callable[..., RecSDK], module_database: str) -> RecSDK:
    sdk = make_sdk(database_url=module_database)
    with sdk.store.engine.begin() as conn:  # each test starts from empty event tables
        conn.exec_driver_sql("TRUNCATE events, feedback, impressions, "
                             "recommendation_requests")
    return sdk


def test_concurrent_posts_lose_and_double_nothing(pg_sdk: RecSDK) -> None:
    check_nothing_lost_or_doubled(pg_sdk)


def test_concurrent_posts_of_one_event_id_store_it_once(pg_sdk: RecSDK) -> None:
    check_same_event_id_stored_once(pg_sdk)


def test_a_rejected_batch_leaves_postgres_untouched(pg_sdk: RecSDK) -> None:
    client = create_app(pg_sdk).test_client()
    good = {"user_id": "u", "item_id": "i", "type": "view"}
    assert client.post("/api/v1/events", json=good).status_code == 201
    answer = client.post("/api/v1/events", json=[good, {**good, "type": "rating"}])
    assert answer.status_code == 422
    assert "row 1: value:" in answer.get_json()["message"]
    assert pg_sdk.store.count_events() == 1


def test_health_is_503_when_the_database_is_gone(
        make_sdk: Callable[..., RecSDK], new_database: Callable[[], str],
        admin: psycopg.Connection) -> None:
    url = new_database()
    sdk = make_sdk(database_url=url)
    client = create_app(sdk).test_client()
    healthy = client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.get_json()["database"] == {"status": "ok", "dialect": "postgresql"}
    admin.execute(f'DROP DATABASE "{url.rpartition("/")[2]}" WITH (FORCE)')
    answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["status"] == "unavailable"
    assert body["database"]["status"] == "unreachable"
    assert body["database"]["error"] == "OperationalError"
    assert body["cache"] == {"backend": "memory", "available": True}
