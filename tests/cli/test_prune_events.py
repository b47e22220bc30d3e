"""``recsdk prune-events``: whole months of events past retention go (PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from recsdk.storage import partitions
from recsdk.storage.store import Store
from tests.cli.conftest import Invoke, assert_user_error
from tests.stores import migrated_store


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    with migrated_store(postgres_url) as store:
        yield store


def events(*stamps: datetime) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(len(stamps))], "item_id": "i1",
                         "type": "view", "timestamp": pd.to_datetime(list(stamps), utc=True)})


@pytest.mark.postgres
def test_a_dry_run_lists_then_the_run_drops(invoke: Invoke, store: Store,
                                           postgres_url: str) -> None:
    url = postgres_url
    now = datetime.now(UTC)
    old = datetime(now.year - 1, now.month, 10, tzinfo=UTC)
    store.copy_events(events(old, old, now))

    dry = invoke("prune-events", "--older-than", "90", "--dry-run", "--json", database_url=url)
    assert dry.exit_code == 0, dry.output
    answer = json.loads(dry.stdout)
    name = partitions.partition_name((old.year, old.month))
    assert (answer["dry_run"], answer["events"]) == (True, 2)
    assert [p["name"] for p in answer["partitions"]] == [name]
    assert abs(now - timedelta(days=90) - datetime.fromisoformat(answer["before"])
               ) < timedelta(minutes=1)
    assert store.count_events() == 3

    done = invoke("prune-events", "--older-than", "90", database_url=url)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("dropped 1 monthly partitions (2 events) ending by ")
    assert name in done.stdout
    assert store.count_events() == 1


def test_sqlite_is_refused_with_the_reason(invoke: Invoke, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    assert invoke("db", "upgrade", database_url=url).exit_code == 0
    result = invoke("prune-events", "--older-than", "90", database_url=url)
    assert_user_error(result, "only PostgreSQL has", "sqlite")


def test_the_period_is_required(invoke: Invoke, empty_database_url: str) -> None:
    result = invoke("prune-events", database_url=empty_database_url)
    assert result.exit_code == 2
    assert "--older-than" in result.output
