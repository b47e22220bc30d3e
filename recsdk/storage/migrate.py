"""Run recsdk's alembic migrations against an engine, one process at a time.

The scripts live in the repository's top-level ``migrations/`` folder and are installed
inside the package as ``recsdk.migrations`` (setup.py maps the folder), so they are found
both in a checkout and in an installed wheel.

Two processes that upgrade the same database at once would both create the same tables,
and one would fail half-way. So every upgrade holds a migration lock: PostgreSQL's
advisory lock, or a file lock next to the SQLite file. A process that may not migrate
(a server) only checks the revision and refuses a schema that is not the one it needs,
naming the command to run.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, text

from recsdk.errors import ConfigurationError, SchemaOutdated

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]

#: Where the scripts are: inside an installed package first, then a checkout's folder.
CANDIDATE_DIRS = (PACKAGE_DIR / "migrations", PACKAGE_DIR.parent / "migrations")

#: PostgreSQL advisory locks are keyed by a bigint; this one is recsdk's, per database.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"recsdk.migrations").digest()[:8], "big", signed=True)

UPGRADE_COMMAND = "recsdk db upgrade"


def migrations_dir() -> Path:
    """The folder of alembic scripts this recsdk ships (``env.py`` and ``versions/``)."""
    for candidate in CANDIDATE_DIRS:
        if (candidate / "env.py").is_file():
            return candidate
    looked = ", ".join(str(c) for c in CANDIDATE_DIRS)
    raise ConfigurationError(
        f"recsdk's database migrations are missing (looked in {looked}); reinstall recsdk")


def alembic_config(engine: Engine | None = None) -> Config:
    """An alembic configuration pointing at recsdk's migrations (and ``engine``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url",
                            engine.url.render_as_string(hide_password=False).replace("%", "%%"))
        cfg.attributes["engine"] = engine
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    # parsing every migration file takes milliseconds; servers check on each start
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> tuple[str, ...]:
    """The revision(s) this recsdk's code needs the database to be at."""
    return tuple(_scripts().get_heads())


def known_revisions() -> set[str]:
    """Every revision this recsdk's migrations define."""
    return {script.revision for script in _scripts().walk_revisions()}


def current(engine: Engine) -> str | None:
    """The database's revision (None: no recsdk schema yet)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def current_heads(engine: Engine) -> tuple[str, ...]:
    """All revisions the database is stamped with (one unless migrations branched)."""
    with engine.connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold ``engine``'s database migration lock, waiting while another process has it.

    PostgreSQL: a session advisory lock on a connection of its own (autocommit, so no
    transaction stays open while alembic works on another connection). SQLite: a file
    lock beside the database file. An in-memory SQLite database belongs to one
    connection, so there is nothing to share and no lock.
    """
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            yield
        return
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with FileLock(f"{database}.migrate.lock"):
        yield


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    key = {"key": ADVISORY_LOCK_KEY}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            log.info("waiting for another process to finish migrating %s",
                     engine.url.render_as_string(hide_password=True))
            conn.execute(text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create the database or migrate it to ``revision`` (the latest by default).

    Holds the migration lock, so concurrent callers run one after the other; the
    later ones find the work done and change nothing.
    """
    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


def ensure_schema(engine: Engine, migrate: bool) -> None:
    """Make sure the database has the schema this recsdk needs before anything uses it.

    ``migrate``: bring an old schema up to date (under the migration lock); otherwise
    raise :class:`SchemaOutdated` naming the command to run. A database stamped by a
    newer recsdk is refused either way: migrating it down is not this process's call.
    """
    heads = head_revisions()
    stamped = current_heads(engine)
    if set(stamped) == set(heads):
        return
    where = engine.url.render_as_string(hide_password=True)
    unknown = sorted(set(stamped) - known_revisions())
    if unknown:
        raise SchemaOutdated(
            f"database is at revision {', '.join(unknown)}, which this recsdk does not know "
            f"(it needs {', '.join(heads)}): a newer recsdk migrated {where}; "
            "run that version, or restore a database this version migrated")
    if migrate:
        upgrade(engine)
        return
    at = ", ".join(stamped) if stamped else "none (no recsdk schema yet)"
    raise SchemaOutdated(
        f"database is at revision {at}, this recsdk needs {', '.join(heads)}: "
        f"run `{UPGRADE_COMMAND}` ({where})")
