"""A process that may not migrate refuses a schema that is not this recsdk's, saying why.

``RecSDK(migrate=False)`` is how servers start: an old (or missing) schema stops them
with the command to run, and a schema from a newer recsdk stops every process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from recsdk import RecSDK
from recsdk.errors import RecSDKError, SchemaOutdated
from recsdk.storage import migrate
from recsdk.storage.database import make_engine


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    yield engine
    engine.dispose()


def head() -> str:
    (only,) = migrate.head_revisions()
    return only


def oldest() -> str:
    return ScriptDirectory.from_config(migrate.alembic_config()).get_base()


def open_sdk(url: str, migrate: bool) -> RecSDK:
    return RecSDK({"database_url": url, "device": "cpu"}, environ={}, migrate=migrate)


def test_schema_outdated_is_a_recsdk_error() -> None:
    assert issubclass(SchemaOutdated, RecSDKError)


def test_a_server_refuses_a_database_without_schema(empty_database_url: str) -> None:
    with pytest.raises(SchemaOutdated) as refused:
        open_sdk(empty_database_url, migrate=False)

    message = str(refused.value)
    assert message.startswith("database is at revision none (no recsdk schema yet), "
                              f"this recsdk needs {head()}: run `recsdk db upgrade`")


def test_a_server_refuses_an_old_schema_that_migrating_brings_up_to_date(
        engine: Engine, empty_database_url: str) -> None:
    if oldest() == head():
        pytest.skip("only one migration: no schema is older than the head")
    migrate.upgrade(engine, oldest())

    with pytest.raises(SchemaOutdated, match=(
            f"database is at revision {oldest()}, this recsdk needs {head()}: "
            "run `recsdk db upgrade`")):
        open_sdk(empty_database_url, migrate=False)
    assert migrate.current(engine) == oldest()  # refusing changed nothing

    open_sdk(empty_database_url, migrate=True).close()
    assert migrate.current(engine) == head()
    open_sdk(empty_database_url, migrate=False).close()


def test_a_schema_from_a_newer_recsdk_is_refused_even_when_allowed_to_migrate(
        engine: Engine, empty_database_url: str) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))

    for allowed in (False, True):
        with pytest.raises(SchemaOutdated, match=(
                "database is at revision 9999_future, which this recsdk does not know "
                rf"\(it needs {head()}\): a newer recsdk migrated")):
            open_sdk(empty_database_url, migrate=allowed)
    assert migrate.current(engine) == "9999_future"


def test_the_migrations_are_found_in_the_checkout() -> None:
    found = migrate.migrations_dir()
    assert found == migrate.PACKAGE_DIR.parent / "migrations"
    assert (found / "versions").is_dir()


def test_missing_migrations_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(migrate, "CANDIDATE_DIRS", (tmp_path / "a", tmp_path / "b"))

    with pytest.raises(RecSDKError, match=(
            f"recsdk's database migrations are missing \\(looked in {tmp_path / 'a'}, "
            f"{tmp_path / 'b'}\\); reinstall recsdk")):
        migrate.migrations_dir()
