"""Opening recsdk from the command line's settings, with user mistakes as one-line errors.

A wrong configuration file, an unknown plugin or an unreachable database is something
the user fixes, not a bug: the command prints one line naming the problem on stderr
and exits non-zero, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from recsdk.config import Settings, load_settings
from recsdk.errors import RecSDKError

if TYPE_CHECKING:
    from recsdk.sdk import RecSDK


def one_line(message: str) -> str:
    """Collapse a (possibly multi-line) message so the error stays on one line."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def safe_url(url: str) -> str:
    """The database URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@contextmanager
def user_errors(database_url: str | None = None) -> Iterator[None]:
    """Turn recsdk's own errors and database connection failures into ClickExceptions."""
    try:
        yield
    except RecSDKError as exc:
        raise click.ClickException(one_line(str(exc))) from exc
    except (OperationalError, InterfaceError) as exc:
        where = f" {safe_url(database_url)}" if database_url else ""
        reason = one_line(str(exc.orig) if exc.orig is not None else str(exc))
        raise click.ClickException(f"cannot use the database{where}: {reason}") from exc


def config_source(ctx: click.Context) -> str | None:
    """The ``--config`` path given to the ``recsdk`` group (None: $RECSDK_CONFIG or none)."""
    obj = ctx.find_root().obj or {}
    return obj.get("config")


def settings_of(ctx: click.Context) -> Settings:
    """Validated settings for this invocation; a bad file or key stops with its message."""
    with user_errors():
        return load_settings(config_source(ctx))


@contextmanager
def open_sdk(ctx: click.Context, **options: Any) -> Iterator[RecSDK]:
    """A RecSDK on the configured database, closed when the command ends; ``options`` go
    to :class:`RecSDK` (``serve_models=False`` for training, say). An old schema is
    migrated (under the migration lock) unless ``migrate=False``, which servers pass:
    they stop with the command to run instead."""
    # Imported here: the SDK pulls in pandas and numpy, which `recsdk --help` never needs.
    from recsdk.sdk import RecSDK

    settings = settings_of(ctx)
    with user_errors(settings.database_url):
        sdk = RecSDK(config_source(ctx), **options)
        try:
            yield sdk
        finally:
            sdk.close()
