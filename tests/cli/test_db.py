"""``recsdk db upgrade | current | check`` on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from recsdk.storage import migrate
from recsdk.storage.database import make_engine
from recsdk.storage.models import Base
from tests.cli.conftest import Invoke, assert_user_error


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrate.alembic_config())


def head() -> str:
    (only,) = script().get_heads()
    return only


def execute(url: str, sql: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_upgrade_creates_the_schema_then_current_and_check_agree(
    invoke: Invoke, empty_database_url: str,
) -> None:
    url = empty_database_url

    before = invoke("db", "current", database_url=url)
    assert before.exit_code == 0, before.output
    assert before.stdout.startswith("none")

    upgraded = invoke("db", "upgrade", database_url=url)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from an empty database to revision {head()}" in upgraded.stdout

    current = invoke("db", "current", database_url=url)
    assert current.stdout.strip() == f"{head()} (head)"

    checked = invoke("db", "check", database_url=url)
    assert checked.exit_code == 0, checked.output
    assert "matches the models" in checked.stdout


def test_upgrade_twice_leaves_the_database_alone(invoke: Invoke, empty_database_url: str) -> None:
    assert invoke("db", "upgrade", database_url=empty_database_url).exit_code == 0

    again = invoke("db", "upgrade", database_url=empty_database_url)

    assert again.exit_code == 0, again.output
    assert f"already at revision {head()}" in again.stdout


def test_check_on_an_empty_database_lists_every_missing_table(
    invoke: Invoke, empty_database_url: str,
) -> None:
    result = invoke("db", "check", database_url=empty_database_url)

    assert_user_error(result, "differs from the models", "recsdk db upgrade")
    assert "revision: the database is at none" in result.stdout
    for table in Base.metadata.tables:
        assert f"table {table}: in the models, missing from the database" in result.stdout


def test_check_names_a_column_added_and_an_index_dropped_by_hand(
    invoke: Invoke, empty_database_url: str,
) -> None:
    url = empty_database_url
    index = min((i for t in Base.metadata.sorted_tables for i in t.indexes),
                key=lambda i: i.name)
    columns = ", ".join(c.name for c in index.columns)
    invoke("db", "upgrade", database_url=url)
    execute(url, "ALTER TABLE items ADD COLUMN colour VARCHAR(20)")
    execute(url, f"DROP INDEX {index.name}")

    result = invoke("db", "check", database_url=url)

    assert_user_error(result, "in 2 way(s)")
    assert "column items.colour (VARCHAR(20)): in the database, not in the models" in (
        result.stdout)
    assert (f"index {index.name} on {index.table.name}({columns}): in the models, missing"
            in result.stdout)


def test_check_ignores_the_shops_own_tables_unless_asked(
    invoke: Invoke, empty_database_url: str,
) -> None:
    url = empty_database_url
    invoke("db", "upgrade", database_url=url)
    execute(url, "CREATE TABLE shop_orders (id INTEGER PRIMARY KEY, total FLOAT)")

    assert invoke("db", "check", database_url=url).exit_code == 0
    strict = invoke("db", "check", "--all-tables", database_url=url)

    assert_user_error(strict, "in 1 way(s)")
    assert "- table shop_orders: in the database, not in the models" in strict.stdout


@pytest.mark.postgres
def test_check_names_a_changed_column_type(invoke: Invoke, postgres_url: str) -> None:
    url = postgres_url  # SQLite cannot change a column's type in place
    invoke("db", "upgrade", database_url=url)
    execute(url, "ALTER TABLE categories ALTER COLUMN name TYPE VARCHAR(100)")

    result = invoke("db", "check", database_url=url)

    assert_user_error(result, "in 1 way(s)")
    assert "column categories.name: type is VARCHAR(100) in the database, " in result.stdout


def test_upgrade_to_an_older_revision_stops_there(invoke: Invoke, sqlite_url: str) -> None:
    base = script().get_base()

    result = invoke("db", "upgrade", "--revision", base, database_url=sqlite_url)

    assert result.exit_code == 0, result.output
    current = invoke("db", "current", database_url=sqlite_url).stdout.strip()
    expected = f"{base} (head)" if base == head() else f"{base} (the latest is {head()}"
    assert current.startswith(expected)


def test_upgrade_to_an_unknown_revision_fails_clearly(invoke: Invoke, sqlite_url: str) -> None:
    result = invoke("db", "upgrade", "--revision", "nosuchrev", database_url=sqlite_url)

    assert_user_error(result, "migration failed", "nosuchrev")


@pytest.mark.parametrize(("url", "fragments"), [
    ("mysql://root@localhost/shop", ["only sqlite:/// and postgresql://"]),
    ("not a url", ["is not a database URL"]),
])
def test_unsupported_database_urls_are_refused(
    invoke: Invoke, url: str, fragments: list[str],
) -> None:
    for command in (["db", "current"], ["db", "upgrade"], ["db", "check"]):
        assert_user_error(invoke(*command, database_url=url), *fragments)


@pytest.mark.postgres
def test_an_unreachable_server_is_reported_without_a_traceback(invoke: Invoke) -> None:
    url = "postgresql://postgres:secret@127.0.0.1:1/nowhere"

    result = invoke("db", "current", database_url=url)

    assert_user_error(result, "cannot use the database", "127.0.0.1:1/nowhere")
    assert "secret" not in result.output


def test_a_missing_config_file_is_named(invoke: Invoke, sqlite_url: str, tmp_path) -> None:
    missing = tmp_path / "nope.toml"

    result = invoke("--config", str(missing), "db", "current", database_url=sqlite_url)

    assert_user_error(result, str(missing), "does not exist")


@pytest.mark.timeout(120)  # were the refusal missing, the server would run until killed
def test_serve_refuses_a_schema_that_needs_upgrading(
    invoke: Invoke, empty_database_url: str,
) -> None:
    base = script().get_base()
    assert base != head(), "needs at least two migrations"
    assert invoke("db", "upgrade", "--revision", base,
                  database_url=empty_database_url).exit_code == 0

    result = invoke("serve", "--port", "0", database_url=empty_database_url)

    assert_user_error(result, f"database is at revision {base}, "
                              f"this recsdk needs {head()}: run `recsdk db upgrade`")
    current = invoke("db", "current", database_url=empty_database_url).stdout
    assert current.startswith(base)  # the server left the schema alone


@pytest.mark.timeout(120)
def test_serve_refuses_an_empty_database(invoke: Invoke, sqlite_url: str) -> None:
    result = invoke("serve", "--port", "0", database_url=sqlite_url)

    assert_user_error(result, "database is at revision none (no recsdk schema yet)",
                      "run `recsdk db upgrade`")
