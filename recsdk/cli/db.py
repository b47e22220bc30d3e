"""``recsdk db``: create, migrate and check the database schema.

The schema is owned by the alembic migrations shipped in the package (the repository's
``migrations/``); these commands run them on the configured ``database_url`` (SQLite or
PostgreSQL) so that deploying a new recsdk version is ``recsdk db upgrade`` and
verifying it is ``recsdk db check``. ``recsdk serve`` never migrates (it refuses an old
schema), so this command is the one place a deploy changes the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from alembic.util import CommandError
from sqlalchemy import Engine

from recsdk.cli.schema_diff import describe_differences, schema_differences
from recsdk.cli.session import one_line, settings_of, user_errors
from recsdk.storage import migrate
from recsdk.storage.database import make_engine

UPGRADE_HINT = "run `recsdk db upgrade`"


def register(group: click.Group) -> None:
    group.add_command(db)


@contextmanager
def _database(ctx: click.Context) -> Iterator[Engine]:
    """An engine on the configured database; failures become one-line errors."""
    url = settings_of(ctx).database_url
    with user_errors(url):
        engine = make_engine(url)
        try:
            yield engine
        except CommandError as exc:  # alembic: unknown revision, bad target...
            raise click.ClickException(f"migration failed: {one_line(str(exc))}") from exc
        finally:
            engine.dispose()


def _heads() -> tuple[str, ...]:
    return migrate.head_revisions()


def _describe_revision(revision: str | None, heads: tuple[str, ...]) -> str:
    if revision is None:
        return f"none (no recsdk schema yet: {UPGRADE_HINT})"
    if revision in heads:
        return f"{revision} (head)"
    return f"{revision} (the latest is {', '.join(heads)}: {UPGRADE_HINT})"


@click.group()
def db() -> None:
    """Create, migrate and check the database schema."""


@db.command()
@click.option("--revision", default="head", show_default=True,
              help="Migrate up to this revision instead of the latest.")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Create the database schema or migrate it to the latest (or given) revision.

    Safe to run on every deploy: a database already at the target is left alone.
    """
    with _database(ctx) as engine:
        before = migrate.current(engine)
        migrate.upgrade(engine, revision)
        after = migrate.current(engine)
        where = engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: migrated from {before or 'an empty database'} to revision {after}")


@db.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Print the database's schema revision and whether it is the latest."""
    with _database(ctx) as engine:
        revision = migrate.current(engine)
    click.echo(_describe_revision(revision, _heads()))


@db.command()
@click.option("--all-tables", is_flag=True,
              help="Also report tables recsdk does not define (by default they are "
                   "taken to be the shop's own).")
@click.pass_context
def check(ctx: click.Context, all_tables: bool) -> None:
    """Exit non-zero, listing the differences, when the database and the models differ.

    Compares tables, columns (with types), indexes and constraints, and the revision.
    """
    with _database(ctx) as engine:
        revision = migrate.current(engine)
        differences = describe_differences(schema_differences(engine, all_tables))
        where = engine.url.render_as_string(hide_password=True)
    heads = _heads()
    if revision not in heads:
        differences.insert(0, f"revision: the database is at {revision or 'none'}, "
                              f"the migrations at {', '.join(heads)}")
    if differences:
        for line in differences:
            click.echo(f"- {line}")
        raise click.ClickException(
            f"{where} differs from the models in {len(differences)} way(s); "
            f"{UPGRADE_HINT}, or add a migration for a model change"
        )
    click.echo(f"{where} matches the models (revision {revision}, head)")
