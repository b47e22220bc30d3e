"""The alembic migrations build exactly the schema the models describe, both ways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from recsdk.storage import migrate, partitions
from recsdk.storage.database import make_engine
from recsdk.storage.models import Base
from recsdk.storage.store import Store


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    yield engine
    engine.dispose()


def heads() -> set[str]:
    return set(ScriptDirectory.from_config(migrate.alembic_config()).get_heads())


def model_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        include = partitions.include_object_for(engine.dialect.name)
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "include_object": include})
        return compare_metadata(context, Base.metadata)


def table_names(engine: Engine) -> set[str]:
    """Tables the models describe (PostgreSQL's partitions and event_keys left out)."""
    names = set(inspect(engine).get_table_names())
    return names - partitions.managed_tables(names)


def test_there_is_exactly_one_head() -> None:
    assert len(heads()) == 1, f"migrations have several heads {heads()}: merge them"


def test_upgrade_head_on_an_empty_database_matches_the_models(engine: Engine) -> None:
    assert table_names(engine) == set()
    assert model_differences(engine)  # the comparison does see a missing schema

    migrate.upgrade(engine)

    assert migrate.current(engine) in heads()
    assert table_names(engine) == set(Base.metadata.tables) | {"alembic_version"}
    assert model_differences(engine) == []


def test_downgrade_to_base_then_upgrade_again(engine: Engine) -> None:
    migrate.upgrade(engine)
    command.downgrade(migrate.alembic_config(engine), "base")

    assert migrate.current(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}  # partitions too

    migrate.upgrade(engine)
    assert migrate.current(engine) in heads()
    assert model_differences(engine) == []


def test_upgrading_twice_changes_nothing_and_keeps_data(engine: Engine) -> None:
    migrate.upgrade(engine)
    store = Store(engine)
    store.upsert_categories([{"id": "shoes", "name": "Shoes", "parent_id": None}])
    revision = migrate.current(engine)

    migrate.upgrade(engine)

    assert migrate.current(engine) == revision
    assert model_differences(engine) == []
    assert store.categories_frame()["id"].tolist() == ["shoes"]


def test_the_comparison_notices_a_column_added_by_hand(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE items ADD COLUMN colour VARCHAR(20)"))

    diffs = model_differences(engine)

    assert [(d[0], d[2], d[3].name) for d in diffs] == [("remove_column", "items", "colour")]
