"""``recsdk prune``: served lists past their retention go; a dry run only counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recsdk.storage.store import Store
from tests.cli.conftest import Invoke, assert_user_error


def served(request_id: str, age_days: float) -> dict[str, Any]:
    return {"request_id": request_id, "user_id": "u1", "session_id": None,
            "placement": "default", "variant": "default", "config_hash": "h",
            "plugins": ["popularity"], "degraded": False,
            "created_at": datetime.now(UTC) - timedelta(days=age_days),
            "items": [("i1", 1, 1.0), ("i2", 2, 0.5)]}


@pytest.fixture
def logged(invoke: Invoke, empty_database_url: str) -> str:
    """A database with lists 1, 10, 40 and 90 days old."""
    assert invoke("db", "upgrade", database_url=empty_database_url).exit_code == 0
    store = Store(empty_database_url)
    store.record_requests([served(f"r{age}", age) for age in (1, 10, 40, 90)])
    store.close()
    return empty_database_url


def count(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        return store.count_served()
    finally:
        store.close()


def test_the_retention_period_applies_by_default(invoke: Invoke, logged: str) -> None:
    result = invoke("prune", database_url=logged)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deleted 2 served lists and 4 impressions created before")
    assert count(logged) == {"requests": 2, "impressions": 4, "feedback": 0}


def test_a_dry_run_counts_and_keeps(invoke: Invoke, logged: str) -> None:
    result = invoke("prune", "--older-than", "5", "--dry-run", "--json", database_url=logged)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["requests"], answer["impressions"], answer["dry_run"]) == (3, 6, True)
    cutoff = datetime.fromisoformat(answer["before"])
    assert abs((datetime.now(UTC) - cutoff) - timedelta(days=5)) < timedelta(minutes=1)
    assert count(logged)["requests"] == 4


def test_older_than_overrides_the_setting(invoke: Invoke, logged: str,
                                          tmp_path: Path) -> None:
    config = tmp_path / "recsdk.toml"
    config.write_text("[retention]\nrequests_days = 60\n")
    kept = invoke("--config", str(config), "prune", database_url=logged)
    assert "deleted 1 served lists" in kept.stdout
    result = invoke("--config", str(config), "prune", "--older-than", "5",
                    database_url=logged)
    assert "deleted 2 served lists and 4 impressions" in result.stdout
    assert count(logged)["requests"] == 1


def test_a_database_without_the_schema_is_a_user_error(invoke: Invoke,
                                                       empty_database_url: str) -> None:
    assert_user_error(invoke("prune", database_url=empty_database_url),
                      "no recsdk schema", "recsdk db upgrade")


def test_a_negative_period_is_refused(invoke: Invoke, logged: str) -> None:
    result = invoke("prune", "--older-than", "-1", database_url=logged)
    assert result.exit_code == 2
    assert "-1" in result.stderr and "--older-than" in result.stderr
