"""alembic environment: recsdk's models are the target; the engine comes from recsdk."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Engine

from recsdk.storage import partitions
from recsdk.storage.database import make_engine
from recsdk.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "RECSDK_DATABASE_URL", "sqlite:///recsdk.db")
    return make_engine(url)


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite needs batch mode to alter tables
            compare_type=True,
            user_module_prefix="recsdk.storage.models.",
            # PostgreSQL's monthly partitions and event_keys are not in the models
            include_object=partitions.include_object_for(connection.dialect.name),
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
